"""What a command's work on one site came to: ``SiteOutcome``, reported, logged and audited.

Beyond the plan, each command records what it learned as typed ``Facts``: counts for the audit
line, the log and the report, and Rij-IDs or cell references (never values) for the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from .domain.check import Finding
from .errors import AgiiError, ExitCode, Interrupted

if TYPE_CHECKING:
    from .audit import PendingWrite
    from .domain.plan import Plan

F = TypeVar("F", bound="Facts")


class Facts:
    """What a command learned about a site beyond its plan."""

    def counts(self) -> dict[str, int]:
        """For the audit line, the log and the report."""
        return {}

    def listed(self) -> dict[str, list[str]]:
        """Rij-IDs and cell references, for the report only."""
        return {}


@dataclass(frozen=True)
class NotCarried(Facts):
    """Cells that could not be carried over because their row was removed (by reference)."""

    cells: list[str]

    def counts(self) -> dict[str, int]:
        return {"not_carried": len(self.cells)}

    def listed(self) -> dict[str, list[str]]:
        return {"not_carried_cells": list(self.cells)}


@dataclass(frozen=True)
class VersionsDeleted(Facts):
    """The workbook's older versions deleted on the site after a write or purge."""

    count: int

    def counts(self) -> dict[str, int]:
        return {"versions_deleted": self.count}


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
    facts: list[Facts] = field(default_factory=list)
    audited_rows: int | None = None  # rows read, for read-only commands
    pending: PendingWrite | None = None  # the write-ahead note, until the audit line is out
    write_id: str | None = None  # of the write that landed: in its anchor and its audit line
    warnings: list[str] = field(default_factory=list)

    def fail(self, error: AgiiError) -> SiteOutcome:
        self.error = error
        self.exit_code = max(self.exit_code, error.exit_code)
        return self

    def fact(self, kind: type[F]) -> F | None:
        """The facts of this kind recorded for the site, if any."""
        return next((f for f in self.facts if isinstance(f, kind)), None)

    @property
    def versions_deleted(self) -> int:
        deleted = self.fact(VersionsDeleted)
        return deleted.count if deleted else 0

    @property
    def not_carried(self) -> list[str]:
        carried = self.fact(NotCarried)
        return carried.cells if carried else []

    def fact_counts(self) -> dict[str, int]:
        return {key: n for f in self.facts for key, n in f.counts().items()}

    def fact_lists(self) -> dict[str, int | list[str]]:
        """Counts and lists of every fact, in the order they were learned."""
        return {key: value for f in self.facts for key, value in (f.counts() | f.listed()).items()}

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

    def counts(self) -> dict[str, int]:
        """The done plan's counts, the rows read, and the facts' counts."""
        plan = self.done_plan
        counts: dict[str, int] = dict(plan.counts()) if plan else {}
        if self.audited_rows is not None:
            counts["rows_read"] = self.audited_rows
        return counts | self.fact_counts()


def worst(outcomes: Iterable[SiteOutcome], *more: ExitCode) -> ExitCode:
    codes = [o.exit_code for o in outcomes] + list(more)
    return max(codes, default=ExitCode.OK)
