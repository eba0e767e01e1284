"""The write-path guard of ``status-update``: compare the workbook about to be written with the
one that was read, cell by cell, over every sheet. Only ``Status activiteit`` cells of the data
sheet may differ."""

from __future__ import annotations

import io

import openpyxl

from ..domain.row import COLUMNS, STATUS_COLUMN

STATUS_COLUMN_NUMBER = COLUMNS.index(STATUS_COLUMN) + 1
Cells = dict[tuple[str, int, int], object]


def cells_outside_status(before: bytes, after: bytes, data_sheet: str) -> list[str]:
    """Coordinates (``Sheet!B7``) of cells that differ, other than status cells below the
    header of the data sheet. Empty cells and empty strings count as the same."""
    old, new = _cells(before, data_sheet), _cells(after, data_sheet)
    differing = [key for key in old.keys() | new.keys() if old.get(key) != new.get(key)]
    return [
        f"{sheet}!{openpyxl.utils.get_column_letter(c)}{r}" for sheet, r, c in sorted(differing)
    ]


def _cells(content: bytes, data_sheet: str) -> Cells:
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    cells: Cells = {}
    try:
        for sheet in book.worksheets:
            for r, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                for c, value in enumerate(row, start=1):
                    if value is None or value == "":
                        continue
                    if sheet.title == data_sheet and c == STATUS_COLUMN_NUMBER and r > 1:
                        continue
                    cells[(sheet.title, r, c)] = value
        cells[("", 0, 0)] = tuple(book.sheetnames)  # a sheet added, removed or renamed
    finally:
        book.close()
    return cells
