"""The SharePoint REST operations the emulator answers, resolved from a parsed ``_api`` path.

``Api.operation`` turns a request into an ``Operation``: the path kind (for the stats) and a
function that produces the reply. Resolving first and running later lets the server count and
fault-inject a request before it touches any file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from . import shapes
from .odata import Segment
from .store import FileMeta, SiteStore, StoreError, bad_request, etag_matches, not_found
from .tenant import LockRegistry, Tenant

JSON_TYPE = "application/json;odata=verbose;charset=utf-8"
LOCK_CODE = "-2147018894, Microsoft.SharePoint.SPFileLockException"
CHECKOUT_CODE = "-2130575306, Microsoft.SharePoint.SPFileCheckOutException"
PRECONDITION_CODE = "-1, Microsoft.SharePoint.Client.ClientServiceException"
EXISTS_CODE = "-2130575257, Microsoft.SharePoint.SPException"
UNSUPPORTED_CODE = "-1, Microsoft.SharePoint.Client.InvalidClientQueryException"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(data: Any, status: int = 200, etag: str | None = None) -> Reply:
    headers = {"ETag": etag} if etag else {}
    return Reply(status, json.dumps({"d": data}).encode(), JSON_TYPE, headers)


def error_reply(status: int, code: str, message: str) -> Reply:
    return Reply(status, json.dumps(shapes.error_body(code, message)).encode(), JSON_TYPE)


PERMISSION_KINDS = {"role_assignments", "site_users", "site_groups", "group", "group_users"}


@dataclass
class ApiRequest:
    method: str  # the effective method: X-HTTP-Method wins over the HTTP verb
    segments: list[Segment]
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    site_url: str


@dataclass
class Operation:
    kind: str
    run: Callable[[], Reply]


class Unsupported(Exception):
    pass


# Locators are resolved when the operation runs, so a bad path is counted like any request.
Locator = tuple[str, str]  # ("path", server-relative url) or ("id", unique id)
Node = tuple[str, Any]


class Api:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.locks: LockRegistry = tenant.locks

    def operation(self, store: SiteStore, req: ApiRequest) -> Operation:
        if not req.segments:
            raise Unsupported("empty path")
        first = req.segments[0]
        if first.key == "contextinfo" and req.method == "POST":
            return Operation("contextinfo", lambda: json_reply(shapes.context_info(req.site_url)))
        if first.key != "web":
            raise Unsupported(first.name)
        node: Node = ("web", None)
        rest = req.segments[1:]
        for index, segment in enumerate(rest):
            following = self._step(node, segment)
            if following is None:
                if index != len(rest) - 1:
                    raise Unsupported(segment.name)
                return self._action(store, req, node, segment)
            node = following
        return self._get(store, req, node)

    # --- navigation --------------------------------------------------------------------------

    def _step(self, node: Node, seg: Segment) -> Node | None:
        kind, value = node
        key = seg.key
        if kind == "web":
            return self._step_web(seg)
        if kind == "folder":
            if key == "folders":
                return ("folder", ("child", value, seg.arg())) if seg.args else ("folders", value)
            if key == "files":
                return ("file", ("child", value, seg.arg())) if seg.args else ("files", value)
            if key == "parentfolder":
                return ("folder", ("parent", value))
        if kind == "folders" and key == "getbyurl":
            return ("folder", ("child", value, seg.arg()))
        if kind == "files" and key == "getbyurl":
            return ("file", ("child", value, seg.arg()))
        if kind == "file" and key == "versions":
            return ("versions", value)
        if kind in ("file", "folder") and key == "listitemallfields":
            return ("list_item", (kind, value))
        if kind in ("list", "list_item") and key == "roleassignments":
            return ("scoped_assignments", (kind, value))
        if kind == "site_groups" and key in ("getbyid", "getbyname"):
            return ("group", seg.arg())
        if kind == "group" and key == "users":
            return ("group_users", value)
        return None

    def _step_web(self, seg: Segment) -> Node | None:
        key = seg.key
        if key in ("getfilebyserverrelativeurl", "getfilebyserverrelativepath", "getfilebyurl"):
            return ("file", ("path", str(seg.arg("DecodedUrl", "serverRelativeUrl", "url"))))
        if key == "getfilebyid":
            return ("file", ("id", str(seg.arg())))
        if key in ("getfolderbyserverrelativeurl", "getfolderbyserverrelativepath"):
            return ("folder", ("path", str(seg.arg("DecodedUrl", "serverRelativeUrl", "url"))))
        if key == "getlist":
            return ("list", ("path", str(seg.arg("strUrl", "url"))))
        if key == "getfolderbyid":
            return ("folder", ("id", str(seg.arg())))
        if key == "rootfolder":
            return ("folder", ("path", ""))
        if key == "folders":
            return (
                ("folder", ("child", ("path", ""), seg.arg()))
                if seg.args
                else ("folders", ("path", ""))
            )
        simple = {
            "roleassignments": "role_assignments",
            "siteusers": "site_users",
            "sitegroups": "site_groups",
        }
        return (simple[key], None) if key in simple else None

    def _file_rel(self, store: SiteStore, locator: Any) -> str:
        how = locator[0]
        if how == "id":
            return store.file_by_id(locator[1])
        if how == "child":
            return _join(self._folder_rel(store, locator[1]), str(locator[2]))
        return store.relative(locator[1])

    def _folder_rel(self, store: SiteStore, locator: Any) -> str:
        how = locator[0]
        if how == "id":
            return store.folder_by_id(locator[1])
        if how == "child":
            return _join(self._folder_rel(store, locator[1]), str(locator[2]))
        if how == "parent":
            return str(PurePosixPath(self._folder_rel(store, locator[1])).parent).strip(".")
        return store.relative(locator[1])

    # --- reads -------------------------------------------------------------------------------

    def _get(self, store: SiteStore, req: ApiRequest, node: Node) -> Operation:
        kind, value = node
        if req.method != "GET":
            raise Unsupported(f"{req.method} {kind}")
        site = req.site_url
        readers: dict[str, tuple[str, Callable[[], Reply]]] = {
            "web": ("web", lambda: json_reply(shapes.web(store, site))),
            "file": ("file_props", lambda: self._file_props(store, req, value)),
            "folder": ("folder_props", lambda: self._folder_props(store, req, value)),
            "versions": ("versions", lambda: self._versions(store, value)),
            "role_assignments": ("role_assignments", lambda: self._role_assignments(store)),
            "site_users": ("site_users", lambda: self._site_users(store, req)),
            "site_groups": ("site_groups", lambda: self._site_groups(store)),
            "group": ("group", lambda: self._group(store, value)),
            "group_users": ("group_users", lambda: self._group_users(store, value)),
            "list": ("list", lambda: self._list(store, req, value)),
            "list_item": ("list_item", lambda: self._list_item(store, value)),
            "scoped_assignments": (
                "role_assignments",
                lambda: self._scoped_assignments(store, value),
            ),
        }
        if kind not in readers:
            raise Unsupported(f"GET {kind}")
        path_kind, run = readers[kind]
        need = "permissions" if path_kind in PERMISSION_KINDS else "read"

        def guarded() -> Reply:
            self.tenant.require(store, need)
            return run()

        return Operation(path_kind, guarded)

    def _file_props(self, store: SiteStore, req: ApiRequest, locator: Any) -> Reply:
        info = store.file_info(self._file_rel(store, locator))
        checked_out = self.tenant.checked_out(store, info.rel)
        data = shapes.file(store, info, req.site_url, checked_out=checked_out)
        return json_reply(data, etag=info.meta.etag)

    def _list(self, store: SiteStore, req: ApiRequest, locator: Any) -> Reply:
        rel = store.relative(locator[1])
        if "/" in rel or rel not in store.libraries():
            raise StoreError(
                404, "-2130575322, Microsoft.SharePoint.SPException", "List does not exist."
            )
        unique = self._directory(store).has_unique(rel)
        return json_reply(shapes.list_(store, rel, req.site_url, unique))

    def _list_item(self, store: SiteStore, target: Any) -> Reply:
        rel = self._scope_rel(store, target)
        return json_reply(shapes.list_item(store, rel, self._directory(store).has_unique(rel)))

    def _scope_rel(self, store: SiteStore, target: Any) -> str:
        kind, locator = target
        if kind == "list":
            return store.relative(locator[1])
        if kind == "file":
            rel = self._file_rel(store, locator)
            store.file_info(rel)  # 404 when there is no such file
            return rel
        rel = self._folder_rel(store, locator)
        if not store.folder_exists(rel):
            raise not_found("Folder")
        return rel

    def _scoped_assignments(self, store: SiteStore, target: Any) -> Reply:
        kind, inner = target
        rel = self._scope_rel(store, inner if kind == "list_item" else target)
        d = self._directory(store)
        items = [
            shapes.role_assignment(pid, d.principals[pid], roles)
            for pid, roles in d.scoped.get(rel.casefold(), d.assignments)
        ]
        return json_reply({"results": items})

    def _folder_props(self, store: SiteStore, req: ApiRequest, locator: Any) -> Reply:
        rel = self._folder_rel(store, locator)
        if not store.folder_exists(rel):
            raise not_found("Folder")
        return json_reply(shapes.folder(store, rel, req.site_url))

    def _content(self, store: SiteStore, req: ApiRequest, locator: Any) -> Reply:
        content, meta = store.read(self._file_rel(store, locator))
        headers = {"ETag": meta.etag}
        status, content = _apply_range(req.headers.get("Range"), content, headers)
        return Reply(status, content, "application/octet-stream", headers)

    def _versions(self, store: SiteStore, locator: Any) -> Reply:
        rel = self._file_rel(store, locator)
        return json_reply({"results": [shapes.version(rel, v) for v in store.versions(rel)]})

    def _directory(self, store: SiteStore) -> shapes.Directory:
        try:
            return shapes.Directory.from_access(store.access())
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                500, "-2146233088, System.InvalidOperationException", f"_access.json: {exc}"
            ) from None

    def _role_assignments(self, store: SiteStore) -> Reply:
        d = self._directory(store)
        items = [
            shapes.role_assignment(pid, d.principals[pid], roles) for pid, roles in d.assignments
        ]
        return json_reply({"results": items})

    def _site_users(self, store: SiteStore, req: ApiRequest) -> Reply:
        d = self._directory(store)
        admins_only = "issiteadmin eq true" in req.query.get("$filter", "").lower()
        pids = d.admins if admins_only else d.users()
        users = [shapes.principal(pid, d.principals[pid]) for pid in pids]
        top = int(req.query.get("$top", 0) or 0)
        skip = int(req.query.get("$skiptoken", 0) or 0)
        if not top:
            return json_reply({"results": users})
        data: dict[str, Any] = {"results": users[skip : skip + top]}
        if skip + top < len(users):
            data["__next"] = f"{req.site_url}/_api/Web/siteUsers?$skiptoken={skip + top}&$top={top}"
        return json_reply(data)

    def _site_groups(self, store: SiteStore) -> Reply:
        d = self._directory(store)
        return json_reply({"results": [shapes.principal(g, d.principals[g]) for g in d.groups()]})

    def _group_id(self, d: shapes.Directory, value: Any) -> int:
        for gid in d.groups():
            if value == gid or str(value).lower() == str(d.principals[gid]["title"]).lower():
                return gid
        raise StoreError(
            404, "-2146232832, Microsoft.SharePoint.SPException", "Group cannot be found."
        )

    def _group(self, store: SiteStore, value: Any) -> Reply:
        d = self._directory(store)
        gid = self._group_id(d, value)
        return json_reply(shapes.principal(gid, d.principals[gid]))

    def _group_users(self, store: SiteStore, value: Any) -> Reply:
        d = self._directory(store)
        members = d.members.get(self._group_id(d, value), [])
        return json_reply({"results": [shapes.principal(m, d.principals[m]) for m in members]})

    # --- actions (the last segment names a method or $value) ---------------------------------

    def _action(self, store: SiteStore, req: ApiRequest, node: Node, seg: Segment) -> Operation:
        kind, value = node
        key, method = seg.key, req.method
        if kind == "file":
            return self._file_action(store, req, value, seg)
        if kind == "files" and key in ("add", "addusingpath") and method == "POST":
            return Operation("files_add", lambda: self._files_add(store, req, value, seg))
        if kind == "folders" and key == "add" and method == "POST":
            return Operation("folders_add", lambda: self._folders_add(store, req, value, seg))
        if kind == "versions" and key == "deleteall" and method == "POST":
            return Operation("versions_delete", lambda: self._delete_versions(store, value, seg))
        raise Unsupported(f"{method} {kind}/{seg.name}")

    def _file_action(
        self, store: SiteStore, req: ApiRequest, locator: Any, seg: Segment
    ) -> Operation:
        key, method = seg.key, req.method
        if key in ("$value", "openbinarystream") and method == "GET":
            return Operation("file_content_get", lambda: self._content(store, req, locator))
        if (key == "$value" and method == "PUT") or (
            key == "savebinarystream" and method == "POST"
        ):
            return Operation("file_content_put", lambda: self._put_content(store, req, locator))
        if key in ("startupload", "continueupload", "finishupload", "cancelupload"):
            return Operation("upload_chunk", lambda: self._upload(store, req, locator, seg))
        raise Unsupported(f"{method} file/{seg.name}")

    def _put_content(self, store: SiteStore, req: ApiRequest, locator: Any) -> Reply:
        self.tenant.require(store, "write")
        rel = self._file_rel(store, locator)
        store.file_info(rel)  # 404 before any precondition, as SharePoint does
        meta = self._write(store, req, rel, req.body, create=False)
        return Reply(204, headers={"ETag": meta.etag})

    def _files_add(self, store: SiteStore, req: ApiRequest, folder: Any, seg: Segment) -> Reply:
        self.tenant.require(store, "write")
        name = seg.arg("url", "DecodedUrl")
        if not name:
            raise bad_request("The url parameter is required.")
        folder_rel = self._folder_rel(store, folder)
        if not store.folder_exists(folder_rel):
            raise not_found("Folder")
        rel = (
            store.relative(str(name)) if str(name).startswith("/") else _join(folder_rel, str(name))
        )
        overwrite = bool(seg.arg("overwrite", "Overwrite"))
        with store.lock:
            if store.exists(rel) and not overwrite:
                raise StoreError(
                    400,
                    EXISTS_CODE,
                    f"A file with the name {store.server_relative(rel)} already exists.",
                )
            self._write(store, req, rel, req.body, create=True)
            info = store.file_info(rel)
        return json_reply(shapes.file(store, info, req.site_url), etag=info.meta.etag)

    def _folders_add(self, store: SiteStore, req: ApiRequest, parent: Any, seg: Segment) -> Reply:
        self.tenant.require(store, "write")
        name = str(seg.arg("url", "DecodedUrl") or "")
        if not name:
            raise bad_request("The folder name is required.")
        if name.startswith("/"):
            rel = store.relative(name)
        else:
            rel = _join(self._folder_rel(store, parent), name)
        with store.lock:
            store.add_folder(rel)
        return json_reply(shapes.folder(store, rel, req.site_url))

    def _delete_versions(self, store: SiteStore, locator: Any, seg: Segment) -> Reply:
        self.tenant.require(store, "write")
        store.delete_versions(self._file_rel(store, locator))
        return json_reply({seg.name: None})

    def _upload(self, store: SiteStore, req: ApiRequest, locator: Any, seg: Segment) -> Reply:
        self.tenant.require(store, "write")
        rel = self._file_rel(store, locator)
        upload_id = str(seg.arg("uploadID", "uploadId"))
        offset = int(seg.arg("fileOffset") or 0)
        key = seg.key
        if key == "cancelupload":
            store.cancel_upload(upload_id)
            return json_reply({seg.name: None})
        with store.lock:
            self._check_writable(store, req, rel)
            if key == "startupload":
                size = store.start_upload(upload_id, rel, req.body)
            elif key == "continueupload":
                size = store.continue_upload(upload_id, rel, offset, req.body)
            else:
                content = store.finish_upload(upload_id, rel, offset, req.body)
                store.write(rel, content, create=False)
                info = store.file_info(rel)
                return json_reply(shapes.file(store, info, req.site_url), etag=info.meta.etag)
        return json_reply({seg.name: str(size)})

    # --- preconditions -----------------------------------------------------------------------

    def _write(
        self, store: SiteStore, req: ApiRequest, rel: str, content: bytes, *, create: bool
    ) -> FileMeta:
        with store.lock:
            self._check_writable(store, req, rel)
            return store.write(rel, content, create=create)

    def _check_writable(self, store: SiteStore, req: ApiRequest, rel: str) -> None:
        """423 while the file is locked, 412 when If-Match / If-None-Match do not hold."""
        url = store.server_relative(rel)
        exists = store.exists(rel)
        if self.tenant.checked_out(store, rel):
            raise StoreError(
                423, CHECKOUT_CODE, f'The file "{url}" is checked out for editing by emulator.'
            )
        if self.tenant.locked(store, rel):
            raise StoreError(
                423, LOCK_CODE, f'The file "{url}" is locked for shared use by emulator [emulator].'
            )
        if_match = req.headers.get("If-Match")
        if self.tenant.has("ignore-if-match"):
            if_match = None
        if_none_match = req.headers.get("If-None-Match")
        current = store.file_info(rel).meta.etag if exists else None
        if if_match is not None and (current is None or not etag_matches(if_match, current)):
            raise StoreError(
                412,
                PRECONDITION_CODE,
                "The request ETag value does not match the object's ETag value.",
            )
        if (
            if_none_match is not None
            and current is not None
            and etag_matches(if_none_match, current)
        ):
            raise StoreError(412, PRECONDITION_CODE, "The file already exists.")


def _join(folder: str, name: str) -> str:
    return "/".join(p for p in (folder, name.strip("/")) if p)


def _apply_range(header: str | None, content: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    if not header or not header.startswith("bytes="):
        return 200, content
    first, _, last = header[len("bytes=") :].partition("-")
    try:
        start = int(first) if first else max(0, len(content) - int(last))
        end = int(last) if first and last else len(content) - 1
    except ValueError:
        return 200, content
    if start >= len(content) and content:
        headers["Content-Range"] = f"bytes */{len(content)}"
        return 416, b""
    end = min(end, len(content) - 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
    return 206, content[start : end + 1]
