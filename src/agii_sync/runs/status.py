"""``status-update``: the municipality sets ``Status activiteit``, the only column it owns.

All lines valid or nothing is written. Only the status cells are rewritten inside the data
sheet's XML; the write path compares the package it is about to upload with the one it read,
part by part, and refuses if anything but status cells differs. When
the workbook changed meanwhile, it is read again and the edits reapplied; a status that someone
else set meanwhile to a third value is a conflict, reported and left alone.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..config import Municipality
from ..domain.codes import ACTIVITY_STATUSES
from ..domain.plan import Plan, plan_status
from ..domain.problems import Problem, ProblemCode, Severity
from ..domain.row import is_row_id
from ..engine import Run, SiteOutcome, refuse_unwritable
from ..errors import DataRejected, SafetyStop, UsageError
from ..formats.guard import parts_outside_status

CLEAR_WORDS = frozenset({"leeg", "(leeg)"})
EMPTY_STATUS = "empty; write 'leeg' to clear a status"


@dataclass(frozen=True)
class StatusEdit:
    line: int | None  # line in the --from file; None for the command-line pair
    row_id: str
    status: str


def match_status(text: str) -> str | None:
    """The list value meant by ``text`` (case-insensitive), "" to clear, or None."""
    wanted = " ".join(text.split()).lower()
    if wanted in CLEAR_WORDS:
        return ""
    for status in ACTIVITY_STATUSES:
        if status.lower() == wanted:
            return status
    return None


def suggest_status(text: str) -> str | None:
    lowered = {s.lower(): s for s in ACTIVITY_STATUSES}
    close = difflib.get_close_matches(text.strip().lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[close[0]] if close else None


def parse_edits(raw: list[tuple[int | None, str, str]]) -> tuple[list[StatusEdit], list[Problem]]:
    """Validate (line, row_id, status) triples: a Rij-ID, a known status, each row ID once. An
    empty status is a problem: clearing takes 'leeg'. What is not a Rij-ID is never repeated
    in a message (it may be a name typed in that column)."""
    edits, problems, seen = [], [], {}
    for line, row_id, status in raw:
        row_id = row_id.strip().upper()
        matched = match_status(status)
        if not row_id:
            problems.append(_problem(line, "Rij-ID", ProblemCode.MISSING_VALUE, "empty"))
        elif not is_row_id(row_id):
            message = "not a Rij-ID (five and five letters/digits, e.g. 7K3QZ-M9X2A)"
            problems.append(_problem(line, "Rij-ID", "invalid_row_id", message))
            row_id = ""
        if not status.strip():  # an empty $STATUS in a script must not wipe a status
            problems.append(
                _problem(line, "Status activiteit", ProblemCode.MISSING_VALUE, EMPTY_STATUS)
            )
            matched = None
        elif matched is None:
            hint = suggest_status(status)
            message = "not in the list of statuses" + (f"; did you mean {hint!r}?" if hint else "")
            problems.append(_problem(line, "Status activiteit", "unknown_status", message))
        if row_id in seen:
            problems.append(
                _problem(line, "Rij-ID", "duplicate_row_id", f"also on line {seen[row_id]}")
            )
        if row_id:
            seen.setdefault(row_id, line)
        if row_id and matched is not None:
            edits.append(StatusEdit(line, row_id, matched))
    return edits, problems


def _problem(line: int | None, column: str, code: str, message: str) -> Problem:
    return Problem(line=line, column=column, code=code, message=message, severity=Severity.ERROR)


def status_update(
    run: Run, m: Municipality, edits: list[StatusEdit], problems: list[Problem] | None = None
) -> SiteOutcome:
    """Apply ``edits``. ``problems`` found in the input are reported together with the edits'
    row IDs that are not in the workbook, so one attempt lists everything; nothing is written
    if there are any."""
    base: dict[str, str] = {}
    conflicts: list[str] = []

    def make_plan(loaded):  # type: ignore[no-untyped-def]
        if loaded is None:
            raise UsageError(f"{m.id}: the site has no workbook yet", hint="AgII runs init/push")
        refuse_unwritable(loaded, run.today)
        current = {row.rij_id: row.status_activiteit for row in loaded.shared_rows}
        if not base:
            _refuse_bad_lines(edits, problems or [], current)
            base.update(current)
        conflicts.clear()
        wanted = {}
        for edit in edits:
            now = current.get(edit.row_id)
            if now is None or (now != base[edit.row_id] and now != edit.status):
                conflicts.append(edit.row_id)
            else:
                wanted[edit.row_id] = edit.status
        return plan_status(loaded.shared_rows, wanted)

    def guard(before: bytes | None, after: bytes, plan: Plan) -> None:
        assert before is not None
        stray = parts_outside_status(before, after, run.config.workbook.sheet)
        if stray:
            raise SafetyStop(
                f"{m.id}: the workbook to upload differs outside 'Status activiteit' "
                f"({', '.join(stray)}); nothing was written",
                hint="the workbook holds something agii-sync cannot keep as it is; "
                "run `agii-sync check` and tell AgII",
            )

    outcome = run.update_workbook(
        m,
        make_plan,
        guard=guard,
        create_missing=False,
        repair=False,
        memory="merge",
        status_only=True,
    )
    if outcome.etag_before is None:  # no workbook: make_plan never ran, nothing was saved
        raise UsageError(f"{m.id}: the site has no workbook yet", hint="AgII runs init/push")
    if conflicts:
        outcome.details["conflicts"] = len(conflicts)
        outcome.details["conflict_rows"] = list(conflicts)
        outcome.fail(
            SafetyStop(
                f"{m.id}: {len(conflicts)} status(es) were changed by someone else meanwhile "
                f"and left as they are: {', '.join(conflicts)}",
                hint="look at those rows in the workbook and set them again if needed",
            )
        )
    return outcome


def _refuse_bad_lines(
    edits: list[StatusEdit], problems: list[Problem], current: dict[str, str]
) -> None:
    unknown = [
        _problem(e.line, "Rij-ID", "unknown_row_id", f"{e.row_id} is not on this site")
        for e in edits
        if e.row_id not in current
    ]
    everything = sorted([*problems, *unknown], key=lambda p: (p.line or 0, p.column or ""))
    if everything:
        raise DataRejected(
            f"{len(everything)} problem(s) in the status lines; nothing was written", everything
        )
