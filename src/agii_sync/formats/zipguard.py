"""Refuse an XLSX zip bomb before any parser sees it: for exports and for workbooks read from a
site alike (its own module, so reading a workbook does not import the export's validators)."""

from __future__ import annotations

import hashlib
import threading
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

from ..errors import InputError
from . import limits

FORMAT_HINT = "export as CSV (UTF-8 or Windows-1252, ';' or ',') or as .xlsx"
# Digests of the files found within the limits lately: a run reads the same workbook (and the
# one it made of it) several times, and the same bytes need no second inspection.
_PASSED: OrderedDict[bytes, None] = OrderedDict()
PASSED_KEPT = 16
_PASSED_LOCK = threading.Lock()


def refuse_zip_bomb(path: Path, data: bytes) -> None:
    """Refuse, before parsing, an XLSX that would take more work than its size warrants: more
    unpacked bytes, rows or cells than ``formats/limits.py`` allows, hidden sheets included."""
    digest = hashlib.blake2b(data, digest_size=32).digest()
    with _PASSED_LOCK:
        if digest in _PASSED:
            _PASSED.move_to_end(digest)
            return
    try:
        limits.inspect_xlsx(data)
    except limits.TooMuchWork as exc:
        raise InputError(f"{path}: not a usable XLSX workbook: {exc}", hint=FORMAT_HINT) from None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, RuntimeError) as exc:
        # RuntimeError: an encrypted part, or (NotImplementedError) an unknown compression
        raise InputError(
            f"{path}: not a readable XLSX workbook ({exc.__class__.__name__})", hint=FORMAT_HINT
        ) from None
    with _PASSED_LOCK:
        _PASSED[digest] = None
        while len(_PASSED) > PASSED_KEPT:
            _PASSED.popitem(last=False)
