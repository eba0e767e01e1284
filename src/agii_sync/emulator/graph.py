"""The Microsoft Graph v1.0 requests agii-sync sends, served at ``{base}/v1.0``.

Shapes follow the Microsoft Graph reference (docs/emulator.md cites each page): site by path,
a site's drives, driveItem by path or id, ``createUploadSession`` with ``if-match``, PUT and
DELETE on the upload URL, folder creation under ``children``, driveItem permissions, item
deletion, Microsoft 365 group members and owners. Error bodies are Graph's
``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from .api import Operation, Reply
from .store import SiteStore, StoreError, etag_matches, now_iso
from .tenant import Tenant

if TYPE_CHECKING:
    from .server import Emulator

GRAPH_JSON = "application/json"
FRAGMENT_UNIT = 320 * 1024  # every fragment but the last: a multiple of 320 KiB
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LINK_SCOPES = {"anonymous": "anonymous", "organization": "organization", "specific": "users"}
GRAPH_CODES = {
    400: "invalidRequest",
    401: "InvalidAuthenticationToken",
    403: "accessDenied",
    404: "itemNotFound",
    409: "nameAlreadyExists",
    412: "resourceModified",
    416: "invalidRange",
    423: "notAllowed",
}

SITE_BY_PATH = re.compile(r"^sites/(?P<host>[^/:]+):(?P<path>/[^:]*):?$")
DRIVES = re.compile(r"^sites/(?P<site>[^/]+)/drives$")
BY_ROOT = re.compile(r"^drives/(?P<drive>[^/]+)/root(?::(?P<path>/[^:]*))?:?(?P<action>/\w+)?$")
BY_ID = re.compile(
    r"^drives/(?P<drive>[^/]+)/items/(?P<item>[^/:]+)(?::(?P<path>/[^:]*):)?(?P<action>/\w+)?$"
)
GROUP = re.compile(r"^groups/(?P<group>[^/]+)/(?P<relation>members|owners)$")


class GraphError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or GRAPH_CODES.get(status, "generalException")
        self.message = message


def graph_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data).encode(), GRAPH_JSON)


def graph_error(status: int, code: str, message: str) -> Reply:
    return graph_reply({"error": {"code": code, "message": message}}, status)


@dataclass
class UploadSession:
    site: str
    rel: str
    create: bool
    defer: bool = False
    if_match: str | None = None  # held until the commit (unless --quirk if-match-at-creation-only)
    data: bytearray = field(default_factory=bytearray)
    total: int | None = None


@dataclass
class Located:
    store: SiteStore
    library: str
    rel: str  # path inside the site ("" never: the library root is ``library``)


class GraphApi:
    def __init__(self, emulator: Emulator, tenant: Tenant) -> None:
        self.emulator = emulator
        self.tenant = tenant
        self._sessions: dict[str, UploadSession] = {}
        self._lock = threading.Lock()

    # --- routing -----------------------------------------------------------------------------

    def operation(
        self, method: str, raw: str, headers: Mapping[str, str], body: bytes
    ) -> Operation:
        if site := SITE_BY_PATH.match(raw):
            path = site["path"]
            return Operation("graph_site", self._get(method, lambda: self._site(path)))
        if drives := DRIVES.match(raw):
            site_id_ = drives["site"]
            return Operation("graph_drives", self._get(method, lambda: self._drives(site_id_)))
        if group := GROUP.match(raw):
            group_id, relation = group["group"], group["relation"]
            run = lambda: self._group(group_id, relation)  # noqa: E731
            return Operation("graph_group_members", self._get(method, run))
        if m := BY_ROOT.match(raw) or BY_ID.match(raw):
            return self._item_operation(method, m, headers, body)
        raise GraphError(400, f"Not supported by the emulator: {method} /v1.0/{raw}")

    def _get(self, method: str, run: Callable[[], Reply]) -> Callable[[], Reply]:
        if method != "GET":
            raise GraphError(405, "Method not allowed.", "notSupported")
        return run

    def _item_operation(
        self, method: str, m: re.Match[str], headers: Mapping[str, str], body: bytes
    ) -> Operation:
        action = (m["action"] or "").lstrip("/").lower()

        def locate() -> Located:
            return self._locate(m["drive"], m.groupdict().get("item"), m["path"])

        if action == "" and method == "GET":
            return Operation("graph_item", lambda: self._item_reply(locate()))
        if action == "" and method == "DELETE":
            return Operation("graph_delete", lambda: self._delete(locate()))
        if action == "content" and method == "GET":
            return Operation("graph_content", lambda: self._content(locate()))
        if action == "createuploadsession" and method == "POST":
            run = lambda: self._create_session(m, headers, body)  # noqa: E731
            return Operation("upload_session", run)
        if action == "children" and method == "POST":
            return Operation("graph_children", lambda: self._add_child(locate(), body))
        if action == "permissions" and method == "GET":
            return Operation("graph_permissions", lambda: self._permissions(locate()))
        if action == "versions" and method == "GET":
            return Operation("graph_versions", lambda: self._versions(locate()))
        raise GraphError(400, f"Not supported by the emulator: {method} {action}")

    # --- sites and drives --------------------------------------------------------------------

    def _site(self, path: str) -> Reply:
        parts = [p for p in unquote(path).split("/") if p]
        if len(parts) != 2 or parts[0].lower() != "sites":
            raise GraphError(404, "Requested site could not be found")
        store = self._store(parts[1])
        return graph_reply(
            {
                "id": site_id(self.emulator.host, store.name),
                "name": store.name,
                "displayName": store.name,
                "webUrl": self._site_url(store),
                "createdDateTime": now_iso(),
            }
        )

    def _drives(self, site: str) -> Reply:
        store = self._store_by_site_id(unquote(site))
        self._require(store, "read")
        drives = [self._drive(store, library) for library in store.libraries()]
        return graph_reply({"value": drives})

    def _drive(self, store: SiteStore, library: str) -> dict[str, Any]:
        return {
            "id": drive_id(store.name, library),
            "name": "Documenten" if library == "Gedeelde documenten" else library,
            "driveType": "documentLibrary",
            "webUrl": f"{self._site_url(store)}/{quote(library)}",
        }

    # --- items -------------------------------------------------------------------------------

    def _locate(self, drive: str, item: str | None, path: str | None) -> Located:
        store, library = self._drive_of(drive)
        rel = library
        if item is not None and item.lower() != "root":
            rel = self._rel_of_id(store, unquote(item))
            if rel != library and not rel.startswith(f"{library}/"):
                raise GraphError(404, "The resource could not be found.")
        if path:
            inner = [unquote(p) for p in path.split("/") if p]
            if any(p in (".", "..") for p in inner):
                raise GraphError(400, "Invalid path.")
            rel = "/".join([rel, *inner])
        return Located(store, library, rel)

    def _item_reply(self, where: Located) -> Reply:
        self._require(where.store, "read")
        return graph_reply(self._item_json(where))

    def _item_json(self, where: Located, *, with_tags: bool = True) -> dict[str, Any]:
        store, rel = where.store, where.rel
        path = store.disk(rel)
        drive = drive_id(store.name, where.library)
        parent_rel = str(PurePosixPath(rel).parent)
        item: dict[str, Any] = {
            "name": PurePosixPath(rel).name,
            "webUrl": f"{self._site_url(store)}/{quote(rel)}",
            "parentReference": {
                "driveType": "documentLibrary",
                "driveId": drive,
                "id": store.folder_id(parent_rel) if rel != where.library else None,
                "path": f"/drives/{drive}/root:/{quote(_inside(parent_rel, where.library))}",
            },
        }
        if path.is_dir():
            folder_id = store.folder_id(rel)
            item.update(
                id=folder_id,
                eTag=f'"{{{folder_id.upper()}}},1"',
                cTag=f'"c:{{{folder_id.upper()}}},0"',
                folder={"childCount": store.item_count(rel)},
                size=0,
            )
            return item
        if not path.is_file():
            raise GraphError(404, "The resource could not be found.")
        info = store.file_info(rel)
        meta = info.meta
        item.update(
            id=meta.unique_id,
            size=meta.size,
            createdDateTime=meta.created,
            lastModifiedDateTime=meta.modified,
            file={
                "mimeType": XLSX if rel.lower().endswith(".xlsx") else "application/octet-stream"
            },
            publication={
                "level": "checkout" if self.tenant.checked_out(store, rel) else "published",
                "versionId": f"{meta.version}.0",
            },
        )
        item["@microsoft.graph.downloadUrl"] = (
            f"{self.emulator.base_url}/_download/{quote(store.name)}/{meta.unique_id}"
        )
        if with_tags:
            item.update(eTag=meta.etag, cTag=meta.ctag)
        return item

    def _content(self, where: Located) -> Reply:
        self._require(where.store, "read")
        content, _ = where.store.read(where.rel)
        return Reply(200, content, "application/octet-stream")

    def _delete(self, where: Located) -> Reply:
        self._require(where.store, "write")
        if where.rel == where.library:
            raise GraphError(403, "Cannot delete the root of a drive.", "notAllowed")
        where.store.delete(where.rel)
        return Reply(204)

    def _add_child(self, parent: Located, body: bytes) -> Reply:
        self._require(parent.store, "write")
        data = _json_body(body)
        name = str(data.get("name") or "")
        if not name or "/" in name or name in (".", ".."):
            raise GraphError(400, "Invalid name.")
        if "folder" not in data:
            raise GraphError(400, "Only folders can be created here.")
        store, rel = parent.store, f"{parent.rel}/{name}"
        with store.lock:
            if not store.folder_exists(parent.rel):
                raise GraphError(404, "The resource could not be found.")
            if store.disk(rel).exists():
                raise GraphError(409, "An item with the same name already exists under the parent")
            store.add_folder(rel)
        return graph_reply(self._item_json(Located(store, parent.library, rel)), 201)

    def _versions(self, where: Located) -> Reply:
        self._require(where.store, "read")
        info = where.store.file_info(where.rel)
        current = {"id": f"{info.meta.version}.0", "lastModifiedDateTime": info.meta.modified}
        older = [
            {"id": v.label, "lastModifiedDateTime": v.created, "size": v.size}
            for v in reversed(where.store.versions(where.rel))
        ]
        return graph_reply({"value": [current, *older]})

    # --- upload sessions ---------------------------------------------------------------------

    def _create_session(self, m: re.Match[str], headers: Mapping[str, str], body: bytes) -> Reply:
        request = _json_body(body)
        data = request.get("item") or {}
        behaviour = str(data.get("@microsoft.graph.conflictBehavior", "fail")).lower()
        item, path = m.groupdict().get("item"), m["path"]
        if path:  # a new file: items/{parent}:/{name}:/createUploadSession
            parent = self._locate(m["drive"], item, None)
            names = [unquote(p) for p in path.split("/") if p]
            if len(names) != 1 or names[0] in (".", ".."):
                raise GraphError(400, "Invalid file name.")
            store, rel = parent.store, f"{parent.rel}/{names[0]}"
            self._require(store, "write")
            if not store.folder_exists(parent.rel):
                raise GraphError(404, "The resource could not be found.")
            create = True
        else:  # replace: items/{id}/createUploadSession
            where = self._locate(m["drive"], item, None)
            store, rel, create = where.store, where.rel, False
            self._require(store, "write")
            if not store.exists(rel):
                raise GraphError(404, "The resource could not be found.")
        self._check_writable(store, rel, headers)
        if store.exists(rel) and create and behaviour == "fail":
            raise GraphError(409, "The specified item name already exists.")
        session = str(uuid.uuid4())
        with self._lock:
            self._sessions[session] = UploadSession(
                store.name,
                rel,
                create,
                defer=bool(request.get("deferCommit")),
                if_match=headers.get("if-match"),
            )
        return graph_reply(
            {
                "uploadUrl": f"{self.emulator.base_url}/_upload/{session}",
                "expirationDateTime": now_iso(),
                "nextExpectedRanges": ["0-"],
            }
        )

    def _check_writable(self, store: SiteStore, rel: str, headers: Mapping[str, str]) -> None:
        if self.tenant.locked(store, rel) or self.tenant.checked_out(store, rel):
            raise GraphError(423, "The resource you are attempting to access is locked")
        if_match = headers.get("if-match")
        if if_match is None or self.tenant.has("ignore-if-match"):
            return
        meta = store.file_info(rel).meta if store.exists(rel) else None
        if meta is None or not etag_matches(if_match, meta.etag, meta.ctag):
            raise GraphError(412, "ETag does not match current item's value")

    def upload(
        self, method: str, session_id: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        """PUT (a byte range) or DELETE (cancel) on ``{base}/_upload/{session}``."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise GraphError(404, "The upload session was not found.")
        if headers.get("Authorization"):
            # Microsoft: do not send the bearer token to the upload URL (it may answer 401).
            raise GraphError(401, "Do not send Authorization to the upload URL.", "unauthenticated")
        if method == "DELETE":
            with self._lock:
                self._sessions.pop(session_id, None)
            return Reply(204)
        if method == "POST":
            with self._lock:
                complete = session.defer and session.total == len(session.data)
                if complete:
                    self._sessions.pop(session_id, None)
            if not complete or body:
                raise GraphError(400, "Nothing to commit: the upload is not complete.")
            return self._commit(session)
        if method != "PUT":
            raise GraphError(405, "Method not allowed.", "notSupported")
        start, end, total = _content_range(headers.get("Content-Range", ""), len(body))
        if end + 1 < total and len(body) % FRAGMENT_UNIT:
            raise GraphError(400, "A fragment must be a multiple of 320 KiB.", "invalidRange")
        with self._lock:
            if start != len(session.data) or (session.total not in (None, total)):
                raise GraphError(416, "The fragment does not follow the bytes received.")
            session.data.extend(body)
            session.total = total
            if len(session.data) < total:
                return graph_reply({"nextExpectedRanges": [f"{len(session.data)}-"]}, 202)
            if session.defer:  # stays until the explicit commit (POST)
                return graph_reply({"nextExpectedRanges": []}, 202)
            self._sessions.pop(session_id, None)
        return self._commit(session)

    def _commit(self, session: UploadSession) -> Reply:
        store = self._store(session.site)
        library = session.rel.split("/", 1)[0]
        with store.lock:
            if self.tenant.locked(store, session.rel) or self.tenant.checked_out(
                store, session.rel
            ):
                raise GraphError(423, "The resource you are attempting to access is locked")
            if session.create and store.exists(session.rel):
                raise GraphError(
                    409, "Another file exists with the same name as the uploaded session."
                )
            if session.if_match is not None and not self._held_to_creation_only():
                meta = store.file_info(session.rel).meta if store.exists(session.rel) else None
                if meta is None or not etag_matches(session.if_match, meta.etag, meta.ctag):
                    raise GraphError(412, "ETag does not match current item's value")
            store.write(session.rel, bytes(session.data), create=session.create)
            where = Located(store, library, session.rel)
            item = self._item_json(where, with_tags=not self.tenant.has("no-etag-after-write"))
        return graph_reply(item, 201 if session.create else 200)

    def _held_to_creation_only(self) -> bool:
        return self.tenant.has("ignore-if-match") or self.tenant.has("if-match-at-creation-only")

    # --- permissions and groups --------------------------------------------------------------

    def _permissions(self, where: Located) -> Reply:
        store = where.store
        if not self.tenant.allows(store, "permissions"):
            raise GraphError(403, "Access denied")
        result = []
        for n, link in enumerate(store.access().get("sharing_links", [])):
            on = link.get("on")  # absent: on the library itself
            here = (on is None and where.rel == where.library) or (
                on is not None and on.strip("/").casefold() == where.rel.casefold()
            )
            if here:
                result.append(_permission(n, link))
        return graph_reply({"value": result})

    def _group(self, group: str, relation: str) -> Reply:
        for store in self._all_stores():
            for principal in _principals(store.access()):
                if principal.get("type") == "m365_group" and str(principal.get("id")) == group:
                    if not self.tenant.allows(store, "read"):
                        raise GraphError(403, "Insufficient privileges to complete the operation.")
                    people = principal.get(relation) or principal.get("members", [])
                    return graph_reply({"value": [_directory_object(p) for p in people]})
        raise GraphError(404, f"Resource '{group}' does not exist.", "Request_ResourceNotFound")

    # --- helpers -----------------------------------------------------------------------------

    def _require(self, store: SiteStore, need: str) -> None:
        if not self.tenant.allows(store, need):
            raise GraphError(403, "Access denied")

    def _store(self, name: str) -> SiteStore:
        try:
            return self.emulator.site(name)
        except StoreError:
            raise GraphError(404, "Requested site could not be found") from None

    def _store_by_site_id(self, site: str) -> SiteStore:
        parts = site.split(",")
        if len(parts) == 3:
            for store in self._all_stores():
                if site_id(self.emulator.host, store.name).split(",")[1] == parts[1]:
                    return store
        raise GraphError(404, "Requested site could not be found")

    def _all_stores(self) -> list[SiteStore]:
        root = self.emulator.root
        names = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return [self._store(name) for name in sorted(names)]

    def _drive_of(self, drive: str) -> tuple[SiteStore, str]:
        try:
            name, library = base64.urlsafe_b64decode(drive[2:] + "==").decode().split("|", 1)
        except (ValueError, UnicodeDecodeError):
            raise GraphError(404, "The drive could not be found.") from None
        store = self._store(name)
        if library not in store.libraries():
            raise GraphError(404, "The drive could not be found.")
        return store, library

    def _rel_of_id(self, store: SiteStore, item: str) -> str:
        try:
            return store.file_by_id(item)
        except StoreError:
            pass
        try:
            return store.folder_by_id(item)
        except StoreError:
            raise GraphError(404, "The resource could not be found.") from None

    def _site_url(self, store: SiteStore) -> str:
        return f"{self.emulator.base_url}{store.server_relative_root}"


