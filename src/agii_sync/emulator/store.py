"""The files of the emulated sites, with SharePoint's bookkeeping beside them.

A site ``NAME`` lives in ``ROOT/NAME/``; a file sits at its path inside the site. ETags,
UniqueIds and old versions live in ``ROOT/NAME/.emulator/`` (``meta.json`` and
``versions/<uid>/<n>.bin``), so a restarted emulator keeps them. A file changed on disk behind
the emulator's back gets a new ETag the next time it is looked at.
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypedDict

from ..atomic import write_atomically

META_DIR = ".emulator"
ACCESS_FILE = "_access.json"
HIDDEN = {META_DIR, ACCESS_FILE}


class _Meta(TypedDict):
    files: dict[str, FileMeta]  # by path inside the site
    folders: dict[str, str]  # path inside the site → unique id


class StoreError(Exception):
    """A request the store refuses; ``status`` and ``code`` become the SharePoint error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(what: str) -> StoreError:
    return StoreError(404, "-2147024894, System.IO.FileNotFoundException", f"{what} not found.")


def bad_request(message: str) -> StoreError:
    return StoreError(400, "-2147024809, System.ArgumentException", message)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Version:
    number: int
    created: str
    size: int

    @property
    def label(self) -> str:
        return f"{self.number}.0"

    @property
    def id(self) -> int:
        return self.number * 512


@dataclass
class FileMeta:
    unique_id: str
    version: int
    created: str
    modified: str
    size: int
    mtime_ns: int
    history: list[Version] = field(default_factory=list)

    @property
    def etag(self) -> str:
        """SharePoint's file ETag, which Graph's driveItem ``eTag`` equals: ``"{GUID},N"``."""
        return f'"{{{self.unique_id.upper()}}},{self.version}"'

    @property
    def ctag(self) -> str:
        """Graph's content tag of the file: ``"c:{GUID},N"``."""
        return f'"c:{{{self.unique_id.upper()}}},{self.version}"'

    def copy(self) -> FileMeta:
        return replace(self, history=list(self.history))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileMeta:
        history = [Version(**v) for v in data.pop("history", [])]
        return cls(**data, history=history)


@dataclass(frozen=True)
class FileInfo:
    """What a file-properties answer needs, taken under the site lock."""

    rel: str
    meta: FileMeta


@dataclass
class UploadSession:
    rel: str
    data: bytearray


def etag_matches(if_match: str | None, *tags: str) -> bool:
    """Strict, as SharePoint and Graph compare: the header is ``*`` or exactly one of ``tags``
    (the file's ``"{GUID},N"`` eTag, or Graph's ``"c:{GUID},N"`` cTag). A SharePoint ETag holds
    a comma itself, so the header is compared whole; another spelling (the list item's
    ``"guid,N"``, lower case, no quotes, ``W/``) does not match."""
    if if_match is None:
        return True
    header = if_match.strip()
    return header == "*" or header in tags


