"""Chaos run (issue 7): AgII pushes and municipal status updates at once, on the same sites,
against an emulator that answers 20 % of its requests with 429/503.

One thread pushes an export that changes every round (people updated, added and removed,
within ``max_delete``); three threads set statuses on random rows of random sites at the same
time. Each thread has its own ``Run`` (the CLI's run lock is bypassed on purpose, so the
workbook's ETag is the only thing between the writers). Every status update that reported
success is recorded with the workbook version it landed in (the N of the emulator's
``"{GUID},N"`` ETag), which orders the writes as the server saw them.

At the end, read from the emulator's disk:
- every successful status update is there, unless a later successful one replaced it;
- every valid row of the last successful push of a site is there exactly once, with its data;
- no duplicate Rij-ID; every workbook opens with openpyxl; ``check`` and ``audit verify`` pass.

Bounded by work, loopback only: every thread does a fixed number of rounds and every request
a bounded number of tries, so the run ends without a clock. The quick run (18 operations) is
part of every ``pytest``; the full run (``-m slow``: 1,020 operations, docs/reliability.md)
takes a few minutes on a 2-core machine. Both report their figures (``fixtures/figures.py``)
before they assert.
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from agii_sync.config import Config, load_config
from agii_sync.domain.codes import ACTIVITY_STATUSES
from agii_sync.domain.rowkey import row_key
from agii_sync.engine import Run
from agii_sync.errors import ExitCode
from agii_sync.formats import workbook
from agii_sync.runs.facts import StatusLinesDone
from agii_sync.runs.push import push
from agii_sync.runs.status import StatusEdit, status_update
from agii_sync.sites.factory import SiteOpener
from fixtures.emulator import RunningEmulator
from fixtures.workspace import MUNICIPALITIES, ROWKEY_SECRET, Workspace, person

pytestmark = pytest.mark.chaos

SEED = 7
PEOPLE_PER_SITE = 24
STATUS_THREADS = 3


@dataclass(frozen=True)
class Scale:
    name: str
    push_rounds: int
    status_rounds: int  # per status thread

    @property
    def operations(self) -> int:
        return self.push_rounds * len(SITES) + self.status_rounds * STATUS_THREADS


QUICK = Scale("quick", push_rounds=2, status_rounds=4)
# docs/reliability.md: at least 1,000 operations (site pushes and status updates) under faults.
FULL = Scale("full", push_rounds=20, status_rounds=320)
WORKBOOK = "Gedeelde documenten/Participatie traject/inburgeraars.xlsx"
SITES = [m["id"] for m in MUNICIPALITIES]
assert FULL.operations >= 1000


def version(etag: str | None) -> int:
    """N of the emulator's ``"{GUID},N"``: grows by one on every write of the file."""
    assert etag, "no ETag"
    return int(etag.strip('"').rsplit(",", 1)[1])


@dataclass(frozen=True)
class StatusSuccess:
    site: str
    row_id: str
    status: str
    version: int  # the workbook version that holds it (written there, or already there)
    thread: int


@dataclass
class Ledger:
    """What the writers saw; appended to from several threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    successes: list[StatusSuccess] = field(default_factory=list)
    status_calls: Counter[str] = field(default_factory=Counter)
    push_outcomes: Counter[str] = field(default_factory=Counter)
    # site -> (round, {Rij-ID: expected Naam/Adres}) of the last push that succeeded there
    last_push: dict[str, tuple[int, dict[str, tuple[str, str]]]] = field(default_factory=dict)
    conflict_retries: int = 0
    status_conflicts: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, counter: Counter[str], key: str, n: int = 1) -> None:
        with self.lock:
            counter[key] += n


class People:
    """The AgII side: who is in the export, round by round. Removed people never come back
    (a re-added person would rightly start without a status)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.next_n = 1
        self.by_site: dict[int, dict[int, dict[str, str]]] = {i: {} for i in range(len(SITES))}
        for site in self.by_site:
            for _ in range(PEOPLE_PER_SITE):
                self._add(site, 0)

    def _add(self, site: int, round_: int) -> None:
        n = self.next_n
        self.next_n += 1
        self.by_site[site][n] = person(n, site, naam=f"Naamx{n:04d}r{round_}q")

    def next_round(self, round_: int) -> None:
        for site, people in self.by_site.items():
            numbers = sorted(people)
            for n in self.rng.sample(numbers, 3):  # AgII updates these
                people[n]["straat"] = f"Straatx{n:04d}r{round_}laan"
            for n in self.rng.sample(numbers, 2):  # moved away: 2 of ~25, under max_delete
                del people[n]
            for _ in range(3):
                self._add(site, round_)

    def rows(self) -> list[dict[str, str]]:
        return [row for people in self.by_site.values() for row in people.values()]

    def expected(self, site: int) -> dict[str, tuple[str, str]]:
        """Rij-ID -> (Naam, start of Adres) for the people of one site."""
        nis = MUNICIPALITIES[site]["nis"]
        return {
            row_key(ROWKEY_SECRET.encode(), nis, row["dossiernummer"]): (
                row["naam"],
                f"{row['straat']} {row['huisnummer']}",
            )
            for row in self.by_site[site].values()
        }


