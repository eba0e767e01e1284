"""The pipeline every command shares: read → plan → apply → guard → write, per site.

A site's write is conditional on the ETag read; when the workbook changed meanwhile the engine
reads again and plans again (bounded), so nobody's edit is lost. Sites run concurrently in a
small pool; each site's outcome is reported on its own, and one site's failure never stops the
others. Every site touched gets one audit line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from . import interrupt
from .audit import AuditTrail, AuditUnwritable, PendingWrite, audit_event, current_actor, trail_for
from .auth import ROWKEY_ENV
from .config import Config, Municipality
from .domain.check import Finding, check_rows
from .domain.plan import Plan, Withheld
from .errors import (
    AgiiError,
    EtagConflict,
    ExitCode,
    Interrupted,
    LayoutError,
    SafetyStop,
    TemporaryFailure,
    WorkbookLocked,
)
from .parallel import WorkbookProcesses, usable_cores
from .runs.window import refuse_after_the_end
from .sites.base import Site, Snapshot
from .sites.factory import SiteOpener
from .status_memory import StatusMemory
from .suppression import SuppressionList

if TYPE_CHECKING:  # openpyxl: imported when a workbook is read or written, not at start-up
    from .formats import workbook

log = logging.getLogger("agii_sync.engine")

MAX_ATTEMPTS = 5
UNWRITABLE = frozenset({"invalid_row_id", "duplicate_row_id", "formula"})
WRITING_COMMANDS = frozenset({"init", "push", "purge", "status-update"})

PlanMaker = Callable[["workbook.LoadedWorkbook | None"], Plan]
Guard = Callable[[bytes | None, bytes, Plan], None]


@dataclass
class SiteOutcome:
    site: str
    exit_code: ExitCode = ExitCode.OK
    plan: Plan | None = None
    findings: list[Finding] = field(default_factory=list)
    error: AgiiError | None = None
    etag_before: str | None = None
    etag_after: str | None = None
    written: bool = False
    created: bool = False
    attempts: int = 0
    versions_deleted: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    audited_rows: int | None = None  # rows read, for read-only commands
    pending: PendingWrite | None = None  # the write-ahead note, until the audit line is out
    write_id: str | None = None  # of the write that landed: in its anchor and its audit line
    warnings: list[str] = field(default_factory=list)

    def fail(self, error: AgiiError) -> SiteOutcome:
        self.error = error
        self.exit_code = max(self.exit_code, error.exit_code)
        return self

    @property
    def stopped(self) -> str | None:
        """``not_started`` or ``abandoned`` when Ctrl-C/SIGTERM stopped this site unwritten."""
        if isinstance(self.error, Interrupted) and not self.written:
            return self.error.stage
        return None

    def state(self, dry_run: bool) -> str:
        """written, not_started, abandoned, failed, findings, planned (dry run) or unchanged."""
        if self.written:
            return "written"
        if self.stopped:
            return self.stopped
        if self.error is not None:
            return "failed"
        if self.findings:
            return "findings"
        if dry_run and self.plan is not None and not self.plan.is_empty:
            return "planned"
        return "unchanged"

    @property
    def done_plan(self) -> Plan | None:
        """The plan as far as it was carried out (or, in a dry run, planned): counts say what
        was done, not what a failure prevented."""
        return self.plan if self.error is None or self.written else None

    @property
    def reason(self) -> str | None:
        if self.error is not None:
            return self.error.code
        return "findings" if self.findings else None


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
    processes: WorkbookProcesses = field(default_factory=lambda: WorkbookProcesses(1))
    memory: StatusMemory = field(init=False)
    suppression: SuppressionList = field(init=False)

    def __post_init__(self) -> None:
        self.suppression = SuppressionList(self.config.suppression_list)
        self.opener = self.opener or SiteOpener(self.config)
        self.opener = self.opener or SiteOpener(self.config)
        self.actor = self.actor or current_actor(self.config)
        self.audit = self.audit or trail_for(self.config, self.actor)
        self.memory = StatusMemory(self.config.audit_log)
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

    def for_each_site(
        self,
        municipalities: Iterable[Municipality],
        work: Callable[[Municipality], SiteOutcome],
    ) -> list[SiteOutcome]:
        municipalities = list(municipalities)
        workers = max(1, min(self.config.agii.workers, len(municipalities)))
        inline = self.processes
        # The workbook work of the sites goes to one process per core; the threads wait on
        # the network and on those processes. Ctrl-C only flags the stop meanwhile: every
        # site then stops at its next step and is reported and audited as it stands.
        with (
            interrupt.deferred(),
            WorkbookProcesses(min(workers, usable_cores())) as self.processes,
        ):
            try:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="site") as pool:
                    return list(pool.map(lambda m: self._guarded(m, work), municipalities))
            finally:
                self.processes = inline

    def _guarded(
        self, municipality: Municipality, work: Callable[[Municipality], SiteOutcome]
    ) -> SiteOutcome:
        started = time.monotonic()
        log.info("site.start", extra={"fields": {"command": self.command, "site": municipality.id}})
        try:
            if interrupt.stopped():
                raise Interrupted(interrupt.signal_name(), "not_started")
            refuse_after_the_end(municipality, self.today, self.command)
            outcome = work(municipality)
        except AgiiError as error:
            # The outcome so far (the ETag read, ...) when the error left update_workbook.
            so_far = error.outcome
            outcome = so_far if isinstance(so_far, SiteOutcome) else SiteOutcome(municipality.id)
            outcome.fail(error)
            outcome.plan = getattr(error, "plan", None) or outcome.plan  # what would have been
        self._audit(outcome)
        self._log_site(outcome, started)
        return outcome

    def _log_site(self, outcome: SiteOutcome, started: float) -> None:
        """One line per site in the log file: what happened, why (a stable code), how much."""
        fields: dict[str, Any] = {
            "command": self.command,
            "site": outcome.site,
            "outcome": outcome.state(self.dry_run),
            "exit_code": int(outcome.exit_code),
            "reason": outcome.reason,
            "counts": self._counts(outcome, outcome.done_plan),
            "duration_ms": round((time.monotonic() - started) * 1000),
            "written": outcome.written,
        }
        if outcome.plan is not None and outcome.done_plan is None:
            fields["planned"] = dict(outcome.plan.counts())  # what the stop prevented
        if outcome.findings:
            fields["finding_codes"] = sorted({f.code for f in outcome.findings})
        log.info("site.done", extra={"fields": fields})

    def _audit(self, outcome: SiteOutcome) -> None:
        assert self.audit is not None
        event = self._event(outcome, outcome.done_plan, rows=outcome.written)
        event["exit_code"] = int(outcome.exit_code)
        if outcome.error is not None:
            event["error"] = type(outcome.error).__name__
        if outcome.written and outcome.details.get("not_carried_cells"):
            event["not_carried"] = list(outcome.details["not_carried_cells"])
        if outcome.stopped:
            event["stopped"] = outcome.stopped
        try:
            self.audit.append(event)
        except AuditUnwritable as error:
            self._audit_line_lost(outcome, error)
            return
        if outcome.pending is not None:
            outcome.pending.done()

    def _audit_line_lost(self, outcome: SiteOutcome, error: AuditUnwritable) -> None:
        """A write's note stays for the next run to record; a read-only command still gives
        its answer, with a warning."""
        log.warning("audit.unwritable", extra={"fields": {"site": outcome.site}})
        if outcome.pending is not None:
            outcome.pending.abandon()
            outcome.pending = None
        if self.writes:
            outcome.fail(error)
        else:
            outcome.warnings.append(f"{error.message}: this run left no audit line")

    @staticmethod
    def _counts(outcome: SiteOutcome, plan: Plan | None) -> dict[str, int]:
        counts: dict[str, int] = dict(plan.counts()) if plan else {}
        if outcome.audited_rows is not None:
            counts["rows_read"] = outcome.audited_rows
        counts.update({k: v for k, v in outcome.details.items() if isinstance(v, int)})
        return counts

    def _event(self, outcome: SiteOutcome, plan: Plan | None, *, rows: bool) -> dict[str, Any]:
        counts = self._counts(outcome, plan)
        return audit_event(
            actor=self.current_actor(),
            command=self.command + (" --dry-run" if self.dry_run else ""),
            site=outcome.site,
            etag_before=outcome.etag_before,
            etag_after=outcome.etag_after,
            counts=counts,
            rows=[(c.row_id, c.reason) for c in plan.changes] if plan and rows else [],
        ) | ({"write_id": outcome.write_id} if outcome.write_id else {})

    # -- the read → plan → write loop ---------------------------------------------------

    def update_workbook(
        self,
        municipality: Municipality,
        make_plan: PlanMaker,
        *,
        guard: Guard | None = None,
        create_missing: bool = True,
        repair: bool = True,
        memory: str | None = None,
        status_only: bool = False,
        fresh: bool = False,
    ) -> SiteOutcome:
        """Read the workbook, plan, and write the result if the plan changes anything.

        On an ETag conflict the workbook is read and planned again, up to MAX_ATTEMPTS.
        ``memory`` ("replace" or "merge"): how the statuses written are remembered. ``fresh``
        writes the template with the plan's rows and nothing else (no sheet or note someone
        added): the protocol's end."""
        site = self.site(municipality)
        outcome = SiteOutcome(municipality.id)
        try:
            shape = _Shape(create_missing, repair, status_only, fresh)
            outcome = self._update(site, municipality, outcome, make_plan, guard, shape)
        except AgiiError as error:
            error.outcome = outcome  # the audit line keeps the ETag read
            raise
        if memory and outcome.plan is not None and not self.dry_run and outcome.etag_after:
            self._remember(municipality.id, outcome.plan, memory)
        return outcome

    def _remember(self, site: str, plan: Plan, how: str) -> None:
        if how == "replace":
            self.memory.replace(site, plan.rows)
        else:
            changed = {c.row_id for c in plan.changes}
            rows = [r for r in plan.rows if r.rij_id in changed]
            self.memory.merge(site, rows, [c.row_id for c in plan.removed])

    def _update(
        self,
        site: Site,
        municipality: Municipality,
        outcome: SiteOutcome,
        make_plan: PlanMaker,
        guard: Guard | None,
        shape: _Shape,
    ) -> SiteOutcome:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            outcome.attempts = attempt
            interrupt.check()
            snapshot = site.read()
            outcome.etag_before = outcome.etag_before or snapshot.etag
            loaded = self.load(snapshot, status_only=shape.status_only)
            if loaded is None and not shape.create_missing:
                return outcome
            interrupt.check()
            plan = make_plan(loaded)
            outcome.plan = plan
            restore = shape.restore(loaded)
            if self.dry_run or (plan.is_empty and loaded is not None and not restore):
                outcome.etag_after = snapshot.etag
                return outcome
            content, not_carried = self._render(municipality, loaded, plan, shape)
            if not_carried:
                outcome.details["not_carried"] = len(not_carried)
                outcome.details["not_carried_cells"] = not_carried
            if guard is not None:
                guard(snapshot.content, content, plan)
            try:
                self.write_anchored(site, outcome, content, snapshot.etag, plan)
            except EtagConflict:
                log.info(
                    "site.conflict", extra={"fields": {"site": municipality.id, "attempt": attempt}}
                )
                continue
            outcome.created = loaded is None
            return outcome
        raise TemporaryFailure(
            f"{municipality.id}: the workbook kept changing while agii-sync wrote it "
            f"({MAX_ATTEMPTS} attempts); nothing was written",
            hint="someone else is editing it; run again later",
        )

    def delete_versions(self, m: Municipality, outcome: SiteOutcome) -> None:
        """Delete the workbook's older versions after a write or purge: they would still hold
        the people just removed."""
        if self.dry_run or outcome.etag_after is None:  # a dry run, or no workbook on the site
            return
        try:
            interrupt.check()
            outcome.versions_deleted = self.site(m).delete_old_versions()
        except AgiiError as error:
            # The rows are already gone from the workbook: keep that in the report and the
            # audit line, and fail the site so the next purge (which deletes versions again)
            # is due.
            outcome.fail(error)
        else:
            outcome.details["versions_deleted"] = outcome.versions_deleted

    def write_anchored(
        self,
        site: Site,
        outcome: SiteOutcome,
        content: bytes,
        if_match: str | None,
        plan: Plan | None,
    ) -> None:
        """Write the workbook with the trail's anchor in it, under a write-ahead note: a run
        killed after the write still leaves a trace the next run records."""
        from .formats import docprops

        assert self.audit is not None
        anchor = self.audit.anchor()
        content = self.processes.call(
            docprops.set_property, content, docprops.ANCHOR_PROPERTY, anchor.text()
        )
        interrupt.check()  # the last point to stop: from here the write goes through
        pending = self.audit.begin_write(self._event(outcome, plan, rows=True), anchor)
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
        self, snapshot: Snapshot, *, status_only: bool = False
    ) -> workbook.LoadedWorkbook | None:
        if snapshot.content is None:
            return None
        from .formats import workbook

        sheet = self.config.workbook.sheet
        return self.processes.call(workbook.load, snapshot.content, sheet, status_only=status_only)

    def _render(
        self,
        m: Municipality,
        loaded: workbook.LoadedWorkbook | None,
        plan: Plan,
        shape: _Shape,
    ) -> tuple[bytes, list[str]]:
        """The bytes to write, and what could not be carried over with its row."""
        from .formats import workbook

        template = {
            "retention_months": self.config.retention_months(m),
            "key_check": self.key_check or (loaded.key_check if loaded else None),
        }
        if loaded is None or shape.fresh:
            sheet = self.config.workbook.sheet
            return self.processes.call(workbook.create_workbook, sheet, plan.rows, **template), []
        restore = shape.restore(loaded)
        edited = self.processes.call(
            workbook.render, loaded, plan.rows, restore_toelichting=restore, **template
        )
        return edited.content, edited.not_carried

    def findings(self, loaded: workbook.LoadedWorkbook) -> list[Finding]:
        return check_rows(loaded.rows, self.today)


