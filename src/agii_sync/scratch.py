"""Private folders for this user: the scratch folder of this process and the lock folder.

openpyxl streams every sheet it saves through a temporary file (``openpyxl.*``) in the system
temp folder; a run killed while saving would leave a copy of personal data there. agii-sync
points Python's temp folder to ``<tmp>/agii-sync-<owner>/<pid>``, removes it at exit, and at
every start removes the folders of processes that no longer run. The folder sites' write locks
live in ``<tmp>/agii-sync-<owner>/locks``.

Private on every platform: on Linux and macOS the base folder must be a real folder (not a
symlink) owned by this user with mode 0700; one that another local user created first, or a
symlink planted in its place, is never used (a fresh private folder from ``mkdtemp`` is used
instead, removed at exit). On Windows the temp folder is the user's own
(``%LOCALAPPDATA%\\Temp``, closed to other users), and ``os.mkdir``/``mkdtemp`` with mode 0700
also restrict the new folder to this user on Python 3.13 (3.12.4). ``<owner>`` is the user id
that owns the files this process creates, read without a POSIX-only call.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .portable import process_alive

log = logging.getLogger(__name__)

SYSTEM_TEMP = Path(tempfile.gettempdir())  # before this module points tempfile elsewhere
# Where privacy is mode bits and owners (POSIX); elsewhere it is the per-user temp folder.
MODE_BITS_MAKE_PRIVATE = os.name == "posix"
_base: Path | None = None
_active: Path | None = None


def use_private_scratch() -> Path:
    global _active
    if _active is not None and _active.is_dir():
        return _active
    base = private_base()
    remove_stale(base)
    mine = base / str(os.getpid())
    mine.mkdir(mode=0o700, exist_ok=True)
    tempfile.tempdir = str(mine)
    atexit.register(_remove_scratch, mine)
    _active = mine
    return mine


def lock_folder() -> Path:
    """Where the folder sites' write locks live: shared by this user's runs, no one else's."""
    folder = private_base() / "locks"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def private_base() -> Path:
    global _base
    if _base is None or not _is_private(_base):
        owner = _owner_of_new_files()
        base = SYSTEM_TEMP / f"agii-sync-{owner}"
        try:
            base.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:  # e.g. another user's folder we cannot even look into
            log.warning("scratch.base_refused", extra={"fields": {"reason": type(exc).__name__}})
            base = _fresh_base(owner)
        if not _is_private(base):
            log.warning("scratch.base_refused", extra={"fields": {"folder": str(base)}})
            base = _fresh_base(owner)
        _base = base
    return _base


def _fresh_base(owner: str) -> Path:
    base = Path(tempfile.mkdtemp(prefix=f"agii-sync-{owner}-", dir=SYSTEM_TEMP))
    atexit.register(shutil.rmtree, base, True)
    return base


def _is_private(folder: Path) -> bool:
    """A real folder (no symlink, no junction) of ours; on POSIX owned by us, mode 0700 (a
    folder of ours with a looser mode is tightened)."""
    try:
        info = folder.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or _is_junction(folder):
        return False
    if not MODE_BITS_MAKE_PRIVATE:
        return True
    if str(info.st_uid) != _owner_of_new_files():
        return False
    if stat.S_IMODE(info.st_mode) != 0o700:
        try:
            folder.chmod(0o700)
        except OSError:
            return False
    return True


def _is_junction(folder: Path) -> bool:
    is_junction = getattr(folder, "is_junction", None)  # Windows junctions, Python 3.12+
    return bool(is_junction and is_junction())


@functools.cache
def _owner_of_new_files() -> str:
    """The user id that owns a file this process creates (0 on Windows, where ``st_uid``
    means nothing)."""
    with tempfile.TemporaryFile(dir=SYSTEM_TEMP) as probe:
        return str(os.fstat(probe.fileno()).st_uid)


def _remove_scratch(mine: Path) -> None:
    """At exit. multiprocessing's own temporary folder (``pymp-*``, sockets only) is left to
    multiprocessing, which removes it after this; an empty folder left so is stale next time."""
    for entry in mine.glob("*"):
        if entry.name.startswith("pymp-"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
    with contextlib.suppress(OSError):
        mine.rmdir()


def remove_stale(base: Path) -> list[Path]:
    """Remove the scratch folders of processes that are gone (killed mid-save)."""
    removed = []
    for folder in base.iterdir():
        if folder.name.isdigit() and not process_alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
