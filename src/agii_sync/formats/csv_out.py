"""CSV that agii-sync writes for people (``list --format csv``, ``pull-status``).

A cell that starts like a formula (``=``, ``+``, ``-``, ``@``, tab, CR) would run as one when
the file is opened in a spreadsheet (CSV injection); such a cell gets a leading apostrophe,
which spreadsheets read as "this is text" (OWASP's advice).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from ..domain.codes import is_formula_like


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]], *, newline: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(header)
    writer.writerows([_as_text(value) for value in row] for row in rows)
    return buffer.getvalue()


def _as_text(value: object) -> object:
    if is_formula_like(value):
        return f"'{value}"
    return value
