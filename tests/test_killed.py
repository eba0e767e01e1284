"""Killed mid-write (issue 7): ``agii-sync push`` gets SIGKILL at random points.

A ``file:`` site holds a workbook of 2,000 people (export A, with a status set by the
municipality); each trial runs ``agii-sync push`` of the other export (B: every address
changed, 100 people more) in a subprocess and kills it. Some trials kill at a random moment of
the whole run, the others while it writes: there the subprocess gets a slow disk (every
``fsync`` takes 0.3 s longer, so the write's steps - temporary file, rename, folder sync,
audit line - each last long enough to be hit) and is killed at a chosen offset after its
temporary file appears.

After every kill the site holds either the old or the new workbook, whole: it opens with
openpyxl, its header is right, its rows are exactly those of A or of B, the status is there.
The only other files a kill may leave in the site folder are the writer's temporary files,
and the next run that reads the site removes them. The next run completes with exit 0, and the audit
trail verifies.
"""

from __future__ import annotations

import io
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest

from agii_sync.domain.row import COLUMNS
from agii_sync.sites.local import content_etag
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL = MUNICIPALITIES[0]["id"]
PEOPLE = 2000
SLOW_FSYNC_SECONDS = 0.3
# Offsets after the temporary file appears: in the temp file's fsync, then after the rename
# (folder fsync), then in the audit line's fsync, then after the run.
WRITE_OFFSETS = (0.05, 0.2, 0.45, 0.75)
QUICK_TRIALS = (2, 1)  # random moments, rounds of the write offsets
FULL_TRIALS = (26, 6)  # docs/reliability.md: 50 kills
TRIAL_TIMEOUT = 60.0

RUN_CLI = "from agii_sync.cli import main; main()"
SLOW_DISK = (
    "import os, time\n"
    "_fsync = os.fsync\n"
    "def _slow_fsync(fd):\n"
    f"    time.sleep({SLOW_FSYNC_SECONDS})\n"
    "    return _fsync(fd)\n"
    "os.fsync = _slow_fsync\n"
)

Rows = list[tuple[object, ...]]


def lean(n: int, **overrides: str) -> dict[str, str]:
    """A person without phone and e-mail: their validation would dominate each run's time,
    and what is tested here is the write."""
    return person(n, 0, telefoon="", email="", **overrides)


def workbook_path(ws: Workspace) -> Path:
    return (
        ws.root
        / "sites"
        / SPL
        / "Gedeelde documenten"
        / "Participatie traject"
        / "inburgeraars.xlsx"
    )


def temp_files(ws: Workspace) -> list[str]:
    folder = workbook_path(ws).parent
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def read_rows(ws: Workspace) -> Rows:
    """The data rows of the workbook on disk, whole or the test fails."""
    book = openpyxl.load_workbook(io.BytesIO(workbook_path(ws).read_bytes()), read_only=True)
    try:
        rows = list(book["Inburgeraars"].iter_rows(values_only=True))
    finally:
        book.close()
    assert rows[0][: len(COLUMNS)] == COLUMNS
    return sorted((tuple(row) for row in rows[1:] if any(row)), key=str)


def command(ws: Workspace, export: Path, *, slow_disk: bool) -> list[str]:
    code = (SLOW_DISK if slow_disk else "") + RUN_CLI
    return [sys.executable, "-c", code, "--config", str(ws.config_path), "-q", "push", str(export)]


