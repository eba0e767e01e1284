"""A conditional update of one site's workbook: read → plan → guard → write, with retries.

The write is conditional on the ETag read; when the workbook changed meanwhile it is read and
planned again (up to ``MAX_ATTEMPTS``), so nobody's edit is lost. The update always returns
its ``SiteOutcome``: a failure is recorded in it (``outcome.error``) together with what was
learned before it (the ETag read, the plan a safety stop refused), for the report and the
audit line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from . import interrupt
from .errors import AgiiError, DeleteLimitExceeded, EtagConflict, TemporaryFailure
from .outcome import NotCarried, SiteOutcome

if TYPE_CHECKING:
    from .config import Municipality
    from .domain.plan import Plan
    from .domain.proof import Stored
    from .engine import Run
    from .formats import workbook
    from .sites.base import Site

log = logging.getLogger("agii_sync.engine")

MAX_ATTEMPTS = 5

PlanMaker = Callable[["workbook.LoadedWorkbook | None"], "Plan"]
Guard = Callable[[bytes | None, bytes, "Plan"], None]
ProofMaker = Callable[["Plan"], "Stored"]


@dataclass(frozen=True)
class UpdateShape:
    """How an update treats the workbook beyond the plan's rows."""

    create_missing: bool = True  # a site without a workbook gets one
    repair: bool = True  # a lost Toelichting or a drop-down that lets text in: put back
    status_only: bool = False  # read the rows' keys and statuses only (status-update)
    fresh: bool = False  # the template with the plan's rows and nothing else (protocol's end)
    memory: Literal["replace", "merge"] | None = None  # how the statuses written are kept

    def restore(self, loaded: workbook.LoadedWorkbook | None) -> bool:
        """Whether to write even when the plan changes no row: a lost Toelichting or a status
        drop-down that does not stop other text (docs/protocol.md, art. 1) is put back and, at
        the protocol's end, nothing but the template may remain."""
        if loaded is None:
            return False
        if self.fresh:
            from .formats.extras import extras

            extra = extras(loaded.content, loaded.sheetnames, loaded.sheet_name)
            return not loaded.has_toelichting or not extra.none
        return self.repair and (not loaded.has_toelichting or loaded.drop_down != "stop")


PUSH = UpdateShape(memory="replace")
PURGE = UpdateShape(create_missing=False, memory="merge")
END = UpdateShape(create_missing=False, fresh=True, memory="replace")
STATUS = UpdateShape(create_missing=False, repair=False, status_only=True, memory="merge")


@dataclass
class ConditionalUpdate:
    run: Run
    municipality: Municipality
    make_plan: PlanMaker
    shape: UpdateShape
    guard: Guard | None = None
    only: frozenset[str] | None = None  # the Rij-IDs the plan needs (status_only shapes)
    proofs: ProofMaker | None = None  # the row proofs of a plan's rows (a push)

    def __call__(self) -> SiteOutcome:
        outcome = SiteOutcome(self.municipality.id)
        try:
            self._attempts(outcome)
        except DeleteLimitExceeded as error:
            outcome.plan = error.plan  # who would have been removed (row IDs only)
            return outcome.fail(error)
        except AgiiError as error:
            return outcome.fail(error)
        written_or_unchanged = outcome.etag_after is not None and not self.run.dry_run
        if self.shape.memory and outcome.plan is not None and written_or_unchanged:
            self._remember(outcome.plan)
        return outcome

    def _attempts(self, outcome: SiteOutcome) -> None:
        site = self.run.site(self.municipality)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            outcome.attempts = attempt
            if self._attempt(site, outcome):
                return
            log.info(
                "site.conflict",
                extra={"fields": {"site": self.municipality.id, "attempt": attempt}},
            )
        raise TemporaryFailure(
            f"{self.municipality.id}: the workbook kept changing while agii-sync wrote it "
            f"({MAX_ATTEMPTS} attempts); nothing was written",
            hint="someone else is editing it; run again later",
        )

    def _attempt(self, site: Site, outcome: SiteOutcome) -> bool:
        """One read → plan → guard → write; False when the workbook changed meanwhile."""
        run, shape = self.run, self.shape
        interrupt.check()
        snapshot = site.read()
        outcome.etag_before = outcome.etag_before or snapshot.etag
        loaded = run.load(snapshot, status_only=shape.status_only, only=self.only)
        if loaded is None and not shape.create_missing:
            return True
        interrupt.check()
        plan = outcome.plan = self.make_plan(loaded)
        if run.dry_run or (plan.is_empty and loaded is not None and not shape.restore(loaded)):
            outcome.etag_after = snapshot.etag
            return True
        content, not_carried = run.render(self.municipality, loaded, plan, shape)
        outcome.facts = [f for f in outcome.facts if not isinstance(f, NotCarried)]
        if not_carried:
            outcome.facts.append(NotCarried(not_carried))
        if self.guard is not None:
            self.guard(snapshot.content, content, plan)
        try:
            run.write_anchored(site, outcome, content, snapshot.etag)
        except EtagConflict:
            return False
        outcome.created = loaded is None
        return True

    def _remember(self, plan: Plan) -> None:
        memory, proofs, site = self.run.memory, self.run.proofs, self.municipality.id
        if self.shape.memory == "replace":
            memory.replace(site, plan.rows)
            proofs.replace(site, self.proofs(plan) if self.proofs else {})
        else:
            changed = {c.row_id for c in plan.changes}
            rows = [r for r in plan.rows if r.rij_id in changed]
            removed = [c.row_id for c in plan.removed]
            memory.merge(site, rows, removed)
            proofs.forget(site, removed)