def retry_stats(opener: SiteOpener) -> dict[str, float]:
    """The SharePoint backend's RetryStats of an opener (private, but this is a test)."""
    total: Counter[str] = Counter()
    for connection in getattr(opener, "_connections", {}).values():
        total.update(connection.stats.snapshot())
    return dict(total)


def push_loop(
    ws: Workspace, config: Config, people: People, ledger: Ledger, opener: SiteOpener, rounds: int
) -> None:
    for round_ in range(1, rounds + 1):
        people.next_round(round_)
        export = ws.export(people.rows(), name=f"export-{round_}.csv")
        run = Run(config, "push", date.today(), opener=opener)
        report = push(run, export, sites=None)
        for outcome in report.outcomes:
            ledger.count(ledger.push_outcomes, f"exit {int(outcome.exit_code)}")
            with ledger.lock:
                ledger.conflict_retries += max(0, outcome.attempts - 1)
            if outcome.exit_code == ExitCode.OK:
                site = SITES.index(outcome.site)
                with ledger.lock:
                    ledger.last_push[outcome.site] = (round_, people.expected(site))
            elif outcome.exit_code not in (ExitCode.TEMPORARY, ExitCode.SAFETY):
                ledger.errors.append(f"push round {round_} {outcome.site}: {outcome.error!r}")


def status_loop(
    index: int, config: Config, ledger: Ledger, opener: SiteOpener, seed: int, rounds: int
) -> None:
    rng = random.Random(seed)
    values = [*ACTIVITY_STATUSES, ""]
    for _ in range(rounds):
        m = config.by_id(rng.choice(SITES))
        run = Run(config, "status-update", date.today(), opener=opener)
        try:
            snapshot = run.site(m).read()
        except Exception as exc:  # a read past the retry budget: try another round
            ledger.count(ledger.status_calls, f"read failed ({type(exc).__name__})")
            continue
        loaded = run.load(snapshot)
        if loaded is None or not loaded.rows:
            continue
        ids = rng.sample([r.rij_id for r in loaded.shared_rows], rng.randint(1, 2))
        edits = [StatusEdit(None, row_id, rng.choice(values)) for row_id in ids]
        (outcome,) = run.for_each_site(
            [m], lambda mm, run=run, edits=edits: status_update(run, mm, edits)
        )
        lines = outcome.fact(StatusLinesDone)
        conflicts = set(lines.conflict_rows if lines else [])
        with ledger.lock:
            ledger.conflict_retries += max(0, outcome.attempts - 1)
            ledger.status_conflicts += len(conflicts)
        if outcome.error is not None and not conflicts:
            name = type(outcome.error).__name__
            ledger.count(ledger.status_calls, f"exit {int(outcome.exit_code)} ({name})")
            if outcome.exit_code not in (ExitCode.DATA, ExitCode.TEMPORARY, ExitCode.SAFETY):
                ledger.errors.append(f"status {m.id}: {outcome.error!r}")
            continue
        ledger.count(ledger.status_calls, "exit 0" if not conflicts else "exit 5 (conflict)")
        landed = version(outcome.etag_after)
        with ledger.lock:
            ledger.successes.extend(
                StatusSuccess(m.id, e.row_id, e.status, landed, index)
                for e in edits
                if e.row_id not in conflicts
            )


def run_threads(targets: list[Callable[[], None]]) -> list[BaseException]:
    """Run the loops at once and wait for all of them. No time limit: each loop does a fixed
    number of rounds, and each request gives up after ``RetryPolicy.max_attempts`` tries."""
    failures: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def final_rows(emulator: RunningEmulator, site: str) -> list[tuple[Any, ...]]:
    path = emulator.site_folder(site) / WORKBOOK
    book = openpyxl.load_workbook(io.BytesIO(path.read_bytes()))
    sheet = book["Inburgeraars"]
    assert [c.value for c in sheet[1]] == list(workbook.COLUMNS)
    return [row for row in sheet.iter_rows(min_row=2, values_only=True) if any(row)]


