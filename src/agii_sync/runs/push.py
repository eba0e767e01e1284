"""``push``: route the export's valid rows to their municipality and bring each workbook in line.

Rules: a person reaches only the site of the municipality they live in; every existing
``Status activiteit`` is kept; people gone from the export are removed (``moved_away``), people
past retention too (``retention``); ``max_delete`` stops a run that would remove too much.
People on the suppression list and people with a sign language as contact language are never
shared and are removed from the site (``suppressed``, ``special_category``; docs/protocol.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from .. import interrupt
from ..auth import rowkey_secret
from ..conditional_update import PUSH
from ..config import Config, DeleteLimit, Municipality
from ..domain import rejections
from ..domain.codes import listed_status
from ..domain.export import CarriedRecord, RawRow, Record, bewaren_tot, to_shared_row
from ..domain.plan import Plan, Reason, Withheld, plan_push, statuses_kept
from ..domain.problems import Problem, has_errors
from ..domain.proof import Proofs, Stored, proof_key
from ..domain.rejections import RejectedRow, SiteRejections
from ..domain.retention import keep_until_without_attest
from ..domain.routing import Routing, Scope, route
from ..domain.row import SharedRow
from ..domain.rowkey import key_check, person_key, row_key
from ..domain.screen import Screen
from ..engine import Run, refuse_another_secret, refuse_over_limit, refuse_unwritable
from ..errors import ExitCode, SafetyStop
from ..formats.export_reader import ExportReadResult, read_again, read_export
from ..outcome import SiteOutcome, worst
from ..parallel import BackgroundCall, can_start_workers, usable_cores
from ..row_proofs import raw_digests
from .access import require_access
from .facts import Pushed
from .proven import ProvenRows, validated_again
from .window import require_protocol_active

if TYPE_CHECKING:
    from ..formats import workbook


@dataclass
class ExportSummary:
    rows_read: int
    valid: int
    problems: list[Problem]
    unknown_columns: list[str]
    skipped_other_nis: int
    stopped: bool = False  # Ctrl-C/SIGTERM came before the export was read to the end
    suppressed: int = 0  # export rows of people on the suppression list: never shared
    per_site: dict[str, int] = field(default_factory=dict)  # valid rows per municipality id

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.DATA if has_errors(self.problems) else ExitCode.OK

    @property
    def rejected(self) -> int:
        """Export lines with at least one error."""
        return len({p.line for p in self.problems if p.is_error})


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
    secret = rowkey_secret()
    run.key_check = key_check(secret)
    limit = max_delete or run.config.agii.max_delete
    stored = {m.id: run.proofs.read(m.id) for m in municipalities}
    proofs = Proofs(proof_key(secret), raw_digests(stored.values()))
    # --strict must know every row before any site is touched; otherwise a big export is
    # validated in the background while the workbooks are downloaded and parsed.
    screen = Screen(
        suppressed=run.suppression.persons(),
        person_key=lambda dossier: person_key(secret, dossier),
        allow_sign_languages=run.config.agii.allow_sign_languages,
    )
    export = ExportInBackground(
        export_path, run.config, background=not strict, screen=screen, proofs=proofs
    )
    with export:
        if strict and has_errors(export.prepared().summary.problems):
            return PushReport(export.prepared().summary, blocked_by_strict=True)

        def one_site(m: Municipality) -> SiteOutcome:
            made: list[Wanted] = []  # once per site, whatever the attempts

            def desired(loaded: workbook.LoadedWorkbook | None) -> Wanted:
                if not made:
                    made.append(site_rows(loaded))
                return made[0]

            def site_rows(loaded: workbook.LoadedWorkbook | None) -> Wanted:
                prepared = export.prepared()
                rejected = rejections.for_site(
                    prepared.rejected,
                    nis=m.nis,
                    postal_codes=m.postal_codes,
                    key=lambda nis, dossier: row_key(secret, nis, dossier),
                )
                drop: Withheld = {
                    row_key(secret, m.nis, dossier): why
                    for nis, dossier, why in prepared.withheld
                    if nis is None or nis == m.nis  # None: a rejected row, on any site
                }
                drop.update(run.suppressed(m))
                # The records become the site's rows: not kept beside them (memory).
                records = prepared.routing.by_site.pop(m.id, [])
                proven = ProvenRows(proofs, stored.pop(m.id), loaded, prepared.proofs, run.today)
                shared = _shared_row_maker(run, secret, m, proven)
                made = [shared(r) for r in records]
                rows = _with_unproven_validated(m, records, made, shared, export.read_again)
                proven.made(records, rows, drop)
                return Wanted(rows, rejected, drop, proven)

            return push_site(run, m, desired, limit=limit)

        outcomes = run.for_each_site(municipalities, one_site)
        return PushReport(export.summary(), outcomes)


@dataclass
class PreparedExport:
    summary: ExportSummary
    routing: Routing
    rejected: list[RejectedRow]  # people kept as they are on their site
    withheld: list[tuple[str | None, str, Reason]] = field(default_factory=list)  # never shared
    proofs: dict[int, bytes] = field(default_factory=dict)  # line → raw digest (push only)


@dataclass
class Wanted:
    """A site's rows from the export; the rejected rows as this site sees them (people
    kept as they are); row IDs that may not be shared, with why; the rows' proofs."""

    rows: list[SharedRow]
    rejected: SiteRejections = field(default_factory=lambda: SiteRejections(frozenset()))
    drop: Withheld = field(default_factory=dict)
    proven: ProvenRows | None = None