@dataclass(frozen=True)
class _Shape:
    """How ``update_workbook`` treats the workbook beyond the plan's rows."""

    create_missing: bool
    repair: bool
    status_only: bool
    fresh: bool

    def restore(self, loaded: workbook.LoadedWorkbook | None) -> bool:
        """Whether to write even when the plan changes no row: a lost Toelichting is put back
        and, at the protocol's end, nothing but the template may remain."""
        if loaded is None:
            return False
        if self.fresh:
            from .formats.extras import extras

            extra = extras(loaded.content, loaded.sheetnames, loaded.sheet_name)
            return not loaded.has_toelichting or not extra.none
        return self.repair and not loaded.has_toelichting


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
    for finding in check_rows(loaded.rows, today):
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
        raise SafetyStop(
            f"{m.id}: the row-key secret differs from the one this workbook was written with; "
            "no Rij-ID would match (a push would replace every row and lose every status)",
            hint=f"use the row-key secret of earlier runs ({ROWKEY_ENV} or `agii-sync login`)",
        )


def _name(error: BaseException) -> str:
    return type(error).__name__


def worst(outcomes: Iterable[SiteOutcome], *more: ExitCode) -> ExitCode:
    codes = [o.exit_code for o in outcomes] + list(more)
    return max(codes, default=ExitCode.OK)