@pytest.mark.slow  # both sizes run in `pytest -m slow` (.ci/run); quick: `-m slow -k quick`
@pytest.mark.parametrize("scale", [QUICK, FULL], ids=["quick", "full"])
def test_pushes_and_status_updates_under_faults_lose_nothing(
    scale: Scale,
    emulator_factory: Callable[..., RunningEmulator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Callable[[str, dict[str, Any]], Path],
) -> None:
    monkeypatch.setenv("AGII_SYNC_ROWKEY_SECRET", ROWKEY_SECRET)
    monkeypatch.delenv("AGII_SYNC_CONFIG", raising=False)
    emulator = emulator_factory(
        "--fault-rate", "0.2", "--latency-ms", "2", "--retry-after", "0.05", "--seed", str(SEED)
    )
    ws = Workspace(tmp_path / "ws", "emulator", emulator.url, emulator.root)
    ws.root.mkdir()
    ws.agii["max_delete"] = "25%"
    config = load_config(ws.write_config())
    people = People(random.Random(SEED))
    ledger = Ledger()

    first = push(Run(config, "push", date.today()), ws.export(people.rows()), sites=None)
    assert first.exit_code == ExitCode.OK, [o.error for o in first.outcomes]
    for i, site in enumerate(SITES):
        ledger.last_push[site] = (0, people.expected(i))

    openers = [SiteOpener(config) for _ in range(STATUS_THREADS + 1)]
    started = time.monotonic()
    failures = run_threads(
        [
            lambda: push_loop(ws, config, people, ledger, openers[0], scale.push_rounds),
            *(
                (
                    lambda i=i: status_loop(
                        i, config, ledger, openers[i + 1], SEED + i, scale.status_rounds
                    )
                )
                for i in range(STATUS_THREADS)
            ),
        ]
    )
    elapsed = time.monotonic() - started

    losses, duplicates, missing, wrong_data, stale = [], [], [], [], []
    total_rows = 0
    for site in SITES:
        rows = final_rows(emulator, site)
        total_rows += len(rows)
        ids = Counter(row[0] for row in rows)
        duplicates += [(site, row_id) for row_id, n in ids.items() if n > 1]
        by_id = {row[0]: row for row in rows}
        _, expected = ledger.last_push[site]
        missing += [(site, row_id) for row_id in expected if row_id not in by_id]
        stale += [(site, row_id) for row_id in by_id if row_id not in expected]
        wrong_data += [
            (site, row_id)
            for row_id, (naam, adres) in expected.items()
            if row_id in by_id
            and (by_id[row_id][1] != naam or not by_id[row_id][3].startswith(adres))
        ]
        latest: dict[str, StatusSuccess] = {}
        for success in sorted(ledger.successes, key=lambda s: s.version):
            if success.site != site:
                continue
            before = latest.get(success.row_id)
            if before is not None and before.version == success.version:
                # two successes in one version: the same value, or the ledger is wrong
                assert before.status == success.status, (before, success)
            latest[success.row_id] = success
        for row_id, success in latest.items():
            if row_id in by_id and (by_id[row_id][13] or "") != success.status:
                losses.append((success, by_id[row_id][13]))
            if row_id not in by_id:
                assert row_id not in expected  # only a push may remove a person

    check = ws.cli("check")
    verify = ws.cli("audit", "verify")
    stats = emulator.stats()
    retries: Counter[str] = Counter()
    for opener in openers:
        retries.update(retry_stats(opener))
    figures(
        f"chaos-{scale.name}",
        {
            "seconds": round(elapsed, 1),
            "operations": scale.operations,
            "site_pushes": scale.push_rounds * len(SITES),
            "status_update_calls": scale.status_rounds * STATUS_THREADS,
            "push_outcomes": dict(ledger.push_outcomes),
            "status_update_outcomes": dict(ledger.status_calls),
            "status_edits_succeeded": len(ledger.successes),
            "http_requests": stats["total_requests"],
            "faults_injected": stats["faults_total"],
            "faults_by_status": stats["faults_injected"],
            "fault_rate": round(stats["faults_total"] / max(1, stats["total_requests"]), 3),
            "client_retries": int(retries["retries"]),
            "client_waited_seconds": round(retries["waited_seconds"], 1),
            "etag_conflicts_replanned": ledger.conflict_retries,
            "status_conflicts_reported": ledger.status_conflicts,
            "rows_at_the_end": total_rows,
            "statuses_lost": len(losses),
            "duplicate_row_ids": len(duplicates),
            "rows_missing": len(missing),
            "rows_stale": len(stale),
            "rows_with_wrong_data": len(wrong_data),
            "thread_failures": len(failures),
            "unexpected_errors": len(ledger.errors),
            "check_exit": check.exit_code,
            "audit_verify_exit": verify.exit_code,
        },
    )
    assert not failures, failures
    assert not ledger.errors, ledger.errors
    assert check.exit_code == 0, check.output
    assert verify.exit_code == 0, verify.output
    assert stats["faults_total"] > 0
    assert len(ledger.successes) >= STATUS_THREADS * scale.status_rounds // 2
    assert not losses, losses
    assert not duplicates, duplicates
    assert not missing, missing
    assert not stale, stale
    assert not wrong_data, wrong_data
