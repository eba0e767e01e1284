"""No personal data in what the tool prints about its input, by construction: a header cell is
shown only when it looks like a column name, a headerless export is refused without echoing its
first line, a usage error names the offending argument by position, a URL never shows a user
name or password."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agii_sync.cli import app
from fixtures.entry import run_entry
from fixtures.leaks import assert_no_personal_data
from fixtures.workspace import MUNICIPALITIES, Workspace, person
from test_no_personal_data import Recorder

SPL, MECHELEN, GENK = (m["id"] for m in MUNICIPALITIES)


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> str:
    """The real entry point, in process: what a person sees of a usage error."""
    code, out, err = run_entry(monkeypatch, capsys, *args)
    assert code == 2, (out, err)
    return out + err


TYPED = {"naam": "Peetersx", "voornaam": "Janneke", "dossiernummer": "B9988776"}


@pytest.mark.parametrize(
    "args",
    [
        ("status-update", "--site", SPL, "Janneke", "Peetersx", "B9988776"),
        ("status-update", "--site", SPL, "--Peetersx", "Janneke"),
        ("push", "--Janneke=Peetersx", "export.csv"),
        ("push", "--max-delete", "B9988776", "x", "Peetersx"),
        ("Peetersx",),
        ("list", "--site", SPL, "--format", "Peetersx"),
        ("status-update", "--site", SPL, "--from", "Peetersx", "Janneke"),
    ],
    ids=[
        "extra-arguments",
        "unknown-option",
        "option-with-value",
        "bad-value",
        "command",
        "choice",
        "from",
    ],
)
@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_usage_errors_name_the_argument_by_position_never_by_text(
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    json_mode: bool,
) -> None:
    workspace.write_config()
    prefix = ("--config", str(workspace.config_path), *(["--json"] if json_mode else []))
    shown = run_main(monkeypatch, capsys, *prefix, *args)
    assert "error" in shown.casefold(), shown
    assert_no_personal_data({"usage error": shown}, [TYPED])


def test_a_headerless_export_is_refused_without_echoing_its_first_line(
    workspace: Workspace,
) -> None:
    people = [person(n, 0) for n in range(1, 4)]
    export = workspace.export(people)
    lines = export.read_text(encoding="utf-8-sig").splitlines()
    export.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")  # the header line lost
    cli = Recorder(workspace)
    for command in (("validate",), ("push",), ("--json", "validate"), ("--json", "push")):
        result = cli(*command, str(export), codes=(1,))
        assert "the first line is not a header" in result.output
    assert_no_personal_data(cli.outputs, people)


def test_header_cells_holding_data_are_named_by_position(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 4)]
    export = workspace.export(people)
    header, *rest = export.read_text(encoding="utf-8-sig").splitlines()
    typed_over = f"{header};{people[0]['naam']};{people[1]['voornaam']} {people[1]['naam']}"
    export.write_text("\n".join([typed_over, *rest]) + "\n", encoding="utf-8")
    cli = Recorder(workspace)
    text = cli("validate", str(export))
    as_json = cli("--json", "validate", str(export))
    assert json.loads(as_json.stdout)["unknown_columns"] == ["(column 17)", "(column 18)"]
    assert "(column 17)" in text.output
    assert_no_personal_data(cli.outputs, people)


def test_a_url_with_a_password_is_never_printed(workspace: Workspace) -> None:
    config = workspace.write_config()
    text = config.read_text().replace(
        'site = "file:sites/genk"', 'site = "http://agent:Geheimx99@127.0.0.1:9/sites/genk"'
    )
    text = text.replace(
        f'site = "{workspace.site_url(GENK)}"',
        'site = "http://agent:Geheimx99@127.0.0.1:9/sites/genk"',
    )
    config.write_text(text)
    for args in (("check", "--site", GENK), ("--json", "check", "--site", GENK)):
        result = CliRunner().invoke(app, ["--config", str(config), *args])
        assert result.exit_code in (2, 3, 4), result.output
        assert "Geheimx99" not in result.output and "agent:" not in result.output
