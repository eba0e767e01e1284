"""One run at a time per config, so overlapping cron jobs fail fast instead of interleaving.

The lock is an OS file lock (``filelock``), released by the kernel even when a run is killed.
Who holds it is written to a sidecar ``<lock>.info``: the lock file itself belongs to
``filelock`` (3.x truncates it on every acquire; its soft fallback keeps its own marker there).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from .atomic import write_atomically
from .errors import RunLockHeld


def info_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + ".info")


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold the run lock for the block; ``RunLockHeld`` at once if another run has it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunLockHeld(_held_message(path), hint="wait for it to finish and run again") from None
    try:
        _write_info(path)
        yield
    finally:
        # Remove the info while still holding the lock, or it could erase the next holder's.
        with suppress(FileNotFoundError):
            info_path(path).unlink()
        lock.release()


def _write_info(lock_path: Path) -> None:
    info = {
        "pid": os.getpid(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
    }
    # A reader never sees half of it. PermissionError: a reader holds it (Windows); the info
    # only names the holder.
    with suppress(PermissionError):
        write_atomically(info_path(lock_path), json.dumps(info).encode("utf-8"), durable=False)


def _held_message(lock_path: Path) -> str:
    info = _read_info(lock_path)
    if info is None:
        return "another agii-sync run holds the lock (start time unknown)"
    holder = f"pid {info['pid']}"
    if info.get("host") not in (None, socket.gethostname()):
        holder += f" on {info['host']}"
    return f"another agii-sync run holds the lock since {info['since']} ({holder})"


def _read_info(lock_path: Path) -> dict | None:
    try:
        info = json.loads(info_path(lock_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not {"pid", "since"} <= set(info):
        return None
    return info
