"""Which municipality gets which export row (docs/export.md): by NIS code, checked by postcode.

A row whose postcode is not one of its municipality's postal codes goes nowhere: a wrong NIS
code must never send a person's data to another municipality. A row whose postcode belongs to
a configured municipality but whose NIS code names another one is rejected too (never counted
as "another municipality's"): a typo in a NIS code must not make a push remove that person as
``moved_away``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Municipality
from .export import Record
from .problems import Problem, ProblemCode
from .rejections import RejectedRow


@dataclass
class Routing:
    by_site: dict[str, list[Record]]  # municipality id → its records, in export order
    skipped_other_nis: int = 0  # rows for municipalities not in the config
    problems: list[Problem] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)


@dataclass(frozen=True)
class Scope:
    """What the configured municipalities are known by: their NIS codes and postcodes. A row
    with neither is another municipality's, skipped unvalidated."""

    nis: frozenset[str]
    postal_codes: frozenset[str]

    @classmethod
    def of(cls, municipalities: list[Municipality]) -> Scope:
        return cls(
            frozenset(m.nis for m in municipalities),
            frozenset(code for m in municipalities for code in m.postal_codes),
        )

    def is_other_municipality(self, nis: str | None, postcode: str | None) -> bool:
        return nis is not None and nis not in self.nis and postcode not in self.postal_codes


def route(records: list[Record], municipalities: list[Municipality]) -> Routing:
    by_nis = {m.nis: m for m in municipalities}
    scope = Scope.of(municipalities)
    routing = Routing(by_site={m.id: [] for m in municipalities})
    for record in records:
        municipality = by_nis.get(record.nis_code)
        if municipality is None and record.postcode in scope.postal_codes:
            _reject(routing, record, ProblemCode.NIS_POSTCODE_CONFLICT, column="nis_code")
        elif municipality is None:
            routing.skipped_other_nis += 1
        elif record.postcode not in municipality.postal_codes:
            _reject(routing, record, ProblemCode.POSTCODE_MISMATCH, column="postcode")
        else:
            routing.by_site[municipality.id].append(record)
    return routing


def _reject(routing: Routing, record: Record, code: ProblemCode, *, column: str) -> None:
    """A valid row that goes nowhere: its exact dossier number keeps its person everywhere."""
    routing.problems.append(Problem.of(code, line=record.line, column=column))
    routing.rejected.append(
        RejectedRow(record.line, record.nis_code, record.dossiernummer, postcode=record.postcode)
    )
