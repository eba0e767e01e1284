"""The ``status-update --from`` file: CSV or XLSX with columns ``Rij-ID`` and
``Status activiteit`` (other columns are ignored, e.g. a filtered copy of the workbook)."""

from __future__ import annotations

from pathlib import Path

from ..domain.export import cell_text
from ..errors import InputError
from .export_reader import header_key, read_table

ROW_ID = header_key("Rij-ID")
STATUS = header_key("Status activiteit")


def read_status_file(path: Path) -> list[tuple[int | None, str, str]]:
    """(line, row_id, status) for every non-empty line after the header."""
    rows = read_table(path)
    if not rows:
        raise InputError(f"{path}: the file is empty")
    header = [header_key(cell_text(c)) for c in rows[0][1]]
    missing = [
        name
        for key, name in ((ROW_ID, "Rij-ID"), (STATUS, "Status activiteit"))
        if key not in header
    ]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(repr(m) for m in missing)}",
            hint="the file needs the columns 'Rij-ID' and 'Status activiteit'",
        )
    id_at, status_at = header.index(ROW_ID), header.index(STATUS)
    lines: list[tuple[int | None, str, str]] = []
    for line, cells in rows[1:]:
        values = [cell_text(c) for c in cells]
        if not any(v.strip() for v in values):
            continue
        row_id = values[id_at] if id_at < len(values) else ""
        status = values[status_at] if status_at < len(values) else ""
        lines.append((line, row_id, status))
    return lines
