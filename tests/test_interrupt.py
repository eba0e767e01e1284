"""Ctrl-C tells the truth (issue 15): SIGINT or SIGTERM stops a push at a site boundary or a
step of a site, never in a write; the report and the audit trail say per site what it got
(written, abandoned, not started), and the workbooks agree. No traceback at any moment,
start-up included.

A real ``agii-sync push`` runs in a subprocess over three folder sites, one site at a time
(``workers = 1``), and gets the signal once the log file shows its first site done.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest

from agii_sync.formats.docprops import ANCHOR_PROPERTY, read_property
from fixtures.workspace import MUNICIPALITIES, Workspace, person

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals to a subprocess"),
]

SITES = [m["id"] for m in MUNICIPALITIES]
PEOPLE = {0: 600, 1: 1500, 2: 600}  # per site, in config order (the order of a 1-worker run)
RUN_TIMEOUT = 120.0
POLL = 0.005


def lean(n: int, site: int) -> dict[str, str]:
    return person(n, site, telefoon="", email="")


def start(ws: Workspace, *args: str, code: str = "") -> subprocess.Popen[str]:
    ws.write_config()
    program = code or "from agii_sync.entry import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", program, "--config", str(ws.config_path), *args],
        cwd=ws.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(found, process: subprocess.Popen[str]) -> None:  # type: ignore[no-untyped-def]
    """Bounded wait for a marker (no wall-clock assertion: the bound only ends a hang)."""
    for _ in range(int(RUN_TIMEOUT / POLL)):
        if found() or process.poll() is not None:
            return
        time.sleep(POLL)
    raise AssertionError("the marker never appeared")


def site_lines(log: Path, event: str) -> list[dict]:
    if not log.exists():
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    return [
        e for e in (json.loads(line) for line in lines if line.endswith("}")) if e["event"] == event
    ]


def data_rows(content: bytes) -> list[tuple]:
    """The data rows of a workbook, which must open whole."""
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    try:
        return [r for r in book["Inburgeraars"].iter_rows(min_row=2, values_only=True) if any(r)]
    finally:
        book.close()


@pytest.mark.parametrize(
    ("signum", "workers", "marker"),
    [
        (signal.SIGINT, 1, "site.done"),  # one site at a time: written, abandoned, not started
        (signal.SIGTERM, 1, "site.done"),
        (signal.SIGINT, 8, "site.start"),  # all at once, workbook work in worker processes
    ],
    ids=["SIGINT-one-at-a-time", "SIGTERM-one-at-a-time", "SIGINT-all-at-once"],
)
def test_a_stopped_push_reports_and_audits_per_site_what_each_site_got(
    workspace: Workspace, signum: signal.Signals, workers: int, marker: str
) -> None:
    workspace.agii["workers"] = workers
    assert workspace.cli("init").exit_code == 0
    before = {site: workspace.workbook_bytes(site) for site in SITES}
    lines_before = len(workspace.audit_lines())
    people: list[dict[str, str]] = []
    for site, count in PEOPLE.items():
        people += [lean(len(people) + k, site) for k in range(1, count + 1)]
    export = workspace.export(people)
    log = workspace.root / "var" / "run.jsonl"

    process = start(workspace, "--json", "--log-file", str(log), "push", str(export))
    wait_for(lambda: site_lines(log, marker), process)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)

    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    report = {s["site"]: s for s in json.loads(stdout)["sites"]}
    assert set(report) == set(SITES)
    run_lines = {line["site"]: line for line in workspace.audit_lines()[lines_before:]}
    assert set(run_lines) == set(SITES)  # one audit line per site, whatever it got

    states = []
    for site in SITES:
        content = workspace.workbook_bytes(site)
        assert content is not None
        site_report, audit_line = report[site], run_lines[site]
        if site_report["written"]:
            state = "written"
            assert site_report.get("stopped") is None and "stopped" not in audit_line
            assert len(data_rows(content)) == PEOPLE[SITES.index(site)]  # the new one, whole
            anchor = json.loads(read_property(content, ANCHOR_PROPERTY) or "{}")
            assert audit_line["write_id"] == anchor["write"]
        else:
            state = site_report["stopped"]
            assert state in ("abandoned", "not_started"), site_report
            assert audit_line["stopped"] == state and audit_line["exit_code"] == 3
            assert audit_line["rows"] == [] and "write_id" not in audit_line
            assert content == before[site]  # the old one, untouched
            assert site_report["error"]["type"] == "Interrupted"
        states.append(state)
    assert states != ["written"] * len(SITES)  # the stop took effect
    if workers == 1:  # the written ones first, at most one abandoned, the rest not started
        assert states[0] == "written"
        first_stopped = states.index(next(s for s in states if s != "written"))
        assert "written" not in states[first_stopped:] and states.count("abandoned") <= 1
    done = {e["site"]: e for e in site_lines(log, "site.done")}
    assert {site: e["outcome"] for site, e in done.items()} == dict(zip(SITES, states, strict=True))
    ends = site_lines(log, "run.end")
    assert ends[-1]["exit_code"] == 3
    assert not list((workspace.root / "var" / "audit.jsonl.pending").glob("*.json"))
    assert workspace.cli("audit", "verify", "--sites").exit_code == 0


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2, 0.5])
def test_ctrl_c_while_starting_up_is_exit_3_without_a_traceback(
    workspace: Workspace, delay: float
) -> None:
    """The signal lands while the command line's libraries are imported, or soon after."""
    export = workspace.export([lean(1, 0)])
    ready = (
        "import sys; import agii_sync.entry as entry; "
        "sys.stderr.write('ready\\n'); sys.stderr.flush(); entry.main()"
    )
    process = start(workspace, "push", str(export), code=ready)
    assert process.stderr is not None
    assert process.stderr.readline() == "ready\n"
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=RUN_TIMEOUT)
    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "stopped by SIGINT" in stderr
