"""Killed mid-write (issue 7): ``agii-sync push`` gets SIGKILL at random moments and at
chosen steps of its write.

A ``file:`` site holds a workbook (export A, with a status set by the municipality); each trial
runs ``agii-sync push`` of the other export (B: every address changed, 5 % more people) in a
subprocess and kills it. Random trials kill at a random moment of the whole run. Chosen trials
kill the process itself just before or just after one durable step of the write: every
``os.fsync`` and ``os.replace`` the push makes (temporary workbook, rename, folder sync,
write-ahead note, audit line), found by a counting run and named in the figures. The chosen
points are steps, not moments: the same kills hit the same places on a fast or a slow machine.

After every kill the site holds either the old or the new workbook, whole: it opens with
openpyxl, its header is right, its rows are exactly those of A or of B, the status is there.
The only other files a kill may leave in the site folder are the writer's temporary files,
and the next run that reads the site removes them. The next run completes with exit 0, and the
audit trail verifies. The quick run (two kills around the workbook's rename) is part of every
``pytest``; the full run (``-m slow``: 50 kills of a push of 2,000 people, docs/reliability.md)
reports its figures (``fixtures/figures.py``).
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from agii_sync.domain.row import COLUMNS
from agii_sync.sites.local import content_etag
from fixtures.workspace import MUNICIPALITIES, Workspace, person

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILLs a subprocess")

SPL = MUNICIPALITIES[0]["id"]
WORKBOOK_RENAME = "rename to inburgeraars.xlsx"
TRIAL_TIMEOUT = 300.0  # only ends a hang; nothing is asserted about time

# Runs in the push's own process, before the CLI: names every durable step (fsync, rename) and,
# when AGII_TEST_KILL = [step name, occurrence, "before" | "after"], SIGKILLs the process there.
# Without a kill it prints the steps it saw at exit. Random file names are normalised.
STEP_HOOK = r"""
import atexit, json, os, re, signal, sys
_kill = json.loads(os.environ.get("AGII_TEST_KILL", "null"))
_seen = []
def _name(kind, path):
    base = os.path.basename(os.fspath(path)) if path is not None else "?"
    base = re.sub(r"\.[a-z0-9_]{8}\.tmp$", ".<random>.tmp", base)
    return kind + " " + re.sub(r"[0-9a-f][0-9a-f-]{15,}", "<id>", base)
def _step(kind, path, do):
    name = _name(kind, path)
    _seen.append(name)
    here = _kill is not None and name == _kill[0] and _seen.count(name) == _kill[1]
    if here and _kill[2] == "before":
        _die(name)
    result = do()
    if here:
        _die(name)
    return result