def run_push(ws: Workspace, export: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(
        command(ws, export, slow_disk=False), cwd=ws.root, capture_output=True, text=True,
        timeout=TRIAL_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


def kill_push(ws: Workspace, export: Path, *, at: float | None, after_temp: float | None) -> int:
    """Start a push and SIGKILL it ``at`` seconds after start, or ``after_temp`` seconds after
    its temporary file appears. Returns the exit status (-9 when killed)."""
    process = subprocess.Popen(
        command(ws, export, slow_disk=after_temp is not None),
        cwd=ws.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + TRIAL_TIMEOUT
    stale = set(temp_files(ws))  # left by an earlier kill: not this run's
    try:
        if at is not None:
            time.sleep(at)
        else:
            while not set(temp_files(ws)) - stale and process.poll() is None:
                assert time.monotonic() < deadline, "the push never wrote"
                time.sleep(0.002)
            time.sleep(after_temp or 0.0)
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=TRIAL_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != -signal.SIGKILL:
        assert process.returncode == 0, stderr.decode("utf-8", "replace")
    return process.returncode


def audited(ws: Workspace) -> bool:
    """Whether the write that produced the workbook now on disk is accounted for: by its audit
    line, or (killed between the rename and the audit line) by its write-ahead note, which the
    next run appends as an ``interrupted`` line."""
    etag = content_etag(workbook_path(ws).read_bytes())
    notes = list((ws.root / "var" / "audit.jsonl.pending").glob("*.json"))
    return bool(notes) or any(line.get("etag_after") == etag for line in ws.audit_lines())


@pytest.mark.parametrize(
    "trial_counts",
    [QUICK_TRIALS, pytest.param(FULL_TRIALS, marks=pytest.mark.slow)],
    ids=["quick", "full"],
)
def test_a_killed_push_leaves_the_old_or_the_new_workbook(
    workspace: Workspace, capsys: pytest.CaptureFixture[str], trial_counts: tuple[int, int]
) -> None:
    random_trials, write_rounds = trial_counts
    rng = random.Random(11)
    workspace.write_config()
    export_a = workspace.export([lean(n) for n in range(1, PEOPLE + 1)], name="a.csv")
    export_b = workspace.export(
        [lean(n, straat=f"Nieuwx{n:04d}straat") for n in range(1, PEOPLE + 101)], name="b.csv"
    )
    run_push(workspace, export_a)
    row_id = workspace.rows(SPL)[5]["Rij-ID"]
    assert (
        workspace.cli("status-update", "--site", SPL, row_id, "Activiteit gestart").exit_code == 0
    )
    states = {"A": read_rows(workspace)}
    full_run = run_push(workspace, export_b)
    states["B"] = read_rows(workspace)
    assert len(states["A"]) == PEOPLE and len(states["B"]) == PEOPLE + 100
    for rows in states.values():
        assert ("Activiteit gestart",) in {(r[13],) for r in rows if r[0] == row_id}

    trials = [("random", rng.uniform(0.3, full_run), None) for _ in range(random_trials)]
    trials += [
        ("write", None, offset + rng.uniform(-0.03, 0.03))
        for offset in WRITE_OFFSETS * write_rounds
    ]
    outcomes = []
    left_behind = unaudited = 0
    current = "B"
    for kind, at, after_temp in trials:
        target = "A" if current == "B" else "B"
        export = export_a if target == "A" else export_b
        before = workbook_path(workspace).read_bytes()
        code = kill_push(workspace, export, at=at, after_temp=after_temp)
        if workbook_path(workspace).read_bytes() == before:  # untouched: checked already
            found = current
        else:
            rows = read_rows(workspace)
            found = next((name for name, state in states.items() if rows == state), None)
        assert found in (current, target), f"{kind} kill: the workbook is neither A nor B"
        others = {
            p.name for p in workbook_path(workspace).parent.iterdir() if not p.name.endswith(".tmp")
        }
        assert others == {"inburgeraars.xlsx"}, others
        left_behind += len(temp_files(workspace))
        if found == target and not audited(workspace):
            unaudited += 1  # killed between the rename and the audit line (see below)
        outcomes.append(
            (kind, round(at if at is not None else after_temp, 2), "killed" if code else "exit 0",
             "new" if found == target else "old", len(temp_files(workspace)))
        )  # fmt: skip
        current = found

    final = "A" if current == "B" else "B"
    run_push(workspace, export_a if final == "A" else export_b)
    assert read_rows(workspace) == states[final]
    assert temp_files(workspace) == []
    assert workspace.cli("audit", "verify").exit_code == 0
    assert workspace.cli("check").exit_code == 0
    assert not list((workspace.root / "var" / "audit.jsonl.pending").glob("*.json"))
    with capsys.disabled():
        print(
            f"\nkilled push of {PEOPLE} people ({full_run:.1f} s per run), {len(trials)} kills, "
            f"broken workbooks 0: "
            + "; ".join(
                f"{k} @{t}s {c} -> {s} workbook, {n} temp file(s)" for k, t, c, s, n in outcomes
            )
            + f"; temp files left by kills {left_behind}, after the next run 0"
            + f"; writes that landed without their audit line {unaudited}"
        )
    assert {o[3] for o in outcomes} == {"old", "new"}, outcomes
    assert unaudited == 0, "a write landed with neither an audit line nor a write-ahead note"


def test_a_stale_temporary_file_is_removed_by_the_next_run_that_reads_the_site(
    workspace: Workspace,
) -> None:
    export = workspace.export([person(n, 0) for n in range(1, 6)])
    assert workspace.cli("push", str(export)).exit_code == 0
    folder = workbook_path(workspace).parent
    stale = folder / ".inburgeraars.xlsx.k1ll3d.tmp"
    for command in (["push", str(export)], ["check"], ["list", "--site", SPL], ["purge"]):
        stale.write_bytes(workbook_path(workspace).read_bytes()[:1000])  # half a workbook
        assert workspace.cli(*command).exit_code == 0  # even when it writes nothing
        assert not stale.exists(), command
    stale.write_bytes(b"PK\x03\x04 half")
    more = workspace.export([person(n, 0) for n in range(1, 7)])
    assert workspace.cli("push", str(more)).exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["inburgeraars.xlsx"]
