"""A command's run: what every site's work needs to know, and the steps it is made of.

``Run`` holds the run's context (config, command, date, audit trail, status memory, the
suppression list) and the steps a site's work takes: open the site, read its workbook, render
and write it under an anchored write-ahead note, delete its older versions. Two pieces do the
rest, one job each: ``SitePool`` (site_pool.py) runs the work on every site at once and audits
each outcome; ``ConditionalUpdate`` (conditional_update.py) is the read → plan → guard → write
loop with its retries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from . import interrupt
from .audit import AuditTrail, AuditUnwritable, current_actor, trail_for
from .conditional_update import ConditionalUpdate, Guard, PlanMaker, ProofMaker, UpdateShape
from .config import Config, DeleteLimit, Municipality
from .domain.check import Finding, check_rows, key_findings
from .domain.plan import Plan, Reason, Withheld
from .errors import (
    AgiiError,
    DeleteLimitExceeded,
    EtagConflict,
    LayoutError,
    SafetyStop,
    WorkbookLocked,
)
from .outcome import SiteOutcome, VersionsDeleted
from .parallel import in_workers
from .row_proofs import RowProofs
from .site_pool import SiteAudit, SitePool, SiteWork
from .sites.base import Site, Snapshot
from .sites.factory import SiteOpener
from .status_memory import StatusMemory
from .suppression import SuppressionList

if TYPE_CHECKING:  # openpyxl: imported when a workbook is read or written, not at start-up
    from .formats import workbook

log = logging.getLogger("agii_sync.engine")

UNWRITABLE = frozenset({"invalid_row_id", "duplicate_row_id", "formula"})
WRITING_COMMANDS = frozenset({"init", "push", "purge", "status-update"})


@dataclass
class Run:
    """One invocation of a command: what every site's work needs to know."""

    config: Config
    command: str
    today: date
    dry_run: bool = False
    opener: SiteOpener | None = None
    audit: AuditTrail | None = None
    actor: str = ""
    key_check: str | None = None  # of the row-key secret, for commands that make Rij-IDs
    memory: StatusMemory = field(init=False)
    proofs: RowProofs = field(init=False)  # kept and removed with the status memory
    suppression: SuppressionList = field(init=False)

    def __post_init__(self) -> None:
        self.suppression = SuppressionList(self.config.suppression_list)
        self.opener = self.opener or SiteOpener(self.config)
        self.actor = self.actor or current_actor(self.config)
        self.audit = self.audit or trail_for(self.config, self.actor)
        self.memory = StatusMemory(self.config.audit_log)
        self.proofs = RowProofs(self.config.audit_log)
        with interrupt.deferred():  # appends lines: not cut short by Ctrl-C
            self.recover_notes()

    @property
    def writes(self) -> bool:
        return self.command in WRITING_COMMANDS and not self.dry_run

    def recover_notes(self) -> None:
        """Record the writes of runs that died. A command that writes needs a writable trail
        and sound notes before it touches anything; a read-only one goes ahead regardless."""
        assert self.audit is not None
        if self.writes:
            try:
                self.audit.ensure_writable()
            except AuditUnwritable as error:
                raise error.before_any_write() from None
            rejected = self.audit.recover_interrupted().rejected
            if rejected:
                raise rejected[0].error()
            return
        try:
            rejected = self.audit.recover_interrupted().rejected
        except AgiiError as error:  # an unwritable trail, a damaged key: the notes wait
            log.warning("audit.notes_not_recovered", extra={"fields": {"error": _name(error)}})
            return
        for problem in rejected:
            fields = {"note": problem.path.name, "reason": problem.reason}
            log.warning("audit.note_rejected", extra={"fields": fields})

    def current_actor(self) -> str:
        """The person signed in for this run (device code), once they have; else the app id
        or the OS account (``audit.current_actor``)."""
        account = self.opener.signed_in_account() if self.opener else None
        return f"user:{account}" if account else self.actor

    def suppressed(self, m: Municipality) -> Withheld:
        """The people of this site on the suppression list (``forget``), by Rij-ID."""
        return dict.fromkeys(self.suppression.row_ids(m.id), "suppressed")

    def site(self, municipality: Municipality) -> Site:
        assert self.opener is not None
        return self.opener.open(municipality)

    def read_only(
        self, m: Municipality, *, status_only: bool = False
    ) -> tuple[SiteOutcome, workbook.LoadedWorkbook | None]:
        """Read a site's workbook for work that writes nothing: the outcome (the ETag read,
        before and after) and the workbook, None when the site has none."""
        outcome = SiteOutcome(m.id)
        snapshot = self.site(m).read()
        outcome.etag_before = outcome.etag_after = snapshot.etag
        return outcome, self.load(snapshot, status_only=status_only)

    def for_each_site(
        self, municipalities: Iterable[Municipality], work: SiteWork
    ) -> list[SiteOutcome]:
        """``work`` on every site at once; one outcome per site, in order (``SitePool``)."""
        return SitePool(self).map(municipalities, work)

    def update_workbook(
        self,
        municipality: Municipality,
        make_plan: PlanMaker,
        shape: UpdateShape,
        *,
        guard: Guard | None = None,
        only: frozenset[str] | None = None,
        proofs: ProofMaker | None = None,
    ) -> SiteOutcome:
        """Read the workbook, plan, and write the result if the plan changes anything; a
        failure is in the outcome (``ConditionalUpdate``). ``only``: the plan needs only the
        rows with these Rij-IDs (a status-update). ``proofs``: the row proofs of the plan's
        rows, kept once the workbook holds them (a push)."""
        return ConditionalUpdate(self, municipality, make_plan, shape, guard, only, proofs)()

    def delete_versions(self, m: Municipality, outcome: SiteOutcome) -> None:
        """Delete the workbook's older versions after a write or purge: they would still hold
        the people just removed."""
        if self.dry_run or outcome.etag_after is None:  # a dry run, or no workbook on the site
            return
        try:
            interrupt.check()
            deleted = self.site(m).delete_old_versions()
        except AgiiError as error:
            # The rows are already gone from the workbook: keep that in the report and the
            # audit line, and fail the site so the next purge (which deletes versions again)
            # is due.
            outcome.fail(error)
        else:
            outcome.facts.append(VersionsDeleted(deleted))

    def write_anchored(
        self, site: Site, outcome: SiteOutcome, content: bytes, if_match: str | None
    ) -> None:
        """Write the workbook with the trail's anchor in it, under a write-ahead note: a run
        killed after the write still leaves a trace the next run records."""
        from .formats import docprops

        assert self.audit is not None
        anchor = self.audit.anchor()
        content = in_workers(
            docprops.set_property, content, docprops.ANCHOR_PROPERTY, anchor.text()
        )
        interrupt.check()  # the last point to stop: from here the write goes through
        event = SiteAudit(self).event(outcome, rows=True)
        pending = self.audit.begin_write(event, anchor)
        try:
            outcome.etag_after = site.write(content, if_match)
        except (EtagConflict, WorkbookLocked):
            pending.done()  # refused: nothing was written
            raise
        except BaseException:
            pending.abandon()  # it may have landed: the next run records it as interrupted
            raise
        outcome.written = True
        outcome.write_id = anchor.write
        outcome.pending = pending

    def load(
        self,
        snapshot: Snapshot,
        *,
        status_only: bool = False,
        only: frozenset[str] | None = None,
    ) -> workbook.LoadedWorkbook | None:
        if snapshot.content is None:
            return None
        from .formats import workbook

        sheet = self.config.workbook.sheet
        return in_workers(
            workbook.load, snapshot.content, sheet, status_only=status_only, only=only
        )

    def render(
        self,
        m: Municipality,
        loaded: workbook.LoadedWorkbook | None,
        plan: Plan,
        shape: UpdateShape,
    ) -> tuple[bytes, list[str]]:
        """The bytes to write, and what could not be carried over with its row."""
        from .formats import workbook

        template = {
            "retention_months": self.config.retention_months(m),
            "key_check": self.key_check or (loaded.key_check if loaded else None),
        }
        if loaded is None or shape.fresh:
            sheet = self.config.workbook.sheet
            return in_workers(workbook.create_workbook, sheet, plan.rows, **template), []
        restore = shape.restore(loaded)
        edited = in_workers(
            workbook.render, loaded, plan.rows, restore_toelichting=restore, **template
        )
        return edited.content, edited.not_carried

    def findings(self, loaded: workbook.LoadedWorkbook) -> list[Finding]:
        return check_rows(loaded.rows, self.today)


