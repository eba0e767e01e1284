"""The CLI's edges: config errors, unreadable input, validate, schema drift, demo, --version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agii_sync import __version__
from agii_sync.cli import app
from agii_sync.schemas import write_schemas
from fixtures.entry import run_entry
from fixtures.secrets import MemoryKeyring
from fixtures.workspace import Workspace, person

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"agii-sync {__version__}\n"


@pytest.mark.parametrize("args", [["--json", "--version"], ["--version", "--json"]])
def test_version_under_json_is_one_json_document(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "command": "version",
        "exit_code": 0,
        "version": __version__,
    }


@pytest.mark.parametrize(
    ("mutation", "fragment"),
    [
        (
            lambda text: text.replace('nis = "23077"', 'nis = "2307"'),
            "municipality[id=sint-pieters-leeuw].nis",
        ),
        (
            lambda text: text + '\n[auth]\ntenant = "t"\nclient_id = "c"\nclient_secret = "s"\n',
            "client_secret",
        ),
        (lambda text: text.replace("file:sites/genk", "http://example.org/sites/genk"), "loopback"),
        (lambda text: text.replace("[agii]", '[agii]\nmax_delete = "lots"'), "max_delete"),
        (lambda text: text.replace("[agii]", "[agii]\nunknown_key = 1"), "unknown_key"),
        (lambda text: text + "\n[[municipality", "not valid TOML"),
        (lambda text: text.replace('sheet = "Inburgeraars"', 'sheet = "A/B"'), "workbook.sheet"),
        (
            lambda text: text.replace('sheet = "Inburgeraars"', 'sheet = "toelichting"'),
            "workbook.sheet",
        ),
    ],
    ids=[
        "bad-nis",
        "secret-key",
        "plain-http",
        "max-delete",
        "unknown-key",
        "toml",
        "sheet-slash",
        "sheet-toelichting",
    ],
)
def test_config_errors_exit_2_with_file_and_key(workspace: Workspace, mutation, fragment) -> None:  # type: ignore[no-untyped-def]
    path = workspace.write_config()
    path.write_text(mutation(path.read_text()), encoding="utf-8")
    result = runner.invoke(app, ["--config", str(path), "check"])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and str(path.name) in result.output
    assert "Traceback" not in result.output


def test_missing_config_names_the_ways_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGII_SYNC_CONFIG", raising=False)
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 2
    assert "AGII_SYNC_CONFIG" in result.output


def test_missing_rowkey_secret_names_variable_and_login(
    workspace: Workspace, monkeypatch, memory_keyring
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("AGII_SYNC_ROWKEY_SECRET")
    result = workspace.cli("push", str(workspace.export([person(1, 0)])))
    assert result.exit_code == 2
    assert "AGII_SYNC_ROWKEY_SECRET" in result.output and "agii-sync login" in result.output


def test_unknown_site_is_a_usage_error(workspace: Workspace) -> None:
    result = workspace.cli("check", "--site", "brugge")
    assert result.exit_code == 2 and "brugge" in result.output


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary\x00", "not a CSV or XLSX"),
        (b"PK\x03\x04garbage", "not a readable XLSX"),
        (b"dossiernummer;nis_code;naam;vornaam\n", "did you mean"),
    ],
    ids=["empty", "binary", "broken-zip", "misspelled-header"],
)
def test_unreadable_export_is_one_line_and_exit_1(
    workspace: Workspace, content: bytes, fragment: str
) -> None:
    path = workspace.root / "export.csv"
    path.write_bytes(content)
    for command in (["validate", str(path)], ["push", str(path)]):
        result = workspace.cli(*command)
        assert result.exit_code == 1, result.output
        assert fragment in result.output and "Traceback" not in result.output
    assert (
        not list((workspace.root / "sites").rglob("*.xlsx"))
        if (workspace.root / "sites").exists()
        else True
    )


def test_a_missing_export_is_a_usage_error(workspace: Workspace) -> None:
    for command in ("validate", "push"):
        for path in (workspace.root / "nope.csv", workspace.root):
            result = workspace.cli("--json", command, str(path))
            assert result.exit_code == 2, result.output
            assert json.loads(result.stdout)["error"]["type"] == "UsageError"


@pytest.mark.parametrize("args", [["push"], ["push", "--bogus", "x.csv"], ["bogus"], []], ids=str)
def test_usage_errors_exit_2_and_give_a_json_document_with_json(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_entry(monkeypatch, capsys, *args)
    assert code == 2 and "Usage:" in err
    code, out, err = run_entry(monkeypatch, capsys, "--json", *args)
    assert code == 2 and "Usage:" in err
    doc = json.loads(out)
    assert doc["exit_code"] == 2 and doc["error"]["type"] == "UsageError"


def test_quiet_prints_only_what_went_wrong(workspace: Workspace) -> None:
    export = workspace.export([person(1, 0), person(2, 1)])
    for m in ("sint-pieters-leeuw", "mechelen", "genk"):
        staff = {"type": "user", "title": "Staff", "email": f"staff@{m}.be"}
        access = {"role_assignments": [{"principal": staff, "roles": ["Edit"]}]}
        (workspace.root / "sites" / m).mkdir(parents=True, exist_ok=True)
        (workspace.root / "sites" / m / "_access.json").write_text(json.dumps(access))
    for command in (["push", str(export)], ["check"], ["purge"], ["access-check"]):
        result = workspace.cli("-q", *command)
        assert result.exit_code == 0 and result.stdout == "" and result.stderr == "", command
    bad = workspace.export([person(1, 0), person(2, 1, email="geen-adres")], name="bad.csv")
    result = workspace.cli("-q", "push", str(bad))
    assert result.exit_code == 1 and "invalid_email" in result.stdout


def test_validate_reports_rows_without_values_and_writes_nothing(workspace: Workspace) -> None:
    rows = [
        person(1, 0),
        person(2, 0, interesses="geen;3"),
        person(3, 0, contacttaal="Elfentaal"),
        person(4, 0, dossiernummer="A7000001"),
        person(5, 0, naam='=HYPERLINK("http://x")'),
    ]
    result = workspace.cli("--json", "validate", str(workspace.export(rows)))
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    codes = {(p["line"], p["code"]) for p in doc["problems"]}
    assert {
        (3, "geen_with_others"),
        (4, "unknown_language"),
        (2, "duplicate_dossier"),
        (5, "duplicate_dossier"),
        (6, "formula_like_text"),
    } <= codes
    for value in ("Naamx0002q", "Elfentaal", "A7000001", "HYPERLINK"):
        assert value not in result.stdout
    written = [p for p in (workspace.root / "sites").rglob("*") if p.is_file()]
    assert {p.name for p in written} <= {"_access.json"}  # the workspace's own access files
    assert workspace.audit_lines() == []


def test_validate_accepts_xlsx_and_windows_1252(workspace: Workspace) -> None:
    rows = [person(1, 0, naam="Çelikx"), person(2, 1, straat="Rue de l'Égalité")]
    xlsx = workspace.export(rows, name="export.xlsx", fmt="xlsx")
    assert workspace.cli("validate", str(xlsx)).exit_code == 0
    csv_path = workspace.export(rows, name="export-utf8.csv")
    cp1252 = workspace.root / "export-1252.csv"
    cp1252.write_bytes(csv_path.read_text(encoding="utf-8-sig").encode("cp1252"))
    assert workspace.cli("validate", str(cp1252)).exit_code == 0


def test_admin_commands_give_one_json_document(memory_keyring: MemoryKeyring) -> None:
    runs = [
        (["schema", "--check", "--out", str(ROOT / "schemas")], None),
        (["login", "--rowkey-secret-stdin"], "een-lang-genoeg-geheim-1234\n"),
        (["logout"], None),
    ]
    for args, stdin in runs:
        result = runner.invoke(app, ["--json", *args], input=stdin)
        doc = json.loads(result.stdout)
        assert result.exit_code == doc["exit_code"] == 0, args
        assert "een-lang" not in result.stdout
    assert doc["removed"] == ["rowkey-secret"]


def test_schemas_are_up_to_date() -> None:
    stale = write_schemas(ROOT / "schemas", check_only=True)
    assert stale == [], "run `uv run agii-sync schema`"


def test_schema_check_fails_when_schemas_drift(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", "--check", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert runner.invoke(app, ["schema", "--out", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["schema", "--check", "--out", str(tmp_path)]).exit_code == 0


def test_demo_never_writes_into_a_folder_that_holds_something(tmp_path: Path) -> None:
    (tmp_path / "agii-sync.toml").write_text("# mine\n", encoding="utf-8")
    result = runner.invoke(app, ["demo", "--keep", str(tmp_path)])
    assert result.exit_code == 2 and "not an empty folder" in result.output
    assert (tmp_path / "agii-sync.toml").read_text(encoding="utf-8") == "# mine\n"


def test_demo_runs_the_whole_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGII_SYNC_ROWKEY_SECRET", raising=False)
    result = runner.invoke(app, ["--json", "demo", "--keep", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [s["step"] for s in doc["steps"]] == [
        "init",
        "push",
        "status-update",
        "pull-status",
        "purge",
    ]
    purge = {s["site"]: s for s in doc["steps"][-1]["sites"]}
    assert purge["genk"]["counts"]["protocol_ended"] > 0
    assert purge["genk"]["versions_deleted"] > 0
    assert (tmp_path / "demo" / "status-terug.csv").exists()
