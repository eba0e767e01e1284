"""Refuse an XLSX zip bomb before any parser sees it: for exports and for workbooks read from a
site alike (its own module, so reading a workbook does not import the export's validators)."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from ..errors import InputError
from . import limits

FORMAT_HINT = "export as CSV (UTF-8 or Windows-1252, ';' or ',') or as .xlsx"


def refuse_zip_bomb(path: Path, data: bytes) -> None:
    """Refuse, before parsing, an XLSX that would take more work than its size warrants: more
    unpacked bytes, rows or cells than ``formats/limits.py`` allows, hidden sheets included."""
    try:
        limits.inspect_xlsx(data)
    except limits.TooMuchWork as exc:
        raise InputError(f"{path}: not a usable XLSX workbook: {exc}", hint=FORMAT_HINT) from None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, RuntimeError) as exc:
        # RuntimeError: an encrypted part, or (NotImplementedError) an unknown compression
        raise InputError(
            f"{path}: not a readable XLSX workbook ({exc.__class__.__name__})", hint=FORMAT_HINT
        ) from None
