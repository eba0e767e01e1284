"""Findings about a workbook's rows (``check``): pure, from the rows read and today's date.

A finding names a sheet row, a column and a stable code, never a cell's value.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from .codes import CEFR_LEVELS, DUTCH_UNKNOWN, INTERESTS, NO_INTEREST, StatusMO, listed_status
from .plan import past_retention
from .row import SheetRow, is_row_id

INTEREST_LABELS = frozenset(INTERESTS.values())
MO_STATUSES = frozenset(s.value for s in StatusMO)
DUTCH_LEVELS = frozenset((*CEFR_LEVELS, DUTCH_UNKNOWN))
LANGUAGE_DISPLAY = re.compile(r"^.+ \([A-Z]{3}\)$")


@dataclass(frozen=True)
class Finding:
    row: int | None
    column: str | None
    code: str
    message: str


def check_rows(rows: Iterable[SheetRow], today: date) -> list[Finding]:
    rows = list(rows)
    findings: list[Finding] = []
    counts = Counter(r.row.rij_id for r in rows)
    for item in rows:
        findings.extend(_check_row(item, today, counts))
    return findings


def key_findings(rows: Iterable[SheetRow]) -> list[Finding]:
    """Only the findings that stop a write (formulas, missing or doubled Rij-IDs): what a
    command that writes must look at, without the rest of ``check``."""
    rows = list(rows)
    counts = Counter(r.row.rij_id for r in rows)
    return [finding for item in rows for finding in _key_findings(item, counts)]


def key_findings_of_ids(ids: list[tuple[int, str]]) -> list[Finding]:
    """``key_findings`` of rows known by sheet row and Rij-ID only (read without formulas)."""
    counts = Counter(row_id for _, row_id in ids)
    return [f for n, row_id in ids for f in _id_findings(n, row_id, counts)]


def _key_findings(item: SheetRow, counts: Counter[str]) -> Iterable[Finding]:
    for column in item.formula_columns:
        yield Finding(item.sheet_row, column, "formula", "a formula in a managed column")
    yield from _id_findings(item.sheet_row, item.row.rij_id, counts)


def _id_findings(n: int, row_id: str, counts: Counter[str]) -> Iterable[Finding]:
    if not is_row_id(row_id):
        yield Finding(
            n, "Rij-ID", "invalid_row_id", "not a row key made by agii-sync (hand-added row?)"
        )
    elif counts[row_id] > 1:
        yield Finding(n, "Rij-ID", "duplicate_row_id", "this Rij-ID appears more than once")


def _check_row(item: SheetRow, today: date, counts: Counter[str]) -> Iterable[Finding]:
    row, n = item.row, item.sheet_row
    yield from _key_findings(item, counts)
    for column, value in (("Naam", row.naam), ("Voornaam", row.voornaam), ("Adres", row.adres)):
        if not value:
            yield Finding(n, column, "missing_value", "empty")
    if item.status_typed == "padded":
        yield Finding(
            n, "Status activiteit", "status_padded", "spaces around the status (kept as typed)"
        )
    elif item.status_typed:
        yield Finding(
            n,
            "Status activiteit",
            "status_not_text",
            f"typed as a {item.status_typed}, not text (kept as typed)",
        )
    if row.status_activiteit and listed_status(row.status_activiteit) is None:
        yield Finding(n, "Status activiteit", "unknown_status", "not in the list (kept as typed)")
    if row.status_mo not in MO_STATUSES:
        yield Finding(n, "Status MO", "invalid_code", "not in the MO status list")
    if row.niveau_nederlands not in DUTCH_LEVELS:
        yield Finding(n, "Niveau Nederlands", "invalid_code", "not a CEFR level or 'onbekend'")
    if not _interests_valid(row.interesses):
        yield Finding(n, "Interesses en noden", "invalid_code", "not from the protocol's list")
    if not LANGUAGE_DISPLAY.match(row.contacttaal):
        yield Finding(n, "Contacttaal", "invalid_code", "not 'Name (CODE)'")
    if row.bewaren_tot is not None and not isinstance(row.bewaren_tot, date):
        yield Finding(n, "Bewaren tot", "invalid_date", "not a date")
    elif past_retention(row, today):
        yield Finding(n, "Bewaren tot", "past_retention", "past its retention date; run purge")


def _interests_valid(text: str) -> bool:
    if text == NO_INTEREST:
        return True
    labels = [part.strip() for part in text.split(";")]
    return bool(labels) and all(label in INTEREST_LABELS for label in labels)
