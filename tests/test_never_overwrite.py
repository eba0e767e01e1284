"""Never overwrite an input (docs/safety.md): `pull-status --out` refuses the export itself,
under any name that reaches it, and any existing file unless --force; writes are atomic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agii_sync.atomic import write_atomically
from fixtures.workspace import Workspace, person


def pushed(workspace: Workspace) -> Path:
    export = workspace.export([person(1, 0), person(2, 1)])
    assert workspace.cli("push", str(export)).exit_code == 0
    return export


def alias(kind: str, export: Path) -> Path:
    if kind == "same path":
        return export
    if kind == "relative path":
        return Path(os.path.relpath(export))
    target = export.with_name(f"alias-{kind.replace(' ', '-')}.csv")
    (os.symlink if kind == "symlink" else os.link)(export, target)
    return target


@pytest.mark.parametrize("kind", ["same path", "relative path", "symlink", "hard link"])
@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
def test_pull_status_never_overwrites_the_export(
    workspace: Workspace, kind: str, force: bool
) -> None:
    export = pushed(workspace)
    before = export.read_bytes()
    out = alias(kind, export)
    result = workspace.cli(
        "--json", "pull-status", str(export), "--out", str(out), *(["--force"] * force)
    )
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["type"] == "UsageError"
    assert "input file" in result.output and export.read_bytes() == before


def test_pull_status_never_overwrites_the_config(workspace: Workspace) -> None:
    export = pushed(workspace)
    before = workspace.config_path.read_text()
    result = workspace.cli(
        "pull-status", str(export), "--out", str(workspace.config_path), "--force"
    )
    assert result.exit_code == 2 and workspace.config_path.read_text() == before


def test_an_existing_out_file_needs_force(workspace: Workspace) -> None:
    export = pushed(workspace)
    out = workspace.root / "status.csv"
    out.write_text("someone else's file\n")
    result = workspace.cli("pull-status", str(export), "--out", str(out))
    assert result.exit_code == 2 and "--force" in result.output
    assert out.read_text() == "someone else's file\n"
    result = workspace.cli("pull-status", str(export), "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("dossiernummer,nis_code,status_activiteit")


def test_an_out_folder_is_refused(workspace: Workspace) -> None:
    export = pushed(workspace)
    result = workspace.cli("pull-status", str(export), "--out", str(workspace.root), "--force")
    assert result.exit_code == 2 and "folder" in result.output


def test_an_atomic_write_leaves_the_old_file_whole_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomically(target, b"new content")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    monkeypatch.undo()
    write_atomically(target, b"new content")
    assert target.read_bytes() == b"new content"
