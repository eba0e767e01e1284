"""``status-update``: the municipality sets ``Status activiteit``, the only column it owns.

All lines valid or nothing is written. Only the status cells are rewritten inside the data
sheet's XML; the write path compares the package it is about to upload with the one it read,
part by part, and refuses if anything but status cells differs. When
the workbook changed meanwhile, it is read again and the edits reapplied; a status that someone
else set meanwhile to a third value is a conflict, reported and left alone.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..conditional_update import STATUS
from ..config import Municipality
from ..domain.codes import ACTIVITY_STATUSES, is_formula_like, listed_status
from ..domain.plan import Plan, plan_status
from ..domain.problems import Problem, ProblemCode, Severity
from ..domain.row import read_row_id
from ..engine import Run, refuse_unwritable
from ..errors import DataRejected, SafetyStop, UsageError
from ..formats.guard import parts_outside_status
from ..outcome import SiteOutcome
from .facts import StatusLinesDone

if TYPE_CHECKING:
    from ..formats import workbook

CLEAR_WORDS = frozenset({"leeg", "(leeg)"})
EMPTY_STATUS = "empty; write 'leeg' to clear a status"


@dataclass(frozen=True)
class StatusEdit:
    line: int | None  # line in the --from file; None for the command-line pair
    row_id: str
    status: str | None  # a list value, "" to clear; None: not in the list (see ``typed``)
    typed: str = field(default="", repr=False)  # as written; compared, never shown

    def keeps(self, current: str) -> bool:
        """True when this line asks for what the workbook already holds: no change. A status
        outside the list counts when it is the workbook's own (as ``list`` wrote it out); a
        list value typed in another case is that list value."""
        if self.status:
            return listed_status(current) == self.status
        if self.status is not None:
            return current == self.status
        typed = self.typed.strip()
        return typed == current.strip() or (
            typed.startswith("'") and is_formula_like(current) and typed[1:] == current.strip()
        )


def match_status(text: str) -> str | None:
    """The list value meant by ``text`` (case-insensitive), "" to clear, or None."""
    if " ".join(text.split()).lower() in CLEAR_WORDS:
        return ""
    return listed_status(text)


def suggest_status(text: str) -> str | None:
    lowered = {s.lower(): s for s in ACTIVITY_STATUSES}
    close = difflib.get_close_matches(text.strip().lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[close[0]] if close else None


@dataclass
class StatusLines:
    """What the status lines ask for: valid edits, the problems, and blank lines (no change)."""

    edits: list[StatusEdit]
    problems: list[Problem]
    blank: int = 0


def parse_edits(
    raw: list[tuple[int | None, str, str]], *, blank_is_no_change: bool = False
) -> StatusLines:
    """Validate (line, row_id, status) triples: a Rij-ID, each row ID once, a status. Whether
    the status is in the list is checked against the workbook (``status_update``): a status
    outside the list that the workbook already holds is no change, not a problem.

    A blank status is no change when ``blank_is_no_change`` (a ``--from`` file, e.g. the output
    of ``list`` with a few statuses filled in), else a problem (an empty ``$STATUS`` in a script
    must not wipe a status); clearing takes 'leeg'. What is not a Rij-ID is never repeated in a
    message (it may be a name typed in that column)."""
    parsed = StatusLines([], [])
    seen: dict[str, int | None] = {}
    for line, typed_id, status in raw:
        if blank_is_no_change and not status.strip():
            parsed.blank += 1
            continue
        row_id = _row_id(line, typed_id, parsed.problems)
        if not status.strip():  # an empty $STATUS in a script must not wipe a status
            parsed.problems.append(
                _problem(line, "Status activiteit", ProblemCode.MISSING_VALUE, EMPTY_STATUS)
            )
        if row_id in seen:
            parsed.problems.append(
                _problem(
                    line, "Rij-ID", ProblemCode.DUPLICATE_ROW_ID, f"also on line {seen[row_id]}"
                )
            )
        if row_id:
            seen.setdefault(row_id, line)
        if not status.strip():
            continue
        edit = StatusEdit(line, row_id, match_status(status), status)
        if row_id:
            parsed.edits.append(edit)
        elif edit.status is None:
            parsed.problems.append(_unknown_status(edit))
    return parsed


def _row_id(line: int | None, typed: str, problems: list[Problem]) -> str:
    """The canonical Rij-ID of ``typed``, or "" with a problem that does not repeat it."""
    if not typed.strip():
        problems.append(_problem(line, "Rij-ID", ProblemCode.MISSING_VALUE, "empty"))
        return ""
    row_id = read_row_id(typed)
    if row_id is None:
        message = "not a Rij-ID (five and five letters/digits, e.g. 7K3QZ-M9X2A)"
        problems.append(_problem(line, "Rij-ID", ProblemCode.INVALID_ROW_ID, message))
        return ""
    return row_id


def _unknown_status(edit: StatusEdit) -> Problem:
    hint = suggest_status(edit.typed)
    message = "not in the list of statuses" + (f"; did you mean {hint!r}?" if hint else "")
    return _problem(edit.line, "Status activiteit", ProblemCode.UNKNOWN_STATUS, message)


def _problem(line: int | None, column: str, code: ProblemCode, message: str) -> Problem:
    return Problem(line=line, column=column, code=code, message=message, severity=Severity.ERROR)


def status_update(
    run: Run,
    m: Municipality,
    edits: list[StatusEdit],
    problems: list[Problem] | None = None,
    *,
    blank_lines: int = 0,
) -> SiteOutcome:
    """Apply ``edits``. ``problems`` found in the input are reported together with the edits'
    row IDs that are not in the workbook, so one attempt lists everything; nothing is written
    if there are any. A line whose status is already in the workbook is no change: only the
    others are applied (and checked for someone else's change meanwhile)."""
    base: dict[str, str] = {}
    changing: list[StatusEdit] = []
    conflicts: list[str] = []
    first_read = True

    def make_plan(loaded: workbook.LoadedWorkbook | None) -> Plan:
        nonlocal first_read
        if loaded is None:
            raise UsageError(f"{m.id}: the site has no workbook yet", hint="AgII runs init/push")
        refuse_unwritable(loaded, run.today)
        current = {row.rij_id: row.status_activiteit for row in loaded.shared_rows}
        if first_read:
            _refuse_bad_lines(edits, problems or [], current)
            base.update(current)
            changing.extend(e for e in edits if not e.keeps(current[e.row_id]))
            first_read = False
        conflicts.clear()
        wanted: dict[str, str] = {}
        for edit in edits:
            now = current.get(edit.row_id)
            if now is None or (now != base[edit.row_id] and not edit.keeps(now)):
                # someone else set a third value since the first read: also on a line that
                # asked for what the workbook held then (its "no change" no longer holds)
                conflicts.append(edit.row_id)
            elif edit in changing and edit.status is not None:  # off the list: refused
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

    named = frozenset(e.row_id for e in edits)
    outcome = run.update_workbook(m, make_plan, STATUS, guard=guard, only=named)
    if outcome.error is not None:
        return outcome
    if outcome.etag_before is None:  # no workbook: make_plan never ran, nothing was saved
        raise UsageError(f"{m.id}: the site has no workbook yet", hint="AgII runs init/push")
    changed = sum(1 for e in changing if e.row_id not in conflicts)
    unchanged = sum(1 for e in edits if e not in changing and e.row_id not in conflicts)
    unchanged += blank_lines
    outcome.facts.append(StatusLinesDone(changed, unchanged, list(conflicts)))
    if conflicts:
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
        _problem(e.line, "Rij-ID", ProblemCode.UNKNOWN_ROW_ID, f"{e.row_id} is not on this site")
        for e in edits
        if e.row_id not in current
    ]
    off_list = [
        _unknown_status(e)
        for e in edits
        if e.status is None and not (e.row_id in current and e.keeps(current[e.row_id]))
    ]
    everything = sorted(
        [*problems, *unknown, *off_list], key=lambda p: (p.line or 0, p.column or "")
    )
    if everything:
        raise DataRejected(
            f"{len(everything)} problem(s) in the status lines; nothing was written", everything
        )