def site_folder(root: Path, name: str) -> Path:
    """``ROOT/NAME``, refusing any name that could leave ``root`` (``..``, separators, NUL,
    a symlink pointing elsewhere)."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0:") or name.startswith("."):
        raise not_found("Site")
    folder = root / name
    base = root.resolve()
    if folder.exists() and not folder.resolve().is_relative_to(base):
        raise not_found("Site")
    return folder


class SiteStore:
    """One site's folder. Every method takes the site lock, so callers see whole writes only.

    Its document libraries are its top-level folders; ``libraries`` are created when the site
    is first used (a new SharePoint site comes with its default library)."""

    def __init__(self, root: Path, name: str, libraries: tuple[str, ...] = ()) -> None:
        self.name = name
        self.root = root.resolve()
        self.folder = site_folder(root, name)
        self.meta_dir = self.folder / META_DIR
        self.lock = threading.RLock()
        self._uploads: dict[str, UploadSession] = {}
        self.folder.mkdir(parents=True, exist_ok=True)
        self.meta_dir.mkdir(exist_ok=True)
        for library in libraries:
            (self.folder / library).mkdir(exist_ok=True)
        self._meta = self._load_meta()

    def libraries(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.is_dir() and p.name not in HIDDEN)

    @property
    def server_relative_root(self) -> str:
        return f"/sites/{self.name}"

    # --- paths -------------------------------------------------------------------------------

    def relative(self, url: str) -> str:
        """A server-relative (``/sites/NAME/a/b``), absolute or site-relative URL → ``a/b``."""
        path = url.strip()
        if "://" in path:
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        prefix = self.server_relative_root.lower()
        if path.lower() == prefix:
            return ""
        if path.lower().startswith(prefix + "/"):
            path = path[len(prefix) + 1 :]
        elif path.startswith("/"):
            raise bad_request(f"{url} is not inside site {self.server_relative_root}")
        parts = [p for p in PurePosixPath(path).parts if p not in ("", "/", ".")]
        if any(p == ".." for p in parts) or (parts and parts[0] in HIDDEN):
            raise bad_request(f"{url} is not a valid path")
        return "/".join(parts)

    def server_relative(self, rel: str) -> str:
        return f"{self.server_relative_root}/{rel}" if rel else self.server_relative_root

    def disk(self, rel: str) -> Path:
        """The path of ``rel`` on disk, never outside the site's folder (symlinks included)."""
        path = self.folder / rel if rel else self.folder
        if not path.resolve().is_relative_to(self.folder.resolve()):
            raise bad_request("The path is not inside the site.")
        return path

    # --- files -------------------------------------------------------------------------------

    def file_info(self, rel: str) -> FileInfo:
        with self.lock:
            return FileInfo(rel, self._current(rel).copy())

    def file_by_id(self, unique_id: str) -> str:
        wanted = unique_id.strip("{}").lower()
        with self.lock:
            for rel, meta in self._meta["files"].items():
                if meta.unique_id == wanted and self.disk(rel).is_file():
                    return rel
        raise not_found("File")

    def read(self, rel: str) -> tuple[bytes, FileMeta]:
        with self.lock:
            meta = self._current(rel)
            return self.disk(rel).read_bytes(), meta.copy()

    def exists(self, rel: str) -> bool:
        return bool(rel) and self.disk(rel).is_file()

    def write(self, rel: str, content: bytes, *, create: bool) -> FileMeta:
        """Replace (keeping the old content as a version) or, with ``create``, add the file."""
        with self.lock:
            if self.exists(rel):
                meta = self._current(rel)
                self._keep_version(meta, rel)
                meta.version += 1
            elif create:
                if not self.disk(rel).parent.is_dir():
                    raise not_found("Folder")
                meta = self._new_meta()
            else:
                raise not_found("File")
            self._atomic_write(self.disk(rel), content)
            self._stamp(meta, rel)
            self._meta["files"][rel] = meta
            self._save_meta()
            return meta.copy()

    def delete(self, rel: str) -> None:
        with self.lock:
            path = self.disk(rel)
            if path.is_dir():
                shutil.rmtree(path)
            elif path.is_file():
                meta = self._meta["files"].pop(rel, None)
                path.unlink()
                if meta is not None:
                    shutil.rmtree(self.meta_dir / "versions" / meta.unique_id, ignore_errors=True)
            else:
                raise not_found("Item")
            self._save_meta()

    def versions(self, rel: str) -> list[Version]:
        with self.lock:
            return list(self._current(rel).history)

    def delete_versions(self, rel: str) -> int:
        with self.lock:
            meta = self._current(rel)
            count = len(meta.history)
            meta.history.clear()
            shutil.rmtree(self.meta_dir / "versions" / meta.unique_id, ignore_errors=True)
            self._save_meta()
            return count

    # --- chunked uploads ---------------------------------------------------------------------

    def start_upload(self, upload_id: str, rel: str, chunk: bytes) -> int:
        with self.lock:
            self._current(rel)
            self._uploads[upload_id.lower()] = UploadSession(rel, bytearray(chunk))
            return len(chunk)

    def continue_upload(self, upload_id: str, rel: str, offset: int, chunk: bytes) -> int:
        with self.lock:
            session = self._session(upload_id, rel, offset)
            session.data.extend(chunk)
            return len(session.data)

    def finish_upload(self, upload_id: str, rel: str, offset: int, chunk: bytes) -> bytes:
        with self.lock:
            session = self._session(upload_id, rel, offset)
            session.data.extend(chunk)
            del self._uploads[upload_id.lower()]
            return bytes(session.data)

    def cancel_upload(self, upload_id: str) -> None:
        with self.lock:
            self._uploads.pop(upload_id.lower(), None)

    def _session(self, upload_id: str, rel: str, offset: int) -> UploadSession:
        session = self._uploads.get(upload_id.lower())
        if session is None or session.rel != rel:
            raise bad_request("Unknown upload session.")
        if offset != len(session.data):
            raise bad_request("The fileOffset does not match the bytes uploaded so far.")
        return session

    # --- folders -----------------------------------------------------------------------------

    def folder_exists(self, rel: str) -> bool:
        return self.disk(rel).is_dir()

    def add_folder(self, rel: str) -> None:
        if not rel:
            return
        path = self.disk(rel)
        if path.is_file():
            raise StoreError(
                400,
                "-2130575342, Microsoft.SharePoint.SPException",
                "A file with that name exists.",
            )
        path.mkdir(parents=True, exist_ok=True)

    def folder_id(self, rel: str) -> str:
        with self.lock:
            folders = self._meta["folders"]
            if rel not in folders:
                folders[rel] = str(uuid.uuid4())
                self._save_meta()
            return folders[rel]

    def folder_by_id(self, unique_id: str) -> str:
        wanted = unique_id.strip("{}").lower()
        with self.lock:
            for rel, uid in self._meta["folders"].items():
                if uid == wanted and self.folder_exists(rel):
                    return rel
        raise not_found("Folder")

    def item_count(self, rel: str) -> int:
        path = self.disk(rel)
        return sum(1 for p in path.iterdir() if p.name not in HIDDEN) if path.is_dir() else 0

    # --- access ------------------------------------------------------------------------------

    def access(self) -> dict[str, Any]:
        path = self.folder / ACCESS_FILE
        if not path.exists():
            return {"role_assignments": [], "sharing_links": []}
        try:
            access: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return access
        except (OSError, ValueError) as exc:
            raise StoreError(
                500, "-2146233088, System.InvalidOperationException", f"{ACCESS_FILE}: {exc}"
            ) from None

    # --- internals ---------------------------------------------------------------------------

    def _current(self, rel: str) -> FileMeta:
        """The metadata of an existing file, noticing a change made on disk behind our back."""
        path = self.disk(rel)
        if not rel or not path.is_file():
            raise not_found("File")
        meta = self._meta["files"].get(rel)
        stat = path.stat()
        if meta is None:
            meta = self._new_meta()
            self._stamp(meta, rel)
            self._meta["files"][rel] = meta
            self._save_meta()
        elif (meta.mtime_ns, meta.size) != (stat.st_mtime_ns, stat.st_size):
            meta.version += 1
            self._stamp(meta, rel)
            self._save_meta()
        return meta

    def _new_meta(self) -> FileMeta:
        stamp = now_iso()
        return FileMeta(str(uuid.uuid4()), 1, stamp, stamp, 0, 0)

    def _stamp(self, meta: FileMeta, rel: str) -> None:
        stat = self.disk(rel).stat()
        meta.size, meta.mtime_ns, meta.modified = stat.st_size, stat.st_mtime_ns, now_iso()

    def _keep_version(self, meta: FileMeta, rel: str) -> None:
        folder = self.meta_dir / "versions" / meta.unique_id
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.disk(rel), folder / f"{meta.version}.bin")
        meta.history.append(Version(meta.version, meta.modified, meta.size))

    def _atomic_write(self, target: Path, content: bytes) -> None:
        """Whole or not at all; the temporary file lies outside the sites' folders, and a test
        server need not survive a power cut."""
        tmp_dir = self.meta_dir / "tmp"
        tmp_dir.mkdir(exist_ok=True)
        write_atomically(target, content, temp_prefix="", temp_dir=tmp_dir, durable=False)

    def _load_meta(self) -> _Meta:
        path = self.meta_dir / "meta.json"
        if not path.exists():
            return {"files": {}, "folders": {}}
        data = json.loads(path.read_text(encoding="utf-8"))
        files = {rel: FileMeta.from_json(m) for rel, m in data.get("files", {}).items()}
        return {"files": files, "folders": dict(data.get("folders", {}))}

    def _save_meta(self) -> None:
        data = {
            "files": {rel: asdict(m) for rel, m in self._meta["files"].items()},
            "folders": self._meta["folders"],
        }
        self._atomic_write(self.meta_dir / "meta.json", json.dumps(data, indent=1).encode())
