"""Plans: what a run will do to one site's rows. Pure functions, no I/O.

A plan is computed from the rows read from the workbook and what is wanted (the export for a
push, the calendar for a purge, the edits for a status-update). Applying it yields the rows to
write. An empty plan means nothing is uploaded.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from .codes import listed_status
from .row import AGII_FIELDS, SharedRow

Reason = Literal[
    "added",
    "restored",
    "updated",
    "moved_away",
    "retention",
    "protocol_ended",
    "status_set",
    "suppressed",
    "special_category",
]
OFF_LIST = "(buiten de lijst)"
# suppressed: the person objected or asked for erasure (`forget`); special_category: a value
# that reveals GDPR art. 9 data (a sign language). See docs/protocol.md.
REMOVALS: tuple[Reason, ...] = (
    "moved_away",
    "retention",
    "protocol_ended",
    "suppressed",
    "special_category",
)
Withheld = dict[str, Reason]  # Rij-ID → why the person may not be shared


@dataclass(frozen=True)
class Change:
    row_id: str
    reason: Reason
    columns: tuple[str, ...] = ()  # for "updated": which columns changed
    old: str | None = None  # for "status_set": the status before (a code-list value, not data)
    new: str | None = None


@dataclass
class Plan:
    rows: list[SharedRow]  # the rows to write, in order
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    total_before: int = 0

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def of(self, *reasons: Reason) -> list[Change]:
        return [c for c in self.changes if c.reason in reasons]

    @property
    def removed(self) -> list[Change]:
        return self.of(*REMOVALS)

    def counts(self) -> dict[str, int]:
        """added / updated / removed / status_set / unchanged, plus removals per reason."""
        counts = {"added": 0, "updated": 0, "removed": 0}
        for change in self.changes:
            if change.reason in REMOVALS:
                counts["removed"] += 1
            counts[change.reason] = counts.get(change.reason, 0) + 1
        counts["unchanged"] = self.unchanged
        return counts


def past_retention(row: SharedRow, today: date) -> bool:
    """Kept through the last day of ``Bewaren tot``; gone the day after."""
    return isinstance(row.bewaren_tot, date) and today > row.bewaren_tot


def plan_push(
    current: Iterable[SharedRow],
    desired: Iterable[SharedRow],
    *,
    today: date,
    keep: frozenset[str] = frozenset(),
    remembered: dict[str, str] | None = None,
    drop: Withheld | None = None,
    keep_until: date | None = None,
) -> Plan:
    """Bring the workbook in line with the export for this municipality.

    ``keep`` holds row IDs of people whose export row was rejected: they are still shared, so
    their row stays as it is (unless past retention) rather than counting as moved away; an
    empty ``Bewaren tot`` of theirs becomes ``keep_until``, so they too leave in time. ``drop``
    holds people who may not be shared at all, whatever the export says. Every existing
    ``Status activiteit`` is carried over. ``remembered`` holds the statuses of the rows the
    workbook had after the last write: such a row missing now was deleted by hand and is
    restored with its status.
    """
    remembered = remembered or {}
    current = list(current)
    drop = drop or {}
    wanted = {row.rij_id: row for row in desired if row.rij_id not in drop}
    plan = Plan(rows=[], total_before=len(current))
    for row in current:
        new = wanted.pop(row.rij_id, None)
        if row.rij_id in drop:
            plan.changes.append(Change(row.rij_id, drop[row.rij_id]))
        elif past_retention(row, today) or (new is not None and past_retention(new, today)):
            plan.changes.append(Change(row.rij_id, "retention"))
        elif new is None and row.rij_id not in keep:
            plan.changes.append(Change(row.rij_id, "moved_away"))
        elif new is None and row.bewaren_tot is None and keep_until is not None:
            plan.rows.append(row.model_copy(update={"bewaren_tot": keep_until}))
            plan.changes.append(Change(row.rij_id, "updated", ("Bewaren tot",)))
        elif new is None:
            plan.rows.append(row)
            plan.unchanged += 1
        else:
            merged = _with_status(new, row.status_activiteit)
            columns = changed_columns(row, merged)
            if columns:
                plan.changes.append(Change(row.rij_id, "updated", columns))
            else:
                plan.unchanged += 1
            plan.rows.append(merged)
    for row_id, row in wanted.items():
        if past_retention(row, today):
            continue
        if row_id in remembered:
            plan.rows.append(row.model_copy(update={"status_activiteit": remembered[row_id]}))
            plan.changes.append(Change(row_id, "restored"))
        else:
            plan.rows.append(row)
            plan.changes.append(Change(row_id, "added"))
    return plan


def _with_status(row: SharedRow, status: str) -> SharedRow:
    """``row`` with ``status`` (the row itself when it has it: no copy of thousands of rows)."""
    if row.status_activiteit == status:
        return row
    return row.model_copy(update={"status_activiteit": status})


def plan_purge(
    current: Iterable[SharedRow],
    *,
    today: date,
    protocol_ended: bool,
    drop: Withheld | None = None,
) -> Plan:
    """Remove rows past retention and people who may not be shared (``drop``), or every row
    once the protocol has ended."""
    current = list(current)
    drop = drop or {}
    plan = Plan(rows=[], total_before=len(current))
    for row in current:
        if protocol_ended:
            plan.changes.append(Change(row.rij_id, "protocol_ended"))
        elif row.rij_id in drop:
            plan.changes.append(Change(row.rij_id, drop[row.rij_id]))
        elif past_retention(row, today):
            plan.changes.append(Change(row.rij_id, "retention"))
        else:
            plan.rows.append(row)
            plan.unchanged += 1
    return plan


def plan_status(current: Iterable[SharedRow], edits: dict[str, str]) -> Plan:
    """Set ``Status activiteit`` of the rows in ``edits`` (row ID → new status)."""
    current = list(current)
    plan = Plan(rows=[], total_before=len(current))
    for row in current:
        new = edits.get(row.rij_id)
        if new is None or new == row.status_activiteit:
            plan.rows.append(row)
            plan.unchanged += 1
            continue
        plan.rows.append(row.model_copy(update={"status_activiteit": new}))
        plan.changes.append(
            Change(row.rij_id, "status_set", old=_shown(row.status_activiteit), new=new)
        )
    return plan


def _shown(status: str) -> str:
    """A status as reports may show it: a hand-typed text outside the list could say anything
    about a person, so it is never repeated."""
    return (listed_status(status) or OFF_LIST) if status else status


def changed_columns(old: SharedRow, new: SharedRow) -> tuple[str, ...]:
    if old is new or _agii_values(old) == _agii_values(new):  # most rows of most pushes
        return ()
    before, after = old.agii_cells(), new.agii_cells()
    return tuple(column for column in after if before[column] != after[column])


_agii_values = operator.attrgetter(*(name for name, _ in AGII_FIELDS))


def statuses_kept(before: Iterable[SharedRow], after: Iterable[SharedRow]) -> list[str]:
    """Row IDs still present whose status changed: must be empty after a push or purge."""
    old = {row.rij_id: row.status_activiteit for row in before}
    return [
        row.rij_id
        for row in after
        if row.rij_id in old and old[row.rij_id] != row.status_activiteit
    ]
