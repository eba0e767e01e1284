"""The people that ``list`` shows, as a file: CSV, JSON or XLSX.

CSV and XLSX are what ``status-update --from`` takes back: staff fill in statuses and leave the
rest (a blank status changes nothing). The XLSX has the shared workbook's own layout (drop-down
in 'Status activiteit', every other cell locked, the Toelichting sheet)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..domain.row import COLUMNS, SharedRow
from .csv_out import csv_text


def people_values(rows: Sequence[SharedRow]) -> list[list[str]]:
    return [[_cell(v) for v in row.cells()] for row in rows]


def people_file(rows: Sequence[SharedRow], fmt: str, *, sheet: str, retention_months: int) -> bytes:
    if fmt == "xlsx":
        from .workbook import create_workbook  # openpyxl: only for this format

        return create_workbook(sheet, rows, retention_months=retention_months)
    if fmt == "csv":
        return people_text_csv(rows).encode("utf-8")
    return json.dumps(people_doc(rows), ensure_ascii=False, indent=2).encode("utf-8")


def people_text_csv(rows: Sequence[SharedRow]) -> str:
    return csv_text(COLUMNS, people_values(rows), newline="\n")


def people_doc(rows: Sequence[SharedRow]) -> dict[str, object]:
    people = [dict(zip(COLUMNS, v, strict=True)) for v in people_values(rows)]
    return {"count": len(people), "people": people}


def _cell(value: object) -> str:
    if value is None:
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
