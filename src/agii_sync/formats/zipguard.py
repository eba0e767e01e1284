"""Refuse an XLSX zip bomb before any parser sees it: for exports and for workbooks read from a
site alike (its own module, so reading a workbook does not import the export's validators)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ..errors import InputError

FORMAT_HINT = "export as CSV (UTF-8 or Windows-1252, ';' or ',') or as .xlsx"
MAX_XLSX_UNCOMPRESSED = 1024 * 1024 * 1024  # all parts of the zip together
MAX_XLSX_RATIO = 100  # a part of more than 16 MiB compressed more than this is a zip bomb
XLSX_RATIO_FROM = 16 * 1024 * 1024
MAX_XLSX_PARTS = 10_000


def refuse_zip_bomb(path: Path, data: bytes) -> None:
    """Refuse, before parsing, an XLSX whose parts would unpack to more than the reader can
    hold: too large in all, or compressed far more than real spreadsheet XML is (the sizes
    are the zip's own; zipfile never unpacks more than a part declares)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(
            f"{path}: not a readable XLSX workbook ({exc.__class__.__name__})", hint=FORMAT_HINT
        ) from None
    total = sum(part.file_size for part in parts)
    bomb = any(
        part.file_size > XLSX_RATIO_FROM
        and part.file_size > MAX_XLSX_RATIO * max(part.compress_size, 1)
        for part in parts
    )
    if len(parts) > MAX_XLSX_PARTS or total > MAX_XLSX_UNCOMPRESSED or bomb:
        raise InputError(
            f"{path}: not a usable XLSX workbook: it would unpack to {total:,} bytes in "
            f"{len(parts):,} parts" + (", compressed suspiciously well" if bomb else ""),
            hint=FORMAT_HINT,
        )
