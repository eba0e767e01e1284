"""Cron-safety: one run at a time, log files a machine can read, no prompts, no terminal noise."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from agii_sync import __version__
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL = MUNICIPALITIES[0]["id"]

HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agii_sync.runlock import run_lock

    with run_lock(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(60)
    """
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SPINNER_CHARS = set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏⣾⣽⣻⢿⡿⣟⣯⣷◐◓◑◒")  # rich's dots, dots12 and circle spinners


@contextmanager
def holding_the_lock(workspace: Workspace) -> Iterator[None]:
    """Another agii-sync process holds the config's run lock (a real second process)."""
    workspace.write_config()
    lock_file = workspace.root / "agii-sync.toml.lock"  # Config.lock_file: beside the config
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock_file)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def snapshot_files(root: Path) -> dict[str, bytes]:
    """Every file of the workspace that a run could write (not the exports)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != ".csv" and not p.name.endswith((".lock", ".info"))
    }


@pytest.mark.parametrize(
    "command",
    [
        ["push", "export.csv"],
        ["purge"],
        ["init"],
        ["status-update", "--site", SPL, "ROWID", "Gecontacteerd"],
    ],
    ids=["push", "purge", "init", "status-update"],
)
def test_a_second_run_exits_3_at_once_and_writes_nothing(
    workspace: Workspace, command: list[str]
) -> None:
    people = [person(n, 0) for n in range(1, 5)]
    export = workspace.export(people)
    assert workspace.cli("push", str(export)).exit_code == 0
    row_id = workspace.rows(SPL)[0]["Rij-ID"]
    args = [str(export) if a == "export.csv" else row_id if a == "ROWID" else a for a in command]
    workspace.export(people + [person(9, 0)])  # a push would now have something to do
    before = snapshot_files(workspace.root)
    with holding_the_lock(workspace):
        started = time.monotonic()
        result = workspace.cli(*args)
        elapsed = time.monotonic() - started
    assert result.exit_code == 3, result.output
    assert elapsed < 5  # at once, not after a wait
    assert "another agii-sync run holds the lock since " in result.stderr
    assert re.search(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", result.stderr)
    assert "Traceback" not in result.output
    assert snapshot_files(workspace.root) == before  # no workbook, no audit line, no log
    after = workspace.cli(*args)  # the lock is free again: the same run goes through
    assert after.exit_code in (0, 1), after.output


def test_lock_held_in_json_mode_is_one_document(workspace: Workspace) -> None:
    export = workspace.export([person(1, 0)])
    with holding_the_lock(workspace):
        result = workspace.cli("--json", "push", str(export))
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 3 and doc["error"]["type"] == "RunLockHeld"
    assert "holds the lock since" in doc["error"]["message"]
    assert workspace.audit_lines() == []


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_file_has_one_event_per_line(workspace: Workspace, fmt: str) -> None:
    log = workspace.root / "var" / f"agii-sync.{fmt}.log"
    export = workspace.export([person(n, n % 3) for n in range(1, 7)])
    runs = [
        ("-v", "push", str(export)),
        ("check",),
        ("-v", "purge", "--dry-run"),
        ("purge",),
        ("push", str(workspace.export([person(1, 0, postcode="2800")], "bad.csv"))),
    ]
    for args in runs:
        result = workspace.cli("--log-file", str(log), "--log-format", fmt, *args)
        assert result.exit_code in (0, 1, 5), result.output
    with holding_the_lock(workspace):
        assert workspace.cli("--log-file", str(log), "--log-format", fmt, "purge").exit_code == 3
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 3 * len(runs)  # at least one event per site and run
    if fmt == "json":
        events = [json.loads(line) for line in lines]  # every line is one JSON object
        assert all({"time", "level", "logger", "event"} <= set(e) for e in events)
        assert {"site.done", "run.failed"} <= {e["event"] for e in events}
        failed = [e for e in events if e["event"] == "run.failed"]
        assert failed[-1]["error"] == "RunLockHeld" and failed[-1]["exit_code"] == 3
        assert {e["site"] for e in events if e["event"] == "site.done"} == {
            m["id"] for m in MUNICIPALITIES
        }
    else:
        pattern = re.compile(r"^\d{4}-\d\d-\d\dT\S+ (INFO|DEBUG|WARNING|ERROR) agii_sync\S* \S+")
        assert all(pattern.match(line) for line in lines), lines


def _terminal_noise(text: str) -> list[str]:
    noise = ANSI.findall(text)
    noise += [c for c in text if c in SPINNER_CHARS]
    noise += ["\r"] if "\r" in text else []
    return noise


@pytest.mark.parametrize("no_color", [False, True], ids=["plain", "NO_COLOR"])
def test_no_prompts_no_progress_no_colour_without_a_terminal(
    workspace: Workspace, no_color: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    people = [person(n, 0) for n in range(1, 5)]
    export = workspace.export(people)
    workspace.protocol["genk"] = {"start": "2024-01-01", "end": "2024-12-31"}
    runs = [
        ("init",),
        ("validate", str(export)),
        ("push", str(export)),
        ("push", str(workspace.export(people[:1], "short.csv"))),  # max_delete: an error
        ("check",),
        ("-v", "purge", "--dry-run"),
        ("purge",),
        ("audit", "verify"),
        ("audit", "show"),
    ]
    for args in runs:
        # input="" : stdin is an empty pipe, so a prompt would fail or hang, never wait.
        result = workspace.cli(*args, input="")
        assert result.exit_code in (0, 1, 5), (args, result.output)
        assert _terminal_noise(result.stdout) == [], args
        assert _terminal_noise(result.stderr) == [], args


@pytest.mark.parametrize(
    ("args", "code"),
    [
        pytest.param(
            ("push", "bad.csv"),
            1,
            id="push-with-a-rejected-row",
        ),
        pytest.param(("validate", "bad.csv"), 1, id="validate"),
        pytest.param(("check",), 1, id="check"),
        pytest.param(("purge",), 0, id="purge"),
        pytest.param(("purge", "--site", SPL), 5, id="purge-max-delete"),
    ],
)
def test_json_exit_code_is_the_process_exit_code(
    workspace: Workspace, args: tuple[str, ...], code: int
) -> None:
    """A cron wrapper may read either; they must agree."""
    people = [person(n, 0) for n in range(1, 5)]
    assert workspace.cli("push", str(workspace.export(people))).exit_code == 0
    workspace.export(people + [person(9, 0, email="geen-adres")], "bad.csv")
    workspace.set_status_by_hand(SPL, workspace.rows(SPL)[0]["Rij-ID"], "gebeld")  # check: 1
    if "--site" in args:
        workspace.agii["max_delete"] = 0
        workspace.edit_workbook(SPL, _expire_first_row)
    args = tuple(str(workspace.root / a) if a.endswith(".csv") else a for a in args)
    result = workspace.cli("--json", *args)
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout)["exit_code"] == code


def _expire_first_row(book) -> None:  # type: ignore[no-untyped-def]
    book["Inburgeraars"].cell(2, 13).value = datetime(2020, 1, 1)


def log_events(path: Path, fmt: str) -> list[dict]:
    """The log file's events as {event, fields...}; the text format parsed back."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if fmt == "json":
        return [json.loads(line) for line in lines]
    events = []
    for line in lines:
        _, level, logger, event, *pairs = re.findall(r'(?:[^\s"]+="(?:\\.|[^"\\])*"|\S+)', line)
        fields: dict = {"event": event, "level": level, "logger": logger}
        for pair in pairs:
            key, _, value = pair.partition("=")
            fields[key] = _text_value(value)
        events.append(fields)
    return events


