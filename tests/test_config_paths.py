"""Config errors are exit 2, always, naming the file and the key: nesting that would exhaust
the parser's stack, a NUL in a path, a path or name longer than any file system takes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agii_sync.cli import app
from fixtures.workspace import Workspace

LONG_NAME = "n" * 300
LONG_PATH = "/".join(["folder"] * 700)


@pytest.mark.parametrize(
    ("mutation", "fragment"),
    [
        (lambda text: text + "\nx = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        (
            lambda text: text + "\nx = " + "{a=" * 3000 + "1" + "}" * 3000 + "\n",
            "nested too deeply",
        ),
        (
            lambda text: text.replace("var/audit.jsonl", "var/au\\u0000dit.jsonl"),
            "agii.audit_log: a path cannot hold a NUL",
        ),
        (
            lambda text: text.replace("[agii]", '[agii]\nlock_file = "run\\u0000.lock"'),
            "agii.lock_file: a path cannot hold a NUL",
        ),
        (
            lambda text: text.replace("file:sites/genk", "file:sites/ge\\u0000nk"),
            "municipality[id=genk].site: a path cannot hold a NUL",
        ),
        (
            lambda text: text.replace("var/audit.jsonl", f"var/{LONG_NAME}.jsonl"),
            "agii.audit_log: a file or folder name in the path is longer",
        ),
        (
            lambda text: text.replace("file:sites/genk", f"file:{LONG_PATH}"),
            "municipality[id=genk].site: the path is longer",
        ),
        (
            lambda text: text.replace("inburgeraars.xlsx", f"{LONG_NAME}.xlsx"),
            "workbook.path: a file or folder name",
        ),
    ],
    ids=[
        "nested-arrays",
        "nested-tables",
        "nul-audit-log",
        "nul-lock-file",
        "nul-site-folder",
        "long-name",
        "long-site-path",
        "long-workbook-name",
    ],
)
def test_path_and_parse_problems_are_config_errors(
    workspace: Workspace, mutation, fragment: str
) -> None:  # type: ignore[no-untyped-def]
    path = workspace.write_config()
    path.write_text(mutation(path.read_text()), encoding="utf-8")
    for command in (["check"], ["push", str(workspace.root / "export.csv")], ["audit", "verify"]):
        result = CliRunner().invoke(app, ["--config", str(path), *command])
        assert result.exit_code == 2, (command, result.output)
        assert fragment in result.output and path.name in result.output
        assert "internal error" not in result.output
