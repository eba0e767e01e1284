"""The audit trail through the CLI: one line per command and site, a chain that shows tampering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agii_sync.audit import AuditTrail, audit_event
from fixtures.workspace import MUNICIPALITIES, ROWKEY_SECRET, Workspace, person

SITES = [m["id"] for m in MUNICIPALITIES]
SPL = SITES[0]

both_kinds = pytest.mark.parametrize("site_kind", ["file", "emulator"], indirect=True)


def run_every_command(workspace: Workspace) -> Workspace:
    """One of every command that reads or writes a site (and validate, which reads none)."""
    export = workspace.export([person(n, n % 3, attest_datum="2099-01-31") for n in range(1, 10)])
    runs = [
        ("init",),
        ("validate", str(export)),  # reads no site: no line
        ("push", str(export)),
        ("push", str(export), "--dry-run", "--site", SPL),
        ("check",),
        ("list", "--site", SPL),
        ("pull-status", str(export), "--out", str(workspace.root / "status.csv")),
        ("purge", "--dry-run"),
        ("purge",),
    ]
    for args in runs:
        result = workspace.cli(*args)
        assert result.exit_code == 0, (args, result.output)
    row_id = workspace.rows(SPL)[0]["Rij-ID"]
    result = workspace.cli("status-update", "--site", SPL, row_id, "gecontacteerd")
    assert result.exit_code == 0, result.output
    return workspace


@pytest.fixture
def busy(workspace: Workspace) -> Workspace:
    return run_every_command(workspace)


@pytest.fixture(scope="module")
def busy_trail(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """The trail (and its head) of one busy file-site workspace, built once for the tests that
    only read it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGII_SYNC_ROWKEY_SECRET", ROWKEY_SECRET)
        patch.delenv("AGII_SYNC_CONFIG", raising=False)
        ws = run_every_command(Workspace(tmp_path_factory.mktemp("busy"), "file"))
    var = ws.root / "var"
    return (var / "audit.jsonl").read_bytes(), (var / "audit.jsonl.head").read_bytes()


@pytest.fixture
def trail(busy_trail: tuple[bytes, bytes], tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(busy_trail[0])
    path.with_name("audit.jsonl.head").write_bytes(busy_trail[1])
    return path


def verify(ws: Workspace, trail: Path, *options: str):  # type: ignore[no-untyped-def]
    return ws.cli(*options, "audit", "verify", "--log", str(trail))


@both_kinds
def test_every_command_that_touches_a_site_appends_a_line_per_site(busy: Workspace) -> None:
    everything = busy.audit_lines()
    # the configuration the first run ran under, then one line per site and run
    assert [line["command"] for line in everything].count("config") == 1
    assert everything[0]["command"] == "config"
    assert len({line["config"] for line in everything}) == 1
    lines = everything[1:]
    per_command: dict[str, list[str]] = {}
    for line in lines:
        per_command.setdefault(line["command"], []).append(line["site"])
    assert {c: sorted(s) for c, s in per_command.items()} == {
        "init": sorted(SITES),
        "push": sorted(SITES),
        "push --dry-run": [SPL],
        "check": sorted(SITES),
        "list": [SPL],
        "pull-status": sorted(SITES),
        "purge --dry-run": sorted(SITES),
        "purge": sorted(SITES),
        "status-update": [SPL],
    }
    for line in lines:
        assert {
            "time",
            "actor",
            "host",
            "command",
            "site",
            "etag_before",
            "etag_after",
            "counts",
            "rows",
            "prev",
            "hash",
            "exit_code",
        } <= set(line)
        assert line["actor"].startswith(("user:", "app:"))
    listed = next(line for line in lines if line["command"] == "list")
    assert listed["counts"]["rows_read"] == 3 and listed["rows"] == []
    pushed = [line for line in lines if line["command"] == "push"]
    assert sum(len(line["rows"]) for line in pushed) == 9
    assert {r["reason"] for line in pushed for r in line["rows"]} == {"added"}
    (status,) = [line for line in lines if line["command"] == "status-update"]
    assert [r["reason"] for r in status["rows"]] == ["status_set"]


def test_verify_passes_on_an_untouched_trail(workspace: Workspace, trail: Path) -> None:
    count = len(trail.read_bytes().splitlines())
    result = verify(workspace, trail)
    assert result.exit_code == 0, result.output
    assert f"audit trail intact: {count} lines" in result.stdout
    doc = json.loads(verify(workspace, trail, "--json").stdout)
    assert (doc["ok"], doc["first_bad_line"], doc["lines"]) == (True, None, count)


@pytest.mark.parametrize("where", ["middle-of-line", "hash-field", "newline"])
def test_flipping_one_byte_makes_verify_exit_1_naming_the_line(
    workspace: Workspace, trail: Path, where: str
) -> None:
    path = trail
    data = bytearray(path.read_bytes())
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n")][:-1]
    line_no = 7  # 1-based
    start, end = starts[line_no - 1], starts[line_no] - 1  # end: the index of its newline
    if where == "middle-of-line":
        offset = (start + end) // 2
    elif where == "hash-field":
        offset = data.index(b'"hash":"', start) + len(b'"hash":"') + 5
    else:
        offset = end
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))

    result = verify(workspace, trail)
    assert result.exit_code == 1
    assert f"line {line_no}:" in result.stderr
    doc = json.loads(verify(workspace, trail, "--json").stdout)
    assert (doc["ok"], doc["first_bad_line"]) == (False, line_no)
    assert doc["exit_code"] == 1


