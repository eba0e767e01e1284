"""The real commands on a Windows-like platform (see conftest.py): no POSIX-only call, no fork,
Windows' rename and folder rules, a keyring capped at 2,560 bytes per entry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agii_sync.cli import app
from agii_sync.sites.local import office_owner_files
from fixtures.foreign import POSIX_ONLY_MODULES, POSIX_ONLY_OS_NAMES, WindowsLike
from fixtures.workspace import MUNICIPALITIES, Workspace, person

pytestmark = pytest.mark.foreign_platform

SPL = MUNICIPALITIES[0]["id"]
SRC = Path(__file__).resolve().parents[2] / "src" / "agii_sync"

# Grep-able: calls that exist only on POSIX (or mean something else on Windows: os.kill
# terminates a process there) and may appear nowhere in src/.
POSIX_ONLY_IN_SOURCE = (
    *(rf"\bos\.{name}\b" for name in POSIX_ONLY_OS_NAMES),
    *(rf"^\s*(import|from) {module}\b" for module in POSIX_ONLY_MODULES),
    r"\bos\.getppid\b",  # a run's parent on Windows may be long gone; psutil knows
    r"\bsignal\.SIG(KILL|ALRM|HUP|USR1|USR2|CHLD|PIPE|QUIT|STOP|CONT)\b",
    r"get_context\(\s*[\"']fork[\"']",
    r"set_start_method\(\s*[\"']fork[\"']",
    r"\bhasattr\(os, [\"'](getuid|geteuid|kill|fork)",
)


def test_no_posix_only_call_anywhere_in_the_source() -> None:
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for pattern in POSIX_ONLY_IN_SOURCE
        if re.search(pattern, line)
    ]
    assert found == []


def _workbook(workspace: Workspace, site: str = SPL) -> Path:
    return workspace.site(site).path


def _push_one(workspace: Workspace) -> None:
    """One person on one site (one site: no worker processes to spawn)."""
    result = workspace.cli("push", "--site", SPL, str(workspace.export([person(1, 0)])))
    assert result.exit_code == 0, result.output


@pytest.mark.slow  # spawned workers import everything afresh
@pytest.mark.parametrize("site_kind", ["file", "emulator"], indirect=True)
def test_push_list_status_update_purge_and_audit_run_like_on_windows(
    workspace: Workspace, windows_like: WindowsLike
) -> None:
    export = workspace.export([person(n, n % 3) for n in range(1, 10)])
    pushed = workspace.cli("push", str(export))
    assert pushed.exit_code == 0, pushed.output
    assert windows_like.start_methods and set(windows_like.start_methods) == {"spawn"}

    listed = workspace.cli("--json", "list", "--site", SPL)
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)["people"]
    assert len(rows) == 3
    row_id = rows[0]["Rij-ID"]

    updated = workspace.cli("status-update", "--site", SPL, row_id, "gecontacteerd")
    assert updated.exit_code == 0, updated.output
    assert {r["Rij-ID"]: r["Status activiteit"] for r in workspace.rows(SPL)}[row_id] == (
        "Gecontacteerd"
    )

    purged = workspace.cli("purge")
    assert purged.exit_code == 0, purged.output
    assert workspace.cli("audit", "verify").exit_code == 0
    commands = [line["command"] for line in workspace.audit_lines()]
    assert {"push", "list", "status-update", "purge"} <= set(commands)


def test_a_workbook_held_open_is_locked_exit_3_and_left_as_it_was(
    workspace: Workspace, windows_like: WindowsLike
) -> None:
    workspace.agii["lock_wait_seconds"] = 0.3
    assert (
        workspace.cli("push", "--site", SPL, str(workspace.export([person(1, 0)]))).exit_code == 0
    )
    workbook = _workbook(workspace)
    before = workbook.read_bytes()
    row_id = workspace.rows(SPL)[0]["Rij-ID"]
    with windows_like.hold(workbook):  # a virus scanner or OneDrive: no owner file
        result = workspace.cli("status-update", "--site", SPL, row_id, "gecontacteerd")
    assert result.exit_code == 3, result.output
    assert "in use by another program" in result.output
    assert workbook.read_bytes() == before
    assert [p.name for p in workbook.parent.iterdir()] == [workbook.name]  # no temp copy


def test_a_workbook_held_for_a_moment_is_written_within_lock_wait_seconds(
    workspace: Workspace, windows_like: WindowsLike
) -> None:
    workspace.agii["lock_wait_seconds"] = 10
    assert (
        workspace.cli("push", "--site", SPL, str(workspace.export([person(1, 0)]))).exit_code == 0
    )
    row_id = workspace.rows(SPL)[0]["Rij-ID"]
    windows_like.hold_for(_workbook(workspace), seconds=1.5)  # longer than one rename retry
    result = workspace.cli("status-update", "--site", SPL, row_id, "gecontacteerd")
    assert result.exit_code == 0, result.output
    assert workspace.rows(SPL)[0]["Status activiteit"] == "Gecontacteerd"


@pytest.mark.parametrize(
    "owner",
    ["~$burgeraars.xlsx", ".~lock.inburgeraars.xlsx#"],
    ids=["excel", "libreoffice"],
)
def test_a_workbook_open_in_an_office_program_is_locked(
    workspace: Workspace, windows_like: WindowsLike, owner: str
) -> None:
    workspace.agii["lock_wait_seconds"] = 0.2
    push = ("push", "--site", SPL)
    assert workspace.cli(*push, str(workspace.export([person(1, 0)]))).exit_code == 0
    workbook = _workbook(workspace)
    (workbook.parent / owner).write_bytes(b"\x0bagii-steward")
    with windows_like.hold(workbook):
        result = workspace.cli(*push, str(workspace.export([person(1, 0), person(2, 0)])))
    assert result.exit_code == 3, result.output
    assert "open in an office program" in result.output
    (workbook.parent / owner).unlink()
    assert workspace.cli(*push, str(workspace.export([person(1, 0), person(2, 0)]))).exit_code == 0


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("inburgeraars.xlsx", "~$burgeraars.xlsx"),  # 12 characters: the first two dropped
        ("bestand.xlsx", "~$estand.xlsx"),  # 7: the first dropped
        ("lijst.xlsx", "~$lijst.xlsx"),  # up to 6: the whole name
    ],
)
def test_office_owner_files_are_recognised_as_office_names_them(name: str, owner: str) -> None:
    assert owner in office_owner_files(name)
    assert f".~lock.{name}#" in office_owner_files(name)


def _pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_login_and_logout_with_a_keyring_capped_at_2560_bytes(
    windows_like: WindowsLike, tmp_path: Path
) -> None:
    runner = CliRunner()
    secret = "s" * 43
    stored = runner.invoke(app, ["login", "--rowkey-secret-stdin"], input=secret + "\n")
    assert stored.exit_code == 0, stored.output
    assert windows_like.keyring.entries[("agii-sync", "rowkey-secret")] == secret

    pem = _pem()
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem, encoding="ascii")
    for args in (["login"], ["--json", "login"]):
        refused = runner.invoke(app, [*args, "--certificate-key", str(key_file)])
        assert refused.exit_code == 4, refused.output
        assert "AGII_SYNC_CERT_KEY" in refused.output
        assert "2560 bytes" in refused.output
        assert "Traceback" not in refused.output and pem.splitlines()[1] not in refused.output
    assert ("agii-sync", "certificate-key") not in windows_like.keyring.entries

    removed = runner.invoke(app, ["--json", "logout"])
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout)["removed"] == ["rowkey-secret"]
    assert windows_like.keyring.entries == {}