def site_id(host: str, name: str) -> str:
    collection = uuid.uuid5(uuid.NAMESPACE_URL, f"site:{name.lower()}")
    web = uuid.uuid5(uuid.NAMESPACE_URL, f"web:{name.lower()}")
    return f"{host},{collection},{web}"


def drive_id(site: str, library: str) -> str:
    return "b!" + base64.urlsafe_b64encode(f"{site}|{library}".encode()).decode().rstrip("=")


def _inside(rel: str, library: str) -> str:
    return rel[len(library) :].lstrip("/") if rel.startswith(library) else rel


def _json_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise GraphError(400, "The request body is not JSON.") from None
    return data if isinstance(data, dict) else {}


def _content_range(header: str, length: int) -> tuple[int, int, int]:
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", header.strip())
    if match is None:
        if length == 0 and re.fullmatch(r"bytes \*/0|bytes 0--1/0", header.strip()):
            return 0, -1, 0
        raise GraphError(400, "Content-Range is missing or not valid.", "invalidRange")
    start, end, total = (int(g) for g in match.groups())
    if end - start + 1 != length or end >= total:
        raise GraphError(400, "Content-Range does not match the body.", "invalidRange")
    return start, end, total


def _permission(n: int, link: dict[str, Any]) -> dict[str, Any]:
    kind = str(link.get("kind", "specific")).lower()
    roles = [str(r).lower() for r in link.get("roles", ["read"])] or ["read"]
    return {
        "id": f"link-{n}",
        "roles": ["write" if r in ("edit", "write", "contribute") else "read" for r in roles],
        "hasPassword": False,
        "link": {
            "scope": LINK_SCOPES.get(kind, kind),
            "type": "edit" if "edit" in roles or "write" in roles else "view",
            "preventsDownload": False,
        },
    }


def _principals(access: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(p: dict[str, Any]) -> None:
        found.append(p)
        for member in p.get("members", []):
            walk(member)

    for assignment in access.get("role_assignments", []):
        walk(assignment["principal"])
    for unique in access.get("unique_permissions", []):
        for assignment in unique.get("role_assignments", []):
            walk(assignment["principal"])
    return found


def _directory_object(p: dict[str, Any]) -> dict[str, Any]:
    login = str(p.get("login") or "")
    upn = login.rsplit("|", 1)[-1] if "@" in login else p.get("email")
    kind = "#microsoft.graph.user" if p.get("type", "user") == "user" else "#microsoft.graph.group"
    return {
        "@odata.type": kind,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, login or str(p.get("title")))),
        "displayName": p.get("title", ""),
        "userPrincipalName": upn,
        "mail": p.get("email"),
    }