def _text_value(text: str) -> object:
    try:
        value = json.loads(text)
    except ValueError:
        return text  # a bare word
    return json.loads(value) if isinstance(value, str) and value.startswith("{") else value


def shape(events: list[dict]) -> list[tuple]:
    """What must not depend on -q/-v: the events, their sites, outcomes, reasons and counts
    (sorted: sites run concurrently)."""
    kept = ("run.start", "site.done", "run.end", "run.failed")
    return sorted(
        (
            (e["event"], e.get("command"), e.get("site"), e.get("outcome"), e.get("exit_code"))
            + (e.get("reason"), json.dumps(e.get("counts"), sort_keys=True))
            for e in events
            if e["event"] in kept
        ),
        key=str,
    )


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_log_file_explains_a_stopped_site_whatever_q_or_v_say(
    workspace: Workspace, fmt: str
) -> None:
    """Issue 15: with -q a site stopped with exit 5 left the log empty; without -q the log had
    no start, no reason and no counts."""
    people = [person(n, n % 3) for n in range(1, 31)]
    assert workspace.cli("push", str(workspace.export(people))).exit_code == 0
    # Mechelen keeps 1 of its 10 people: past max_delete (25 %), a safety stop for that site.
    mechelen = MUNICIPALITIES[1]["nis"]
    kept = [p for p in people if p["nis_code"] != mechelen or p["dossiernummer"].endswith("01")]
    second = workspace.export(kept, "second.csv")
    shapes = {}
    for flags in (("-q",), (), ("-v",)):
        log = workspace.root / f"run{''.join(flags)}.{fmt}.log"
        options = ("--log-file", str(log), "--log-format", fmt, *flags)
        result = workspace.cli(*options, "push", str(second), "--dry-run")
        assert result.exit_code == 5, result.output
        events = log_events(log, fmt)
        start, *sites, end = events
        assert start["event"] == "run.start" and start["command"] == "push"
        assert re.fullmatch(r"[0-9a-f]{16}", start["config_hash"])
        assert start["version"] == __version__
        assert end["event"] == "run.end" and end["exit_code"] == 5
        done = {e["site"]: e for e in sites if e["event"] == "site.done"}
        assert set(done) == {m["id"] for m in MUNICIPALITIES}
        stopped = done[MUNICIPALITIES[1]["id"]]
        assert (stopped["outcome"], stopped["exit_code"]) == ("failed", 5)
        assert stopped["reason"] == "delete_limit_exceeded"
        assert (stopped["counts"], stopped["planned"]["removed"]) == ({}, 9)
        fine = done[SPL]
        assert (fine["outcome"], fine["reason"], fine["counts"]["unchanged"]) == (
            "unchanged",
            None,
            10,
        )
        assert isinstance(fine["duration_ms"], int)
        shapes[flags] = shape(events)
    assert shapes[("-q",)] == shapes[()] == shapes[("-v",)]
