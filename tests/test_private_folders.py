"""Temporary and lock folders are private: a folder another local user made first, or a
symlink planted in its place or in the lock folder, is never used and never an internal error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agii_sync import scratch
from fixtures.workspace import Workspace, person

OTHER_USER = 65534  # nobody
needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="making another user's folder needs root",
)


@pytest.fixture
def fresh_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temp folder is ``tmp_path``, and no base folder was chosen yet."""
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o1777)
    temp.chmod(0o1777)
    monkeypatch.setattr(scratch, "SYSTEM_TEMP", temp)
    monkeypatch.setattr(scratch, "_base", None)
    scratch._owner_of_new_files.cache_clear()
    return temp


def _expected_name(temp: Path) -> Path:
    return temp / f"agii-sync-{os.getuid()}"


def _assert_private(folder: Path) -> None:
    info = folder.lstat()
    assert stat.S_ISDIR(info.st_mode)
    assert info.st_uid == os.getuid()
    assert stat.S_IMODE(info.st_mode) == 0o700


def test_the_base_folder_is_made_private(fresh_temp: Path) -> None:
    base = scratch.private_base()
    assert base == _expected_name(fresh_temp)
    _assert_private(base)
    _assert_private(scratch.lock_folder())


@needs_root
def test_a_base_folder_another_user_made_first_is_never_used(fresh_temp: Path) -> None:
    planted = _expected_name(fresh_temp)
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    os.chown(planted, OTHER_USER, OTHER_USER)
    base = scratch.private_base()
    assert base != planted and planted not in base.parents
    _assert_private(base)
    assert list(planted.iterdir()) == []  # nothing of ours went there
    assert planted.stat().st_uid == OTHER_USER  # and it was left alone


def test_a_symlink_planted_as_the_base_folder_is_never_followed(
    fresh_temp: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "victim"
    elsewhere.mkdir(mode=0o700)
    _expected_name(fresh_temp).symlink_to(elsewhere)
    base = scratch.private_base()
    assert base.resolve() != elsewhere
    _assert_private(base)
    assert list(elsewhere.iterdir()) == []


def test_a_base_folder_of_ours_with_a_loose_mode_is_tightened(fresh_temp: Path) -> None:
    mine = _expected_name(fresh_temp)
    mine.mkdir()
    mine.chmod(0o755)
    assert scratch.private_base() == mine
    _assert_private(mine)


def test_a_symlink_planted_in_the_lock_folder_does_not_break_push(
    workspace: Workspace, tmp_path: Path
) -> None:
    from agii_sync.sites.local import _lock_path

    site = workspace.site("sint-pieters-leeuw")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    lock = _lock_path(site.path)
    lock.unlink(missing_ok=True)
    lock.symlink_to(victim)
    result = workspace.cli("push", str(workspace.export([person(1, 0), person(2, 1)])))
    assert result.exit_code == 0, result.output
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not lock.is_symlink()
