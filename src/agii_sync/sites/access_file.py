"""The ``_access.json`` format (docs/emulator.md, "Who has access"), read into an AccessSnapshot.

A folder site reads it from its folder; the emulator serves the same file through the
SharePoint REST and Graph endpoints the SharePoint backend reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import AccessSnapshot, Principal, RoleAssignment, SharingLink

PRINCIPAL_TYPES = ("user", "sharepoint_group", "security_group", "m365_group")
SCOPES = ("library", "folder", "workbook")


def read_access_file(path: Path, workbook_path: str | None = None) -> AccessSnapshot:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path} not found: the folder site does not say who has access",
            hint="write _access.json in the site's folder (format: docs/emulator.md)",
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.__class__.__name__})") from None
    try:
        return parse_access(data, workbook_path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: not in the _access.json format ({exc})") from None


def parse_access(data: dict[str, Any], workbook_path: str | None = None) -> AccessSnapshot:
    assignments = [_assignments(data.get("role_assignments", ()), "site")]
    for unique in data.get("unique_permissions", ()):
        scope = unique["scope"]
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        assignments.append(_assignments(unique.get("role_assignments", ()), scope))
    return AccessSnapshot(
        role_assignments=tuple(a for group in assignments for a in group),
        sharing_links=tuple(_link(link, workbook_path) for link in data.get("sharing_links", ())),
        site_admins=tuple(principal(p) for p in data.get("site_admins", ())),
    )


def _assignments(items: Any, scope: str) -> tuple[RoleAssignment, ...]:
    return tuple(
        RoleAssignment(principal(a["principal"]), tuple(a.get("roles", ())), scope)  # type: ignore[arg-type]
        for a in items
    )


def _link(link: dict[str, Any], workbook_path: str | None) -> SharingLink:
    on = link.get("on")  # absent: on the library (or the folder site) as a whole
    inherited = on is None or workbook_path is None or _norm(on) != _norm(workbook_path)
    return SharingLink(link["kind"], tuple(link.get("roles", ())), inherited)


def _norm(path: str) -> str:
    return path.strip().strip("/").casefold()


def principal(data: dict[str, Any]) -> Principal:
    kind = data["type"]
    if kind not in PRINCIPAL_TYPES:
        raise ValueError(f"unknown principal type {kind!r}")
    return Principal(
        type=kind,
        title=str(data.get("title", "")),
        login=data.get("login") or _m365_login(data),
        email=data.get("email"),
        members=tuple(principal(m) for m in data.get("members", ())),
    )


def _m365_login(data: dict[str, Any]) -> str | None:
    """The claim SharePoint shows for a Microsoft 365 group's members."""
    if data["type"] == "m365_group" and data.get("id"):
        return f"c:0o.c|federateddirectoryclaimprovider|{data['id']}"
    return None
