"""``push``: route the export's valid rows to their municipality and bring each workbook in line.

Rules: a person reaches only the site of the municipality they live in; every existing
``Status activiteit`` is kept; people gone from the export are removed (``moved_away``), people
past retention too (``retention``); ``max_delete`` stops a run that would remove too much.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..auth import rowkey_secret
from ..config import DeleteLimit, Municipality
from ..domain.export import ExportRecord, to_shared_row
from ..domain.plan import Plan, plan_push, statuses_kept
from ..domain.problems import Problem, has_errors
from ..domain.routing import route
from ..domain.row import SharedRow
from ..domain.rowkey import row_key
from ..engine import Run, SiteOutcome, refuse_unwritable, worst
from ..errors import ExitCode, SafetyStop
from ..formats.export_reader import read_export
from .access import require_access
from .window import require_protocol_active


@dataclass
class ExportSummary:
    rows_read: int
    valid: int
    problems: list[Problem]
    unknown_columns: list[str]
    skipped_other_nis: int

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.DATA if has_errors(self.problems) else ExitCode.OK


@dataclass
class PushReport:
    export: ExportSummary
    outcomes: list[SiteOutcome] = field(default_factory=list)
    blocked_by_strict: bool = False

    @property
    def exit_code(self) -> ExitCode:
        return worst(self.outcomes, self.export.exit_code)


def push(
    run: Run,
    export_path: Path,
    *,
    sites: list[str] | None,
    max_delete: DeleteLimit | None = None,
    strict: bool = False,
) -> PushReport:
    municipalities = run.config.select(sites)
    result = read_export(export_path)
    routing = route(result.records, run.config.municipalities)
    summary = ExportSummary(
        rows_read=result.rows_read,
        valid=sum(len(v) for v in routing.by_site.values()),
        problems=sorted([*result.problems, *routing.problems], key=_problem_order),
        unknown_columns=list(result.unknown_columns),
        skipped_other_nis=routing.skipped_other_nis,
    )
    report = PushReport(summary)
    if strict and has_errors(summary.problems):
        report.blocked_by_strict = True
        return report
    secret = rowkey_secret()
    rejected = [*result.rejected, *routing.rejected]
    limit = max_delete or run.config.agii.max_delete

    def one_site(m: Municipality) -> SiteOutcome:
        keep = frozenset(row_key(secret, nis, dossier) for nis, dossier in rejected if nis == m.nis)
        desired = [_shared_row(run, secret, m, r) for r in routing.by_site.get(m.id, [])]
        return push_site(run, m, desired, keep=keep, limit=limit)

    report.outcomes = run.for_each_site(municipalities, one_site)
    return report


def _problem_order(problem: Problem) -> tuple[int, str]:
    return (problem.line or 0, problem.column or "")


def _shared_row(run: Run, secret: bytes, m: Municipality, record: ExportRecord) -> SharedRow:
    return to_shared_row(
        record,
        row_id=row_key(secret, m.nis, record.dossiernummer),
        retention_months=run.config.agii.retention_months,
    )


def push_site(
    run: Run,
    m: Municipality,
    desired: list[SharedRow],
    *,
    keep: frozenset[str],
    limit: DeleteLimit,
) -> SiteOutcome:
    require_protocol_active(m, run.today)
    require_access(run, m)

    def make_plan(loaded):  # type: ignore[no-untyped-def]
        refuse_unwritable(loaded, run.today)
        current = loaded.shared_rows if loaded else []
        plan = plan_push(current, desired, today=run.today, keep=keep)
        _check_delete_limit(m, plan, limit)
        _guard_plan(m, current, plan)
        return plan

    outcome = run.update_workbook(m, make_plan)
    outcome.details["past_retention_not_added"] = sum(
        1 for row in desired if row.bewaren_tot is not None and run.today > row.bewaren_tot
    )
    return outcome


def _check_delete_limit(m: Municipality, plan: Plan, limit: DeleteLimit) -> None:
    removed = len(plan.removed)
    if not limit.allows(removed, plan.total_before):
        raise SafetyStop(
            f"{m.id}: the push would remove {removed} of {plan.total_before} people, "
            f"more than max_delete {limit}",
            hint="check the export is complete; if the removals are right, pass "
            "--max-delete with a higher limit",
        )


def _guard_plan(m: Municipality, before: list[SharedRow], plan: Plan) -> None:
    """Last line of defence before anything is written: the promises of CONTRACT §8."""
    lost = statuses_kept(before, plan.rows)
    if lost:
        raise SafetyStop(f"{m.id}: internal check failed: {len(lost)} statuses would change")
    touched = {c.row_id for c in plan.of("added", "updated")}
    strays = [r for r in plan.rows if r.rij_id in touched and r.postcode not in m.postal_codes]
    if strays:
        raise SafetyStop(f"{m.id}: internal check failed: rows of another municipality")