class ExportInBackground:
    """Reads, validates and routes the export, in a worker process when it is big (phone and
    e-mail validation of thousands of rows is CPU work that overlaps the workbook download and
    parse on another core). ``prepared()`` waits for it; an unreadable export raises there."""

    def __init__(
        self,
        path: Path,
        config: Config,
        *,
        background: bool,
        screen: Screen | None = None,
        proofs: Proofs | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.proofs = proofs
        self.screen = screen or Screen(allow_sign_languages=config.agii.allow_sign_languages)
        self.background = background and _worth_a_process(path)
        self._job: BackgroundCall[ExportReadResult] | None = None
        self._prepared: PreparedExport | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> ExportInBackground:
        if self.background:
            self._job = BackgroundCall(read_export, self.path, self._scope, self.proofs)
        else:
            self.prepared()  # an unreadable export fails before any site is read
        return self

    def __exit__(self, *exc: object) -> None:
        if self._job is not None:
            self._job.close()

    def summary(self) -> ExportSummary:
        """The export's summary; after Ctrl-C one that says so, unless it was already read."""
        read = self._prepared is not None or self._job is None
        if interrupt.stopped() and not read:
            return ExportSummary(0, 0, [], [], 0, stopped=True)
        return self.prepared().summary

    def prepared(self) -> PreparedExport:
        with self._lock:
            if self._prepared is None:
                self._prepared = self._prepare(self._result())
            return self._prepared

    def _result(self) -> ExportReadResult:
        if self._job is None:
            return read_export(self.path, self._scope, self.proofs)
        return self._job.result()  # an InputError in the child is raised here, hint and all

    @property
    def _scope(self) -> Scope:
        return Scope.of(self.config.municipalities)

    def read_again(self, lines: set[int]) -> Mapping[int, RawRow]:
        """The rows of these lines, read from the export again (export_reader.read_again)."""
        assert self.proofs is not None  # only carried records are read again
        digests = self.prepared().proofs
        return read_again(self.path, self.proofs, {line: digests[line] for line in lines})

    def _prepare(self, result: ExportReadResult) -> PreparedExport:
        screened = self.screen.records(result.records)
        routing = route(screened.records, self.config.municipalities)
        rejected, suppressed = self.screen.rejected([*result.rejected, *routing.rejected])
        problems = [*result.problems, *screened.problems, *routing.problems]
        summary = ExportSummary(
            rows_read=result.rows_read,
            valid=sum(len(v) for v in routing.by_site.values()),
            problems=sorted(problems, key=_problem_order),
            unknown_columns=list(result.unknown_columns),
            skipped_other_nis=result.skipped_other_nis + routing.skipped_other_nis,
            suppressed=screened.suppressed + len(suppressed),
            per_site={m_id: len(rows) for m_id, rows in routing.by_site.items()},
        )
        withheld = [*screened.withheld, *((None, d, "suppressed") for d in suppressed)]
        return PreparedExport(summary, routing, rejected, withheld, result.proofs)


def prepare_export(path: Path, config: Config) -> PreparedExport:
    """The export read, screened and routed as ``push`` prepares it (same problems, same
    order), without a row-key secret: ``validate``."""
    with ExportInBackground(path, config, background=False) as export:
        return export.prepared()


BACKGROUND_FROM_BYTES = 64 * 1024  # about 400 rows: some 0.3 s of validation
# Past about 25,000 rows the worker's copy of the records (and its own interpreter) costs more
# memory than the overlap saves time: the export is then read here, before the workbooks.
BACKGROUND_UP_TO_BYTES = 4 * 1024 * 1024


def _worth_a_process(path: Path) -> bool:
    try:
        size = path.stat().st_size
    except OSError:
        return False  # read_export will say what is wrong
    fits = BACKGROUND_FROM_BYTES <= size <= BACKGROUND_UP_TO_BYTES
    return fits and usable_cores() > 1 and can_start_workers()


def _problem_order(problem: Problem) -> tuple[int, str]:
    return (problem.line or 0, problem.column or "")


def _shared_row_maker(
    run: Run, secret: bytes, m: Municipality, proven: ProvenRows
) -> Callable[[Record], SharedRow | None]:
    """The site's row of an export record (what is the same for every row, worked out once);
    a carried record's from the workbook when it can be, else None (runs/proven.py)."""
    retention_months = run.config.retention_months(m)
    without_attest = keep_without_attest(run, m)

    def shared_row(record: Record) -> SharedRow | None:
        row_id = row_key(secret, m.nis, record.dossiernummer)
        if isinstance(record, CarriedRecord):
            keep = bewaren_tot(
                record.attest_datum,
                retention_months=retention_months,
                last_day=m.last_day,
                without_attest=without_attest,
            )
            return proven.row(record, row_id, keep)
        return to_shared_row(
            record,
            row_id=row_id,
            retention_months=retention_months,
            last_day=m.last_day,
            without_attest=without_attest,
        )

    return shared_row


def _with_unproven_validated(
    m: Municipality,
    records: list[Record],
    made: list[SharedRow | None],
    shared: Callable[[Record], SharedRow | None],
    read_again: Callable[[set[int]], Mapping[int, RawRow]],
) -> list[SharedRow]:
    """``made`` with the rows of the carried records whose workbook row is not proven (edited
    or deleted by hand): their lines read again from the export and validated after all."""
    lines = {r.line for r, row in zip(records, made, strict=True) if row is None}
    raws = read_again(lines) if lines else {}
    rows = []
    for record, row in zip(records, made, strict=True):
        if row is None:
            assert isinstance(record, CarriedRecord)
            row = shared(validated_again(m, record, raws[record.line]))
            assert row is not None
        rows.append(row)
    return rows


def keep_without_attest(run: Run, m: Municipality) -> date:
    months = run.config.agii.max_keep_without_attest_months
    return keep_until_without_attest(run.today, months, m.last_day)


UNSHAREABLE: tuple[Reason, ...] = ("suppressed", "special_category")


def push_site(
    run: Run,
    m: Municipality,
    wanted: Callable[[workbook.LoadedWorkbook | None], Wanted],
    *,
    limit: DeleteLimit,
) -> SiteOutcome:
    """``wanted(loaded)`` gives the site's rows from the export, the row IDs to keep as they
    are and those that may not be shared, and their proofs (kept once the workbook holds the
    rows); it is called once the workbook is loaded."""
    require_protocol_active(m, run.today)
    require_access(run, m)
    desired: list[SharedRow] = []
    not_in_list: list[str] = []
    proven: list[ProvenRows] = []

    def make_plan(loaded: workbook.LoadedWorkbook | None) -> Plan:
        refuse_unwritable(loaded, run.today)
        refuse_another_secret(m, loaded, run.key_check)
        current = loaded.shared_rows if loaded else []
        want = wanted(loaded)
        desired[:] = want.rows
        proven[:] = [want.proven] if want.proven else []
        plan = plan_push(
            current,
            want.rows,
            today=run.today,
            keep=want.rejected.keep - want.drop.keys(),
            remembered=run.memory.read(m.id),
            drop=want.drop,
            keep_until=keep_without_attest(run, m),
        )
        _refuse_unaccounted_removals(m, plan, current, want.rejected)
        _check_delete_limit(m, plan, limit)
        _guard_plan(m, current, plan)
        not_in_list[:] = [
            r.rij_id
            for r in plan.rows
            if r.status_activiteit and listed_status(r.status_activiteit) is None
        ]
        return plan

    def proofs_after(plan: Plan) -> Stored:
        return proven[0].after(plan) if proven else {}

    outcome = run.update_workbook(m, make_plan, PUSH, proofs=proofs_after)
    if outcome.error is not None:
        return outcome
    past_retention = sum(
        1 for row in desired if row.bewaren_tot is not None and run.today > row.bewaren_tot
    )
    outcome.facts.append(Pushed(past_retention, not_in_list))
    if not_in_list:  # flagged, never repeated: it may be free text (docs/protocol.md, art. 1)
        outcome.exit_code = max(outcome.exit_code, ExitCode.DATA)
    if outcome.written and outcome.plan is not None and outcome.plan.of(*UNSHAREABLE):
        run.delete_versions(m, outcome)  # nor may they live on in the version history
    return outcome


def _refuse_unaccounted_removals(
    m: Municipality, plan: Plan, current: list[SharedRow], rejected: SiteRejections
) -> None:
    """A rejected row whose person cannot be found may be any of the people the plan would
    remove as moved away: stop rather than remove someone who is still shared."""
    moved_away = plan.of("moved_away")
    lines = rejected.unaccounted_lines(row.rij_id for row in current)
    if not moved_away or not lines:
        return
    shown = ", ".join(str(line) for line in lines[:10]) + (" …" if len(lines) > 10 else "")
    raise SafetyStop(
        f"{m.id}: the push would remove {len(moved_away)} people as moved away, but export "
        f"line(s) {shown} were rejected and name no one it can find: they may be among them; "
        "nothing was written to this site",
        hint="fix those lines (the report says what is wrong with them) and push again",
    )


def _check_delete_limit(m: Municipality, plan: Plan, limit: DeleteLimit) -> None:
    refuse_over_limit(  # only what a bad export could cause
        m,
        plan,
        limit,
        "moved_away",
        "retention",
        doing="the push",
        hint="check the export is complete; if the removals are right, pass "
        "--max-delete with a higher limit",
    )


def _guard_plan(m: Municipality, before: list[SharedRow], plan: Plan) -> None:
    """Last line of defence before anything is written: the promises in docs/safety.md."""
    lost = statuses_kept(before, plan.rows)
    if lost:
        raise SafetyStop(f"{m.id}: internal check failed: {len(lost)} statuses would change")
    touched = {c.row_id for c in plan.of("added", "restored", "updated")}
    strays = [r for r in plan.rows if r.rij_id in touched and r.postcode not in m.postal_codes]
    if strays:
        raise SafetyStop(f"{m.id}: internal check failed: rows of another municipality")