def test_a_removed_line_is_named_by_the_line_after_it(workspace: Workspace, trail: Path) -> None:
    lines = trail.read_bytes().splitlines(keepends=True)
    trail.write_bytes(b"".join(lines[:4] + lines[5:]))
    result = verify(workspace, trail, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["first_bad_line"] == 5


@pytest.mark.parametrize("keep", [3, 0])
def test_lines_cut_off_the_end_or_the_whole_trail_are_caught(
    workspace: Workspace, trail: Path, keep: int
) -> None:
    AuditTrail(trail).append(audit_event(actor="a", command="check", site="x"))  # + its head
    lines = trail.read_bytes().splitlines(keepends=True)
    if keep:
        trail.write_bytes(b"".join(lines[:keep]))
    else:
        trail.unlink()
    result = verify(workspace, trail, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["first_bad_line"] == keep + 1


def test_show_and_verify_of_a_trail_that_never_was_are_usage_errors(workspace: Workspace) -> None:
    for command in ("show", "verify"):
        for missing in (workspace.root / "elders.jsonl", workspace.root):  # a folder neither
            assert workspace.cli("audit", command, "--log", str(missing)).exit_code == 2


def test_show_renders_the_trail(workspace: Workspace, trail: Path) -> None:
    result = workspace.cli("audit", "show", "--log", str(trail))
    assert result.exit_code == 0, result.output
    for command in ("init", "push", "check", "list", "pull-status", "purge", "status-update"):
        assert command in result.stdout
    assert "added=3" in result.stdout  # counts rendered, not raw JSON

    doc = json.loads(workspace.cli("--json", "audit", "show", "--log", str(trail)).stdout)
    assert doc["exit_code"] == 0
    assert doc["records"] == [json.loads(line) for line in trail.read_bytes().splitlines()]


@both_kinds
def test_reading_the_trail_writes_no_line_and_the_chain_continues(busy: Workspace) -> None:
    count = len(busy.audit_lines())
    busy.cli("audit", "show")
    busy.cli("audit", "verify")
    assert len(busy.audit_lines()) == count
    assert busy.cli("check", "--site", SPL).exit_code == 0
    assert len(busy.audit_lines()) == count + 1
    assert busy.cli("audit", "verify").exit_code == 0


def test_a_write_whose_run_died_before_its_audit_line_is_recorded_by_the_next_run(
    workspace: Workspace,
) -> None:
    """Write-ahead: the note of a write in progress, left by a process that died, becomes an
    ``interrupted`` audit line at the next run; a note whose writer still runs is left alone."""
    from agii_sync.audit import AuditTrail

    assert workspace.cli("push", str(workspace.export([person(1, 0)]))).exit_code == 0
    trail = AuditTrail(workspace.root / "var" / "audit.jsonl")
    died = trail.begin_write(
        {
            "actor": "user:x",
            "command": "push",
            "site": "genk",
            "etag_before": None,
            "etag_after": None,
            "counts": {"added": 1},
            "rows": [{"row_id": "ABCDE-12345", "reason": "added"}],
        },
        trail.anchor(),
    )
    died.abandon()  # as the OS does when the process is killed
    running = trail.begin_write(
        {
            "actor": "user:y",
            "command": "push",
            "site": "genk",
            "etag_before": None,
            "etag_after": None,
            "counts": {},
            "rows": [],
        },
        trail.anchor(),
    )
    assert workspace.cli("check").exit_code == 0
    interrupted = [line for line in workspace.audit_lines() if line.get("interrupted")]
    assert [(line["actor"], line["rows"]) for line in interrupted] == [
        ("user:x", [{"row_id": "ABCDE-12345", "reason": "added"}])
    ]
    assert running.path.exists()
    running.done()
    assert workspace.cli("audit", "verify").exit_code == 0
