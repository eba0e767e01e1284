"""openpyxl's temporary sheet files live in a private scratch folder that is cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from agii_sync.scratch import private_base, remove_stale, use_private_scratch
from fixtures.workspace import Workspace, person


def test_a_push_leaves_no_temporary_copy_in_the_temp_folders(workspace: Workspace) -> None:
    assert (
        workspace.cli("push", str(workspace.export([person(n, 0) for n in range(1, 30)]))).exit_code
        == 0
    )
    scratch = Path(tempfile.gettempdir())
    assert scratch == use_private_scratch()
    assert oct(scratch.stat().st_mode & 0o777) == "0o700"
    assert not list(scratch.glob("openpyxl.*"))


def test_the_scratch_folder_of_a_killed_process_is_removed_at_the_next_start(
    tmp_path: Path,
) -> None:
    base = tmp_path / "agii-sync-test"
    base.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = base / dead.stdout.strip()
    stale.mkdir()
    (stale / "openpyxl.abc").write_text("Naamx0001q")
    living = base / str(os.getpid())
    living.mkdir()
    assert remove_stale(base) == [stale]
    assert not stale.exists() and living.exists()


def test_folder_site_write_locks_are_shared_between_processes(workspace: Workspace) -> None:
    """The per-process scratch folder must not hold the folder site's write lock: all runs of
    this user share the private lock folder."""
    from agii_sync.sites.local import _lock_path

    mine = use_private_scratch()
    lock = _lock_path(workspace.root / "inburgeraars.xlsx")
    assert lock.parent == private_base() / "locks"
    assert mine not in lock.parents