def _die(name):
    sys.stderr.write("KILLED_AT " + json.dumps([name, _kill[2]]) + "\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
def _fd_path(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
_fsync, _replace = os.fsync, os.replace
os.fsync = lambda fd: _step("fsync", _fd_path(fd), lambda: _fsync(fd))
os.replace = lambda a, b, **k: _step("rename to", b, lambda: _replace(a, b, **k))
if _kill is None:
    atexit.register(lambda: sys.stderr.write("STEPS " + json.dumps(_seen) + "\n"))
from agii_sync.cli import main; main()
"""


@dataclass(frozen=True)
class Scale:
    name: str
    people: int
    random_kills: int  # pushes that died at a random moment
    chosen_kills: int  # cycling through every step of the counting run
    min_kills: int  # processes that really died by SIGKILL, in all

    @property
    def kills(self) -> int:
        return self.random_kills + self.chosen_kills


# Besides these, every run kills once just before and once just after the workbook's rename.
QUICK = Scale("quick", people=100, random_kills=0, chosen_kills=0, min_kills=2)
# A chosen step may not come in a push (a memory file that does not change is not written):
# more chosen kills than the minimum.
FULL = Scale("full", people=2000, random_kills=26, chosen_kills=27, min_kills=50)

Rows = list[tuple[object, ...]]
Kill = tuple[str, int, str]  # step name, its occurrence, "before" | "after"


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


def state_of(ws: Workspace, states: dict[str, Rows]) -> str:
    """Which workbook is on disk: "A" or "B" when exactly one of them, else "broken"."""
    try:
        rows = read_rows(ws)
    except Exception:  # noqa: BLE001 - a workbook that does not open is what is counted
        return "broken"
    return next((name for name, state in states.items() if rows == state), "broken")


def start_push(ws: Workspace, export: Path, kill: Kill | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AGII_TEST_KILL": json.dumps(kill)}
    return subprocess.Popen(
        [sys.executable, "-c", STEP_HOOK, "--config", str(ws.config_path), "-q", "push",
         str(export)],
        cwd=ws.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def counted_push(ws: Workspace, export: Path) -> tuple[float, list[str]]:
    """A whole push in a subprocess: its duration and the durable steps it made."""
    started = time.monotonic()
    process = start_push(ws, export, None)
    _, stderr = process.communicate(timeout=TRIAL_TIMEOUT)
    text = stderr.decode("utf-8", "replace")
    assert process.returncode == 0, text
    steps = next(line for line in text.splitlines() if line.startswith("STEPS "))
    return time.monotonic() - started, json.loads(steps[len("STEPS ") :])


def kill_push(ws: Workspace, export: Path, *, at: float | None, kill: Kill | None) -> str:
    """Start a push and SIGKILL it ``at`` seconds after start, or let it kill itself at the
    step ``kill``. Returns where it died ("step name (before|after)", "random", "exit 0")."""
    process = start_push(ws, export, kill)
    try:
        if at is not None:
            try:
                process.wait(timeout=at)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=TRIAL_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = stderr.decode("utf-8", "replace")
    if process.returncode != -signal.SIGKILL:
        assert process.returncode == 0, text
        return "exit 0"
    killed_at = [line for line in text.splitlines() if line.startswith("KILLED_AT ")]
    if not killed_at:
        return "random moment"
    name, when = json.loads(killed_at[0][len("KILLED_AT ") :])
    return f"{when} {name}"


def audited(ws: Workspace) -> bool:
    """Whether the write that produced the workbook now on disk is accounted for: by its audit
    line, or (killed between the rename and the audit line) by its write-ahead note, which the
    next run appends as an ``interrupted`` line."""
    etag = content_etag(workbook_path(ws).read_bytes())
    notes = list((ws.root / "var" / "audit.jsonl.pending").glob("*.json"))
    return bool(notes) or any(line.get("etag_after") == etag for line in ws.audit_lines())


def chosen_kills(steps: list[str], count: int) -> list[Kill]:
    """``count`` kills through the steps in the push's order (before each, then after the
    last), starting again at the first when there are fewer steps than kills."""
    points: list[Kill] = [
        (name, steps[: i + 1].count(name), "before") for i, name in enumerate(steps)
    ]
    points.append((steps[-1], steps.count(steps[-1]), "after"))
    return [points[i % len(points)] for i in range(count)]


@pytest.mark.slow  # both sizes run in `pytest -m slow` (.ci/run); quick: `-m slow -k quick`
@pytest.mark.parametrize("scale", [QUICK, FULL], ids=["quick", "full"])
def test_a_killed_push_leaves_the_old_or_the_new_workbook(
    workspace: Workspace, scale: Scale, figures: Callable[[str, dict[str, Any]], Path]
) -> None:
    rng = random.Random(11)
    workspace.write_config()
    export_a = workspace.export([lean(n) for n in range(1, scale.people + 1)], name="a.csv")
    more = scale.people // 20  # B -> A removes them: within max_delete
    export_b = workspace.export(
        [lean(n, straat=f"Nieuwx{n:04d}straat") for n in range(1, scale.people + more + 1)],
        name="b.csv",
    )
    assert workspace.cli("push", str(export_a)).exit_code == 0
    row_id = workspace.rows(SPL)[5]["Rij-ID"]
    assert (
        workspace.cli("status-update", "--site", SPL, row_id, "Activiteit gestart").exit_code == 0
    )
    states = {"A": read_rows(workspace)}
    full_run, steps = 0.0, [WORKBOOK_RENAME]  # the quick run kills around this step only
    if scale.kills:
        full_run, steps = counted_push(workspace, export_b)
        assert WORKBOOK_RENAME in steps, steps
    else:
        assert workspace.cli("push", str(export_b)).exit_code == 0
    states["B"] = read_rows(workspace)
    assert len(states["A"]) == scale.people and len(states["B"]) == scale.people + more
    for rows in states.values():
        assert ("Activiteit gestart",) in {(r[13],) for r in rows if r[0] == row_id}

    chosen = [*chosen_kills(steps, scale.chosen_kills)]
    chosen += [(WORKBOOK_RENAME, 1, "before"), (WORKBOOK_RENAME, 1, "after")]
    outcomes: list[tuple[str, str, int]] = []  # where it died, old/new/broken, temp files
    left_behind = unaudited = random_trials = 0
    current = "B"

    def trial(at: float | None, kill: Kill | None) -> bool:
        """One push, killed; False when what is left on disk is neither workbook."""
        nonlocal current, left_behind, unaudited
        target = "A" if current == "B" else "B"
        before = workbook_path(workspace).read_bytes()
        died = kill_push(workspace, export_a if target == "A" else export_b, at=at, kill=kill)
        unchanged = workbook_path(workspace).read_bytes() == before  # checked already
        found = current if unchanged else state_of(workspace, states)
        extra = {
            p.name for p in workbook_path(workspace).parent.iterdir() if not p.name.endswith(".tmp")
        } - {"inburgeraars.xlsx"}
        temps = len(temp_files(workspace))
        left_behind += temps
        if found == target and not audited(workspace):
            unaudited += 1  # killed between the rename and the audit line (see below)
        label = {current: "old", target: "new"}.get(found, "broken")
        outcomes.append((died, label + (f" + {sorted(extra)}" if extra else ""), temps))
        current = found
        return found in ("A", "B") and not extra

    def random_kills_so_far() -> int:
        return sum(1 for died, _, _ in outcomes if died == "random moment")

    # A random moment may fall after a push that ran faster than the counted one: draw
    # moments until that many pushes died, within a bounded number of tries.
    whole = True
    while whole and random_kills_so_far() < scale.random_kills:
        if random_trials >= 3 * scale.random_kills:
            break
        random_trials += 1
        whole = trial(rng.uniform(0.3, full_run), None)
    for kill in chosen:
        whole = whole and trial(None, kill)

    last = "A" if current == "B" else "B"
    final = workspace.cli("push", str(export_a if last == "A" else export_b))
    verify = workspace.cli("audit", "verify")
    check = workspace.cli("check")
    by_outcome = Counter(label for _, label, _ in outcomes)
    kills = sum(1 for died, _, _ in outcomes if died != "exit 0")
    figures(
        f"killed-{scale.name}",
        {
            "people": scale.people,
            "seconds_per_whole_push": round(full_run, 1) if full_run else None,
            "kills": kills,
            "trials": len(outcomes),
            "random_moment_trials": random_trials,
            "random_moment_kills": random_kills_so_far(),
            "chosen_step_trials": len(chosen),
            "durable_steps_of_a_push": steps,
            "workbook_after_kill": dict(by_outcome),
            "broken_workbooks": sum(
                n for label, n in by_outcome.items() if label not in ("old", "new")
            ),
            "temp_files_left_by_kills": left_behind,
            "temp_files_after_next_run": len(temp_files(workspace)),
            "writes_without_audit_line_or_note": unaudited,
            "next_run_exit": final.exit_code,
            "audit_verify_exit": verify.exit_code,
            "check_exit": check.exit_code,
            "trials_by_kill_point": [f"{died} -> {label}" for died, label, _ in outcomes],
        },
    )
    assert whole, outcomes[-1]
    assert random_kills_so_far() >= scale.random_kills, outcomes
    assert kills >= scale.min_kills, outcomes
    assert set(by_outcome) <= {"old", "new"}, by_outcome
    assert final.exit_code == 0, final.output
    assert read_rows(workspace) == states[last]
    assert temp_files(workspace) == []
    assert verify.exit_code == 0, verify.output
    assert check.exit_code == 0, check.output
    assert not list((workspace.root / "var" / "audit.jsonl.pending").glob("*.json"))
    assert {"old", "new"} <= set(by_outcome), outcomes
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
