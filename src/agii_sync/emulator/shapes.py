"""The ``odata=verbose`` JSON shapes SharePoint answers with (see docs/sharepoint.md)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from .store import FileInfo, SiteStore, Version, now_iso

ROLE_KINDS = {
    "limited access": 1,
    "read": 2,
    "contribute": 3,
    "design": 4,
    "full control": 5,
    "edit": 6,
}
PRINCIPAL_TYPES = {"user": 1, "security_group": 4, "m365_group": 4, "sharepoint_group": 8}
FIRST_PRINCIPAL_ID = 3


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": {"lang": "en-US", "value": message}}}


def metadata(type_name: str, uri: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"type": type_name}
    if uri:
        meta.update(id=uri, uri=uri)
    return meta


def resource_path(url: str) -> dict[str, Any]:
    return {"__metadata": metadata("SP.ResourcePath"), "DecodedUrl": url}


def context_info(site_url: str) -> dict[str, Any]:
    digest = f"0x{uuid.uuid4().hex.upper()},{now_iso()}"
    return {
        "GetContextWebInformation": {
            "__metadata": metadata("SP.ContextWebInformation"),
            "FormDigestTimeoutSeconds": 1800,
            "FormDigestValue": digest,
            "LibraryVersion": "16.0.0.0",
            "SiteFullUrl": site_url,
            "SupportedSchemaVersions": {"results": ["14.0.0.0", "15.0.0.0"]},
            "WebFullUrl": site_url,
        }
    }


def web(store: SiteStore, site_url: str) -> dict[str, Any]:
    web_id = str(uuid.uuid5(uuid.NAMESPACE_URL, site_url))
    return {
        "__metadata": metadata("SP.Web", f"{site_url}/_api/Web"),
        "Id": web_id,
        "Title": store.name,
        "Url": site_url,  # the library takes this as the web's URL: it must be the full one
        "ServerRelativeUrl": store.server_relative_root,
        "ServerRelativePath": resource_path(store.server_relative_root),
        "WebTemplate": "STS",
    }


def file(
    store: SiteStore, info: FileInfo, site_url: str, *, checked_out: bool = False
) -> dict[str, Any]:
    meta, url = info.meta, store.server_relative(info.rel)
    uri = f"{site_url}/_api/Web/GetFileById('{meta.unique_id}')"
    return {
        "__metadata": metadata("SP.File", uri),
        "CheckInComment": "",
        "CheckOutType": 0 if checked_out else 2,  # SP.CheckOutType: 0 Online, 2 None
        "ContentTag": f"{{{meta.unique_id.upper()}}},{meta.version},{meta.version}",
        "CustomizedPageStatus": 0,
        "ETag": meta.etag,
        "Exists": True,
        "Length": str(meta.size),
        "Level": 1,
        "LinkingUri": None,
        "LinkingUrl": "",
        "MajorVersion": meta.version,
        "MinorVersion": 0,
        "Name": PurePosixPath(info.rel).name,
        "ServerRelativeUrl": url,
        "ServerRelativePath": resource_path(url),
        "TimeCreated": meta.created,
        "TimeLastModified": meta.modified,
        "Title": None,
        "UIVersion": meta.version * 512,
        "UIVersionLabel": f"{meta.version}.0",
        "UniqueId": meta.unique_id,
    }


def folder(store: SiteStore, rel: str, site_url: str) -> dict[str, Any]:
    uid, url = store.folder_id(rel), store.server_relative(rel)
    return {
        "__metadata": metadata("SP.Folder", f"{site_url}/_api/Web/GetFolderById('{uid}')"),
        "Exists": True,
        "IsWOPIEnabled": False,
        "ItemCount": store.item_count(rel),
        "Name": PurePosixPath(rel).name if rel else "",
        "ProgID": None,
        "ServerRelativeUrl": url,
        "ServerRelativePath": resource_path(url),
        "UniqueId": uid,
        "WelcomePage": "",
    }


def list_(store: SiteStore, rel: str, site_url: str, unique: bool) -> dict[str, Any]:
    list_id = store.folder_id(rel)
    url = store.server_relative(rel)
    return {
        "__metadata": metadata("SP.List", f"{site_url}/_api/Web/Lists(guid'{list_id}')"),
        "BaseTemplate": 101,
        "HasUniqueRoleAssignments": unique,
        "Id": list_id,
        "Title": "Documenten" if rel == "Gedeelde documenten" else rel,
        "ParentWebUrl": store.server_relative_root,
        "RootFolder": {
            "__deferred": {
                "uri": f"{site_url}/_api/Web/GetFolderByServerRelativePath(DecodedUrl='{url}')"
            }
        },
    }


def list_item(store: SiteStore, rel: str, unique: bool) -> dict[str, Any]:
    return {
        "__metadata": metadata("SP.Data.DocumentsItem"),
        "HasUniqueRoleAssignments": unique,
        "Id": int(uuid.UUID(store.folder_id(rel)).int % 10_000) + 1,
        "FileRef": store.server_relative(rel),
    }


def version(rel: str, item: Version) -> dict[str, Any]:
    return {
        "__metadata": metadata("SP.FileVersion"),
        "CheckInComment": "",
        "Created": item.created,
        "ID": item.id,
        "IsCurrentVersion": False,
        "Length": str(item.size),
        "Size": item.size,
        "Url": f"_vti_history/{item.id}/{rel}",
        "VersionLabel": item.label,
    }


@dataclass
class Directory:
    """The principals of ``_access.json`` with stable ids, as SharePoint numbers them: the
    site's role assignments, those of objects with unique permissions (by path inside the
    site, case-folded), and the site collection admins."""

    principals: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, list[int]] = field(default_factory=dict)
    assignments: list[tuple[int, list[str]]] = field(default_factory=list)
    scoped: dict[str, list[tuple[int, list[str]]]] = field(default_factory=dict)
    admins: list[int] = field(default_factory=list)
    _ids: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def from_access(cls, access: dict[str, Any]) -> Directory:
        directory = cls()
        directory.assignments = directory._assign(access.get("role_assignments", []))
        for unique in access.get("unique_permissions", []):
            path = str(unique["path"]).strip("/").casefold()
            directory.scoped[path] = directory._assign(unique.get("role_assignments", []))
        for admin in access.get("site_admins", []):
            pid = directory.add(admin)
            directory.principals[pid]["is_site_admin"] = True
            directory.admins.append(pid)
        return directory

    def _assign(self, items: list[dict[str, Any]]) -> list[tuple[int, list[str]]]:
        return [(self.add(a["principal"]), list(a.get("roles", []))) for a in items]

    def has_unique(self, rel: str) -> bool:
        return rel.strip("/").casefold() in self.scoped

    def add(self, principal: dict[str, Any]) -> int:
        kind = principal.get("type", "user")
        if kind not in PRINCIPAL_TYPES:
            raise ValueError(f"unknown principal type {kind!r}")
        key = (kind, str(principal.get("login") or principal.get("title", "")).lower())
        if key not in self._ids:
            pid = FIRST_PRINCIPAL_ID + len(self._ids)
            self._ids[key] = pid
            self.principals[pid] = {**principal, "type": kind}
            if kind == "sharepoint_group":
                self.members[pid] = [self.add(m) for m in principal.get("members", [])]
        return self._ids[key]

    def users(self) -> list[int]:
        return [pid for pid, p in self.principals.items() if p["type"] != "sharepoint_group"]

    def groups(self) -> list[int]:
        return [pid for pid, p in self.principals.items() if p["type"] == "sharepoint_group"]


def principal(pid: int, data: dict[str, Any]) -> dict[str, Any]:
    kind, title = data["type"], str(data.get("title", ""))
    if kind == "sharepoint_group":
        return {
            "__metadata": metadata("SP.Group"),
            "Id": pid,
            "Title": title,
            "LoginName": title,
            "PrincipalType": PRINCIPAL_TYPES[kind],
            "Description": None,
            "OwnerTitle": "Site Owners",
        }
    login = data.get("login") or _claim(data, title)
    return {
        "__metadata": metadata("SP.User"),
        "Id": pid,
        "Title": title,
        "LoginName": login,
        "Email": data.get("email") or "",
        "PrincipalType": PRINCIPAL_TYPES[kind],
        "IsSiteAdmin": bool(data.get("is_site_admin")),
        "UserPrincipalName": data.get("email"),
    }


def role_assignment(pid: int, data: dict[str, Any], roles: list[str]) -> dict[str, Any]:
    return {
        "__metadata": metadata("SP.RoleAssignment"),
        "PrincipalId": pid,
        "Member": principal(pid, data),
        "RoleDefinitionBindings": {"results": [role_definition(name) for name in roles]},
    }


def role_definition(name: str) -> dict[str, Any]:
    kind = ROLE_KINDS.get(name.lower(), 0)
    return {
        "__metadata": metadata("SP.RoleDefinition"),
        "Id": 1073741820 + kind,
        "Name": name,
        "RoleTypeKind": kind,
        "Hidden": False,
    }


def _claim(data: dict[str, Any], title: str) -> str:
    if data.get("type") == "m365_group" and data.get("id"):
        return f"c:0o.c|federateddirectoryclaimprovider|{data['id']}"
    return f"c:0t.c|tenant|{_stable_id(title)}"


def _stable_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
