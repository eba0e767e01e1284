"""Bounds on the work any XLSX file can cause, checked before any XML parser sees it.

A hostile or broken file must be refused or read within seconds: its work is bounded by its
size. ``inspect_xlsx`` reads the zip's directory, then streams every part through the
decompressor (never more bytes than the budget allows) and counts the rows and cells of every
sheet, hidden ones included: a few MB of zip can unpack to gigabytes of XML, or to millions
of rows without a dimension element, and every parser would then walk all of it.

The same limits serve the export reader and the workbook reader (whichever parser it uses).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from dataclasses import dataclass

MiB = 1024 * 1024
MAX_PARTS = 10_000
MAX_TOTAL_BYTES = 1024 * MiB  # unpacked, whatever the file's size
BUDGET_FLOOR = 16 * MiB  # always allowed unpacked: a small workbook's styles, theme, template
BUDGET_RATIO = 25  # ... plus this many times the file's size (real sheets pack 5-10 times)
MAX_ROWS_PER_SHEET = 200_000  # a municipality has hundreds to thousands of people
MAX_CELLS = 2_000_000  # all sheets together: 50,000 people of 18 columns need 900,000
MAX_SHARED_STRINGS = 2_000_000
SCAN_CHUNK = MiB

SHEET_PART = re.compile(
    r"^xl/(?:worksheets|dialogsheets|macrosheets|chartsheets)/[^/]+\.xml$", re.I
)
SHARED_STRINGS = re.compile(r"^xl/sharedStrings\.xml$", re.I)
# An element's start tag, with or without a namespace prefix: <row ...>, <x:c r="A1"/>.
ROW_OR_CELL = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(row|c|si)[\s/>]")
CARRY_MAX = 64  # bytes from the last '<' carried to the next chunk (a tag split in two)


class TooMuchWork(ValueError):
    """The file would take more than the limits allow; the message names no content."""


@dataclass
class Counts:
    unpacked: int = 0  # bytes
    cells: int = 0
    shared_strings: int = 0
    rows_by_part: dict[str, int] | None = None


def unpack_budget(size: int) -> int:
    """How many unpacked bytes a file of ``size`` bytes may hold."""
    return min(MAX_TOTAL_BYTES, BUDGET_FLOOR + BUDGET_RATIO * size)


def inspect_xlsx(data: bytes) -> Counts:
    """Count what the file holds, or raise TooMuchWork (past a limit) or zipfile.BadZipFile /
    ValueError / OSError / EOFError (not a zip). Costs at most the budget in decompression."""
    budget = unpack_budget(len(data))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = archive.infolist()
        if len(parts) > MAX_PARTS:
            raise TooMuchWork(f"it has {len(parts):,} parts (at most {MAX_PARTS:,})")
        declared = sum(part.file_size for part in parts)
        if declared > budget:
            raise TooMuchWork(_too_big(declared, len(data), budget))
        counts = Counts(rows_by_part={})
        for part in parts:
            _scan(archive, part, counts, budget, len(data))
    return counts


def _scan(
    archive: zipfile.ZipFile, part: zipfile.ZipInfo, counts: Counts, budget: int, size: int
) -> None:
    counted = bool(SHEET_PART.match(part.filename) or SHARED_STRINGS.match(part.filename))
    rows = 0
    carry = b""
    with archive.open(part) as stream:
        while chunk := stream.read(SCAN_CHUNK):
            counts.unpacked += len(chunk)
            if counts.unpacked > budget:  # a part that lies about its size
                raise TooMuchWork(_too_big(counts.unpacked, size, budget))
            if not counted:
                continue
            text = carry + chunk
            found = Counter(ROW_OR_CELL.findall(text))  # counted in C, not match by match
            rows += found[b"row"]
            counts.cells += found[b"c"]
            counts.shared_strings += found[b"si"]
            last = text.rfind(b"<")
            carry = text[last:] if last >= 0 and len(text) - last <= CARRY_MAX else b""
            if rows > MAX_ROWS_PER_SHEET:
                raise TooMuchWork(
                    f"a sheet has more than {MAX_ROWS_PER_SHEET:,} rows ({part.filename})"
                )
            if counts.cells > MAX_CELLS:
                raise TooMuchWork(f"it has more than {MAX_CELLS:,} cells")
            if counts.shared_strings > MAX_SHARED_STRINGS:
                raise TooMuchWork(f"it has more than {MAX_SHARED_STRINGS:,} shared strings")
    if counted and counts.rows_by_part is not None:
        counts.rows_by_part[part.filename] = rows


def _too_big(unpacked: int, size: int, budget: int) -> str:
    return (
        f"it would unpack to {unpacked:,} bytes; a file of {size:,} bytes may unpack to at "
        f"most {budget:,}"
    )