def refuse_unwritable(loaded: workbook.LoadedWorkbook | None, today: date) -> None:
    """A workbook with hand-added rows, duplicate keys, formulas, or content that calls out
    (a macro project, external links, ...) needs a person first."""
    if loaded is None:
        return
    if loaded.hostile:
        raise LayoutError(
            f"the workbook holds what a shared workbook must not: {'; '.join(loaded.hostile)}",
            hint="remove it in Excel (or run `agii-sync check`), then run again; "
            "nothing was written",
        )
    every = loaded.every_key_finding
    for finding in key_findings(loaded.rows) if every is None else every:
        if finding.code in UNWRITABLE:
            raise LayoutError(
                f"row {finding.row}, column {finding.column!r}: {finding.message}",
                hint="fix the workbook by hand (or run `agii-sync check`), then run again",
            )


def refuse_another_secret(
    m: Municipality, loaded: workbook.LoadedWorkbook | None, mine: str | None
) -> None:
    """Rij-IDs made with another row-key secret match none of the workbook's: a push would
    replace every row (every status lost), pull-status would read no status. A workbook
    without the mark (an older one) is adopted."""
    if loaded is not None and loaded.key_check and mine and loaded.key_check != mine:
        from .auth import ROWKEY_ENV  # msal, keyring: only on this path

        raise SafetyStop(
            f"{m.id}: the row-key secret differs from the one this workbook was written with; "
            "no Rij-ID would match (a push would replace every row and lose every status)",
            hint=f"use the row-key secret of earlier runs ({ROWKEY_ENV} or `agii-sync login`)",
        )


def _name(error: BaseException) -> str:
    return type(error).__name__


def refuse_over_limit(
    m: Municipality, plan: Plan, limit: DeleteLimit, *reasons: Reason, doing: str, hint: str
) -> None:
    """Stop (exit 5, the plan kept for the report) when ``doing`` would remove more people
    than ``max_delete`` for ``reasons``: the removals a bad input could cause."""
    removed = len(plan.of(*reasons))
    if not limit.allows(removed, plan.total_before):
        raise DeleteLimitExceeded(
            f"{m.id}: {doing} would remove {removed} of {plan.total_before} people, "
            f"more than max_delete {limit}",
            plan,
            hint=hint,
        )
