"""Which municipality gets which export row (README, The export): by NIS code, checked by postcode.

A row whose postcode is not one of its municipality's postal codes goes nowhere: a wrong NIS
code must never send a person's data to another municipality.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Municipality
from .export import ExportRecord
from .problems import Problem, ProblemCode
from .rejections import RejectedRow


@dataclass
class Routing:
    by_site: dict[str, list[ExportRecord]]  # municipality id → its records, in export order
    skipped_other_nis: int = 0  # rows for municipalities not in the config
    problems: list[Problem] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)


def route(records: list[ExportRecord], municipalities: list[Municipality]) -> Routing:
    by_nis = {m.nis: m for m in municipalities}
    routing = Routing(by_site={m.id: [] for m in municipalities})
    for record in records:
        municipality = by_nis.get(record.nis_code)
        if municipality is None:
            routing.skipped_other_nis += 1
        elif record.postcode not in municipality.postal_codes:
            routing.problems.append(
                Problem.of(ProblemCode.POSTCODE_MISMATCH, line=record.line, column="postcode")
            )
            routing.rejected.append(
                RejectedRow(
                    record.line, record.nis_code, record.dossiernummer, postcode=record.postcode
                )
            )
        else:
            routing.by_site[municipality.id].append(record)
    return routing
