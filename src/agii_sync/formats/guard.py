"""The write-path guard of ``status-update``: the package about to be written may differ from
the one that was read only in the data sheet's ``Status activiteit`` cells below the header.

Every other part must be byte-identical, with two exceptions that carry no cell: the shared
strings part may have entries emptied that no cell uses any more, and the stylesheet may have
a cell format appended (for a status cell that had none).
"""

from __future__ import annotations

import re

from ..domain.row import COLUMNS, STATUS_COLUMN
from .sheet_xml import column_letters
from .workbook_styles import only_formats_added
from .xlsx_package import Package

STATUS_LETTERS = column_letters(COLUMNS.index(STATUS_COLUMN) + 1).encode()
SI = re.compile(rb"<si\b[^>]*?(?:/>|>.*?</si>)", re.S)
EMPTY_SI = b"<si><t/></si>"


def parts_outside_status(before: bytes, after: bytes, data_sheet: str) -> list[str]:
    """The parts (``Sheet!cells`` for the data sheet) that differ other than by status cells."""
    old, new = Package(before), Package(after, ours=True)
    if old.names != new.names:
        return ["the list of parts"]
    sheet_part = next((s.part for s in old.sheets() if s.name == data_sheet), "")
    strings = old.part_of("/sharedStrings")
    styles = old.part_of("/styles")
    differing = []
    for name in old.names:
        if old.same_bytes(name, new):
            continue
        was, now = old.read(name), new.read(name)
        if was == now:
            continue
        if name == sheet_part and _same_but_status(was, now):
            continue
        if name == strings and _only_emptied(was, now):
            continue
        if name == styles and only_formats_added(was, now):
            continue
        differing.append(f"{data_sheet}!(cells)" if name == sheet_part else name)
    return differing


STATUS_CELL = re.compile(
    rb"<c\b[^>]*?\sr\s*=\s*[\"']" + STATUS_LETTERS + rb"([0-9]+)[\"'][^>]*?(?:/>|>.*?</c>)", re.S
)


# The same, for cells whose r attribute comes first (as Excel-compatible writers put it):
# a literal start the regex engine finds fast.
STATUS_CELL_R_FIRST = re.compile(
    rb'<c r="' + STATUS_LETTERS + rb'([0-9]+)"[^>]*?(?:/>|>.*?</c>)', re.S
)


def _same_but_status(before: bytes, after: bytes) -> bool:
    """Whether the sheets are the same with their status cells below the header cut out (a
    cell's attributes never hold ``>``: Excel-compatible writers escape it). Compared row by
    row, cutting only rows that differ; a cell never spans two rows."""
    old, new = before.split(b"</row>"), after.split(b"</row>")
    if len(old) != len(new):
        return _whole_same_but_status(before, after)
    return all(a == b or _whole_same_but_status(a, b) for a, b in zip(old, new, strict=True))


def _whole_same_but_status(before: bytes, after: bytes) -> bool:
    for pattern in (STATUS_CELL_R_FIRST, STATUS_CELL):

        def cut(xml: bytes, pattern: re.Pattern[bytes] = pattern) -> bytes:
            return pattern.sub(lambda m: b"" if int(m.group(1)) > 1 else m.group(0), xml)

        if cut(before) == cut(after):
            return True
    return False


def _only_emptied(before: bytes, after: bytes) -> bool:
    old, new = SI.findall(before), SI.findall(after)
    if len(old) != len(new) or SI.sub(b"", before) != SI.sub(b"", after):
        return False
    return all(a == b or b == EMPTY_SI for a, b in zip(old, new, strict=True))
