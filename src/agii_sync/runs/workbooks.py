"""``init``, ``check`` and ``purge``: commands that work from the workbooks alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import interrupt
from ..config import Municipality
from ..domain.check import Finding
from ..domain.plan import plan_purge
from ..engine import Run, SiteOutcome, refuse_unwritable
from ..errors import AgiiError, DeleteLimitExceeded, ExitCode

if TYPE_CHECKING:
    from ..formats import workbook


def init_site(run: Run, m: Municipality) -> SiteOutcome:
    """Create the empty workbook where there is none; never overwrite one."""
    site = run.site(m)
    outcome = SiteOutcome(m.id)
    snapshot = site.read()
    outcome.etag_before = snapshot.etag
    if snapshot.exists:
        outcome.details["already_present"] = 1
        outcome.etag_after = snapshot.etag
        return outcome
    if not run.dry_run:
        from ..formats import workbook  # openpyxl: imported when a workbook is made

        empty = workbook.create_workbook(
            run.config.workbook.sheet, retention_months=run.config.agii.retention_months
        )
        run.write_anchored(site, outcome, empty, None, None)
        outcome.created = True
    return outcome


def check_site(run: Run, m: Municipality) -> SiteOutcome:
    outcome = SiteOutcome(m.id)
    snapshot = run.site(m).read()
    outcome.etag_before = outcome.etag_after = snapshot.etag
    loaded = run.load(snapshot)
    if loaded is None:
        outcome.findings.append(
            Finding(None, None, "no_workbook", "the site has no workbook; run `agii-sync init`")
        )
    else:
        outcome.audited_rows = len(loaded.rows)
        outcome.findings.extend(run.findings(loaded))
        outcome.findings.extend(
            Finding(None, None, "calls_out", f"{what}: must not be in a shared workbook")
            for what in loaded.hostile
        )
        if not loaded.has_toelichting:
            outcome.findings.append(
                Finding(
                    None,
                    None,
                    "toelichting_missing",
                    "the Toelichting sheet is missing; the next push or purge restores it",
                )
            )
        outcome.findings.extend(_missing_rows(run, m, loaded))
        if m.protocol_ended(run.today) and loaded.rows:
            outcome.findings.append(
                Finding(None, None, "protocol_ended", "the protocol has ended; run purge")
            )
    if outcome.findings:
        outcome.exit_code = ExitCode.DATA
    return outcome


def purge_site(run: Run, m: Municipality) -> SiteOutcome:
    """Remove rows past retention (within max_delete), or all rows once the protocol ended
    (the law, so no limit); then drop the site's older versions of the workbook.

    The older versions are deleted on every purge that finds a workbook, not only when this
    purge removed rows: a push removes people too (moved away, past retention), and a purge
    whose version deletion failed must not leave them behind for good once its rows are gone.
    """
    ended = m.protocol_ended(run.today)
    limit = run.config.agii.max_delete

    other_sheets: list[str] = []

    def make_plan(loaded):  # type: ignore[no-untyped-def]
        if not ended:  # at the protocol's end everything goes, hand-added rows included
            refuse_unwritable(loaded, run.today)
        else:  # sheets someone added are kept as they are, but may hold copied data
            from ..formats.toelichting import TOELICHTING_SHEET

            ours = (loaded.sheet_name, TOELICHTING_SHEET)
            other_sheets[:] = [name for name in loaded.sheetnames if name not in ours]
        plan = plan_purge(loaded.shared_rows, today=run.today, protocol_ended=ended)
        removed = len(plan.removed)
        if not ended and not limit.allows(removed, plan.total_before):
            raise DeleteLimitExceeded(
                f"{m.id}: purge would remove {removed} of {plan.total_before} people, "
                f"more than max_delete {limit}",
                plan,
                hint="check the dates in 'Bewaren tot'; raise max_delete in the config if right",
            )
        return plan

    outcome = run.update_workbook(m, make_plan, create_missing=False, memory="merge")
    if other_sheets:
        outcome.details["other_sheets_kept"] = len(other_sheets)
    if run.dry_run or outcome.etag_after is None:  # a dry run, or no workbook on the site
        return outcome
    try:
        interrupt.check()
        outcome.versions_deleted = run.site(m).delete_old_versions()
    except AgiiError as error:
        # The rows are already gone from the workbook: keep that in the report and the audit
        # line, and fail the site so the next purge (which deletes versions again) is due.
        outcome.fail(error)
    else:
        outcome.details["versions_deleted"] = outcome.versions_deleted
    return outcome


def _missing_rows(run: Run, m: Municipality, loaded: workbook.LoadedWorkbook) -> list[Finding]:
    present = {row.rij_id for row in loaded.shared_rows}
    return [
        Finding(
            None,
            "Rij-ID",
            "missing_row",
            f"{row_id} was in the workbook after the last push and is missing now "
            "(deleted by hand?); the next push restores it with its status",
        )
        for row_id in sorted(set(run.memory.read(m.id)) - present)
    ]
