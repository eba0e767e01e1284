"""One way to write a file: whole or not at all, never over an input.

Every file the tool writes (a folder site's workbook, `pull-status --out`, the status memory,
the audit trail's key, head and write-ahead notes, the emulator's files) goes through
``write_atomically``: a private temporary file in the same folder, flushed to disk, then
renamed over the target in one step, so a reader (or a crash) never sees half of it.
``refuse_overwrite`` is the rule for output files a person names: an existing file only with
``--force``, and never one of the command's inputs, whatever path (symlink, hard link) names it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import UsageError
from .portable import fsync_folder, replace_file

TEMP_SUFFIX = ".tmp"


def write_atomically(
    path: Path,
    content: bytes,
    *,
    temp_prefix: str | None = None,
    temp_dir: Path | None = None,
    temp: Path | None = None,
    durable: bool = True,
) -> None:
    """Replace ``path`` by ``content`` in one rename; the temporary file is readable by its
    owner only (it may hold personal data) and removed when anything fails.

    The temporary file is a new one named ``temp_prefix``…``.tmp`` in ``temp_dir`` (default:
    ``path``'s folder; the same file system either way), or exactly ``temp`` for a writer whose
    recovery looks for it by name (it must hold a lock that makes it the only writer).
    ``durable``: flushed to disk before the rename, and the rename after it (where the OS
    allows), so a power cut leaves the old file or the new one."""
    if temp is None:
        prefix = temp_prefix if temp_prefix is not None else f".{path.name}."
        folder = temp_dir if temp_dir is not None else path.parent
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=folder)
    else:
        fd, tmp = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), str(temp)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        replace_file(tmp, path)  # PermissionError: another program holds it open (Windows)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_folder(path.parent)


def refuse_overwrite(
    out: Path, *, inputs: Iterable[Path], force: bool, option: str = "--out"
) -> None:
    """Raise UsageError (exit 2, nothing touched) when ``out`` is one of ``inputs`` (by
    ``os.path.samefile``: a symlink or hard link to an input counts), or exists and
    ``force`` is not given, or is a folder."""
    for source in inputs:
        if _same_file(out, source):
            raise UsageError(
                f"{option} {out} is the input file {source}: it is never overwritten",
                hint=f"give {option} another file name",
            )
    if out.is_dir():
        raise UsageError(f"{option} {out} is a folder", hint="give a file name")
    if (out.exists() or out.is_symlink()) and not force:
        raise UsageError(
            f"{option} {out} already exists", hint="give another file name, or add --force"
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False
