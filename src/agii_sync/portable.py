"""What differs between Windows, macOS and Linux, in one place, without POSIX-only calls.

- A folder cannot be opened (and so not fsynced) on Windows; where it can, fsyncing it makes a
  new directory entry survive a power cut.
- Windows refuses to rename over, or delete, a file another program holds open (Excel,
  OneDrive, a virus scanner): ``PermissionError``. Such holds are usually brief, so a rename is
  tried again for a moment before the caller decides what the refusal means.
- Whether a process still runs: ``psutil`` (a zero signal to a pid terminates it on Windows).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

REPLACE_RETRY_SECONDS = 1.0
_RETRY_STEP_SECONDS = 0.05


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable where the OS allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows: a folder is no file; NTFS journals the rename itself
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse to sync a folder; the file itself was synced
    finally:
        os.close(descriptor)


def replace_file(
    source: Path | str, target: Path | str, *, wait: float = REPLACE_RETRY_SECONDS
) -> None:
    """``os.replace``, tried again for up to ``wait`` seconds while another program holds
    ``target`` open (Windows); ``PermissionError`` when it still does."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_RETRY_STEP_SECONDS)


def process_alive(pid: int) -> bool:
    return bool(psutil.pid_exists(pid))


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(psutil.Process().cpu_affinity() or []) or os.cpu_count() or 1
    except (AttributeError, psutil.Error, OSError):  # macOS has no CPU affinity
        return os.cpu_count() or 1
