"""A private scratch folder for this process.

openpyxl streams every sheet it saves through a temporary file (``openpyxl.*``) in the system
temp folder; a run killed while saving would leave a copy of personal data there. agii-sync
points Python's temp folder to ``<tmp>/agii-sync-<uid>/<pid>`` (mode 0700), removes it at exit,
and at every start removes the folders of processes that no longer run.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

SYSTEM_TEMP = Path(tempfile.gettempdir())  # before this module points tempfile elsewhere
_active: Path | None = None


def use_private_scratch() -> Path:
    global _active
    if _active is not None and _active.is_dir():
        return _active
    base = SYSTEM_TEMP / f"agii-sync-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    remove_stale(base)
    mine = base / str(os.getpid())
    mine.mkdir(mode=0o700, exist_ok=True)
    tempfile.tempdir = str(mine)
    atexit.register(shutil.rmtree, mine, True)
    _active = mine
    return mine


def remove_stale(base: Path) -> list[Path]:
    """Remove the scratch folders of processes that are gone (killed mid-save)."""
    removed = []
    for folder in base.iterdir():
        if folder.name.isdigit() and not _alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
