"""Runs one command's work on each of its sites at once, and accounts for every site.

Threads wait on the network; the workbook work (openpyxl, CPU-bound) goes to worker processes,
one per core (``parallel.in_workers``). One site's failure never stops the others: each site's
work ends in a ``SiteOutcome``, however it ended, and every site gets one audit line and one
log line.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import interrupt
from .audit import AuditUnwritable, audit_event
from .errors import AgiiError, Interrupted
from .outcome import NotCarried, SiteOutcome
from .parallel import WorkbookProcesses, usable_cores, workbook_processes
from .runs.window import refuse_after_the_end

if TYPE_CHECKING:
    from .config import Municipality
    from .engine import Run

log = logging.getLogger("agii_sync.engine")

SiteWork = Callable[["Municipality"], SiteOutcome]


class SitePool:
    def __init__(self, run: Run) -> None:
        self.run = run

    def map(self, municipalities: Iterable[Municipality], work: SiteWork) -> list[SiteOutcome]:
        municipalities = list(municipalities)
        workers = max(1, min(self.run.config.agii.workers, len(municipalities)))
        # Ctrl-C only flags the stop meanwhile: every site then stops at its next step and is
        # reported and audited as it stands.
        with (
            interrupt.deferred(),
            WorkbookProcesses(min(workers, usable_cores())) as processes,
            workbook_processes(processes),
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="site") as pool,
        ):
            # Each site's thread works in a copy of this context: it sees the worker processes.
            futures = [
                pool.submit(contextvars.copy_context().run, self._one_site, m, work)
                for m in municipalities
            ]
            return [future.result() for future in futures]

    def _one_site(self, municipality: Municipality, work: SiteWork) -> SiteOutcome:
        run = self.run
        started = time.monotonic()
        log.info("site.start", extra={"fields": {"command": run.command, "site": municipality.id}})
        try:
            if interrupt.stopped():
                raise Interrupted(interrupt.signal_name(), "not_started")
            refuse_after_the_end(municipality, run.today, run.command)
            outcome = work(municipality)
        except AgiiError as error:
            outcome = SiteOutcome(municipality.id).fail(error)
        SiteAudit(run).record(outcome)
        self._log_site(outcome, started)
        return outcome

    def _log_site(self, outcome: SiteOutcome, started: float) -> None:
        """One line per site in the log file: what happened, why (a stable code), how much."""
        fields: dict[str, Any] = {
            "command": self.run.command,
            "site": outcome.site,
            "outcome": outcome.state(self.run.dry_run),
            "exit_code": int(outcome.exit_code),
            "reason": outcome.reason,
            "counts": outcome.counts(),
            "duration_ms": round((time.monotonic() - started) * 1000),
            "written": outcome.written,
        }
        if outcome.plan is not None and outcome.done_plan is None:
            fields["planned"] = dict(outcome.plan.counts())  # what the stop prevented
        if outcome.findings:
            fields["finding_codes"] = sorted({f.code for f in outcome.findings})
        log.info("site.done", extra={"fields": fields})


class SiteAudit:
    """A site's audit line: the write-ahead note's event before a write, the line after."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def event(self, outcome: SiteOutcome, *, rows: bool) -> dict[str, Any]:
        plan = outcome.done_plan
        return audit_event(
            actor=self.run.current_actor(),
            command=self.run.command + (" --dry-run" if self.run.dry_run else ""),
            site=outcome.site,
            etag_before=outcome.etag_before,
            etag_after=outcome.etag_after,
            counts=outcome.counts(),
            rows=[(c.row_id, c.reason) for c in plan.changes] if plan and rows else [],
        ) | ({"write_id": outcome.write_id} if outcome.write_id else {})

    def record(self, outcome: SiteOutcome) -> None:
        trail = self.run.audit
        assert trail is not None
        event = self.event(outcome, rows=outcome.written)
        event["exit_code"] = int(outcome.exit_code)
        if outcome.error is not None:
            event["error"] = type(outcome.error).__name__
        not_carried = outcome.fact(NotCarried)
        if outcome.written and not_carried and not_carried.cells:
            event["not_carried"] = list(not_carried.cells)
        if outcome.stopped:
            event["stopped"] = outcome.stopped
        try:
            trail.append(event)
        except AuditUnwritable as error:
            self._line_lost(outcome, error)
            return
        if outcome.pending is not None:
            outcome.pending.done()

    def _line_lost(self, outcome: SiteOutcome, error: AuditUnwritable) -> None:
        """A write's note stays for the next run to record; a read-only command still gives
        its answer, with a warning."""
        log.warning("audit.unwritable", extra={"fields": {"site": outcome.site}})
        if outcome.pending is not None:
            outcome.pending.abandon()
            outcome.pending = None
        if self.run.writes:
            outcome.fail(error)
        else:
            outcome.warnings.append(f"{error.message}: this run left no audit line")
