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
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from ..atomic import TEMP_SUFFIX, write_atomically
from ..errors import ConfigError, EtagConflict, TemporaryFailure, WorkbookLocked
from ..scratch import lock_folder
from .access_file import read_access_file
from .base import AccessSnapshot, Snapshot

LOCK_WAIT_SECONDS = 10
LOCK_POLL_SECONDS = 1.0


def content_etag(content: bytes) -> str:
    return '"sha256:' + hashlib.sha256(content).hexdigest()[:32] + '"'


class LocalFolderSite:
    """The site is a folder that must exist (a typo in ``site`` must not create a new one and
    fill it with personal data); the workbook must lie inside it, symbolic links included."""

    def __init__(
        self, folder: Path, workbook_path: str, *, lock_wait_seconds: float = LOCK_WAIT_SECONDS
    ) -> None:
        self.folder = folder
        self.path = folder / workbook_path
        self.workbook_path = workbook_path
        self.url = f"file:{folder}"
        self.lock_wait_seconds = lock_wait_seconds

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
        """A workbook that another program holds (an office program, a sync client, a virus
        scanner) is tried again until ``lock_wait_seconds`` have passed, then ``WorkbookLocked``."""
        self._check_inside()
        deadline = time.monotonic() + self.lock_wait_seconds
        while True:
            try:
                return self._write_once(content, if_match)
            except WorkbookLocked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                time.sleep(min(LOCK_POLL_SECONDS, remaining))

    def _write_once(self, content: bytes, if_match: str | None) -> str:
        self._refuse_if_open_in_office()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_inside()  # a link planted while the folders were made
        with self._locked(timeout=LOCK_WAIT_SECONDS):
            self._remove_stale_temp_files()
            self._check_unchanged(if_match)
            self._replace(content)
        return content_etag(content)

    @contextlib.contextmanager
    def _locked(self, *, timeout: float) -> Iterator[None]:
        """This machine's write lock of the workbook; ``TemporaryFailure`` when another writer
        keeps it past ``timeout`` or it cannot be taken."""
        path = _lock_path(self.path)
        if path.is_symlink():  # the lock folder is this user's own: a link there was planted
            path.unlink(missing_ok=True)
        lock = FileLock(str(path), is_singleton=False)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise TemporaryFailure(f"{self.url}: another writer holds the workbook lock") from None
        except OSError as exc:
            raise TemporaryFailure(
                f"{self.url}: cannot take the workbook lock {path} ({type(exc).__name__})"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def _refuse_if_open_in_office(self) -> None:
        for owner in office_owner_files(self.path.name):
            if (self.path.parent / owner).exists():
                raise self._locked_error("is open in an office program")

    def _locked_error(self, why: str) -> WorkbookLocked:
        return WorkbookLocked(
            f"the workbook in {self.url} {why}",
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
        with contextlib.suppress(TemporaryFailure), self._locked(timeout=0):
            self._remove_stale_temp_files()

    def _stale_temp_files(self) -> list[Path]:
        return list(self.path.parent.glob(f"{glob.escape(self._temp_prefix())}*{TEMP_SUFFIX}"))

    def _remove_stale_temp_files(self) -> int:
        """Remove the temporary files of writers that died before their rename. Only the
        holder of the lock writes one, so under the lock every one found is stale."""
        removed = 0
        for stale in self._stale_temp_files():
            with contextlib.suppress(OSError):  # gone, or held by a scanner: the next run
                stale.unlink()
                removed += 1
        return removed

    def _replace(self, content: bytes) -> None:
        try:
            write_atomically(self.path, content, temp_prefix=self._temp_prefix())
        except PermissionError:  # Windows: another program holds it open
            raise self._locked_error("is in use by another program") from None

    def delete_old_versions(self) -> int:
        """A folder keeps no versions; the only older copies can be temporary files of a
        writer that was killed mid-write: those are removed (and counted)."""
        if not self.path.parent.is_dir():
            return 0
        with self._locked(timeout=LOCK_WAIT_SECONDS):
            return self._remove_stale_temp_files()

    def read_access(self) -> AccessSnapshot:
        self._check_inside()  # a missing site folder says so, not that its access file is
        return read_access_file(self.folder / "_access.json", self.workbook_path)


def office_owner_files(name: str) -> list[str]:
    """The files an office program keeps beside a workbook it has open. Excel and Word write
    an owner file ``~$`` plus the name; from a name of 8 or more characters before the
    extension they drop the first two, from one of 7 the first: ``inburgeraars.xlsx`` →
    ``~$burgeraars.xlsx``, ``bestand.xlsx`` → ``~$estand.xlsx``, ``lijst.xlsx`` →
    ``~$lijst.xlsx`` (Microsoft KB 211632, "Description of how Word creates temporary
    files"). Office for Mac keeps the whole name. LibreOffice writes ``.~lock.<name>#``."""
    stem = name.rsplit(".", 1)[0]
    dropped = max(0, min(2, len(stem) - 6))
    return sorted({f"~${name[dropped:]}", f"~${name}", f".~lock.{name}#"})


def _lock_path(workbook: Path) -> Path:
    """The write lock lives outside the site folder, which may be synced (OneDrive): it
    serialises this user's writers on this machine; across machines and users the content-hash
    check still holds. The lock folder is private to this user (``scratch.lock_folder``)."""
    digest = hashlib.sha256(str(workbook.resolve()).encode()).hexdigest()[:32]
    return lock_folder() / f"{digest}.lock"
