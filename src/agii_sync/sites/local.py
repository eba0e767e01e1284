"""A ``file:`` site: a local folder that plays the role of the SharePoint site.

The ETag is a hash of the file's bytes. A write takes a lock (per workbook, on this machine),
checks the hash is still the one read, writes a temporary file in the same folder and renames
it over the workbook, so a reader sees the old or the new file, never half of one. No copies
are kept: a temporary file left by a writer that was killed before its rename (it may hold
personal data) is removed by the next write, and by ``delete_old_versions`` (purge), under
the same lock.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import ConfigError, EtagConflict, TemporaryFailure, WorkbookLocked
from ..scratch import SYSTEM_TEMP
from .access_file import read_access_file
from .base import AccessSnapshot, Snapshot

LOCK_WAIT_SECONDS = 10
TEMP_SUFFIX = ".tmp"


def content_etag(content: bytes) -> str:
    return '"sha256:' + hashlib.sha256(content).hexdigest()[:32] + '"'


class LocalFolderSite:
    """The site is a folder that must exist (a typo in ``site`` must not create a new one and
    fill it with personal data); the workbook must lie inside it, symbolic links included."""

    def __init__(self, folder: Path, workbook_path: str) -> None:
        self.folder = folder
        self.path = folder / workbook_path
        self.workbook_path = workbook_path
        self.url = f"file:{folder}"
        self._lock = FileLock(str(_lock_path(self.path)), is_singleton=False)

    def _check_inside(self) -> None:
        if not self.folder.is_dir():
            raise ConfigError(
                f"the site folder {self.folder} does not exist",
                hint="fix the municipality's `site` in the config, or create the folder; "
                "agii-sync never creates a site folder",
            )
        root = os.path.realpath(self.folder)
        target = os.path.realpath(self.path)
        if os.path.commonpath([root, target]) != root:
            raise ConfigError(
                f"the workbook path in {self.url} leads outside the site folder "
                "(through a symbolic link)",
                hint="remove the link; a site's workbook must lie inside its own folder",
            )

    def read(self) -> Snapshot:
        self._check_inside()
        self._tidy()
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            return Snapshot(None, None)
        except OSError as exc:
            raise TemporaryFailure(
                f"cannot read the workbook in {self.url}: {exc.strerror}"
            ) from None
        return Snapshot(content, content_etag(content))

    def write(self, content: bytes, if_match: str | None) -> str:
        self._check_inside()
        self._refuse_if_open_in_office()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_inside()  # a link planted while the folders were made
        try:
            with self._lock.acquire(timeout=LOCK_WAIT_SECONDS):
                self._remove_stale_temp_files()
                self._check_unchanged(if_match)
                self._replace(content)
        except Timeout:
            raise TemporaryFailure(f"{self.url}: another writer holds the workbook lock") from None
        return content_etag(content)

    def _refuse_if_open_in_office(self) -> None:
        # Excel and LibreOffice leave an owner file beside a workbook they have open.
        for owner in (f"~${self.path.name}", f".~lock.{self.path.name}#"):
            if (self.path.parent / owner).exists():
                raise WorkbookLocked(
                    f"the workbook in {self.url} is open in an office program",
                    hint="close it there and run again",
                )

    def _check_unchanged(self, if_match: str | None) -> None:
        current = self.read().etag
        if current != if_match:
            raise EtagConflict(f"the workbook in {self.url} changed since it was read")

    def _temp_prefix(self) -> str:
        return f".{self.path.name}."

    def _tidy(self) -> None:
        """A killed writer's temporary copy holds personal data: every run that reads the site
        removes it at once, unless a writer is busy right now (then its next write does)."""
        if not self.path.parent.is_dir() or not self._stale_temp_files():
            return
        with contextlib.suppress(Timeout), self._lock.acquire(timeout=0):
            self._remove_stale_temp_files()

    def _stale_temp_files(self) -> list[Path]:
        return list(self.path.parent.glob(f"{glob.escape(self._temp_prefix())}*{TEMP_SUFFIX}"))

    def _remove_stale_temp_files(self) -> int:
        """Remove the temporary files of writers that died before their rename. Only the
        holder of the lock writes one, so under the lock every one found is stale."""
        removed = 0
        for stale in self._stale_temp_files():
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed += 1
        return removed

    def _replace(self, content: bytes) -> None:
        fd, tmp = tempfile.mkstemp(
            prefix=self._temp_prefix(), suffix=TEMP_SUFFIX, dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_folder(self.path.parent)

    def delete_old_versions(self) -> int:
        """A folder keeps no versions; the only older copies can be temporary files of a
        writer that was killed mid-write: those are removed (and counted)."""
        if not self.path.parent.is_dir():
            return 0
        try:
            with self._lock.acquire(timeout=LOCK_WAIT_SECONDS):
                return self._remove_stale_temp_files()
        except Timeout:
            raise TemporaryFailure(f"{self.url}: another writer holds the workbook lock") from None

    def read_access(self) -> AccessSnapshot:
        return read_access_file(self.folder / "_access.json", self.workbook_path)


def _lock_path(workbook: Path) -> Path:
    """The write lock lives outside the site folder, which may be synced (OneDrive): it
    serialises writers on this machine; across machines the content-hash check still holds."""
    folder = SYSTEM_TEMP / "agii-sync-locks"  # shared by all processes, unlike the scratch
    folder.mkdir(exist_ok=True)
    digest = hashlib.sha256(str(workbook.resolve()).encode()).hexdigest()[:32]
    return folder / f"{digest}.lock"


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
