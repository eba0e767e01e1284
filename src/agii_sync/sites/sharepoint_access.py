"""Who can reach a SharePoint site's workbook, read the documented way (docs/sharepoint.md):

- SharePoint REST: the site's role assignments (``web/roleassignments``), site collection
  admins (``web/siteusers?$filter=IsSiteAdmin eq true``), and the role assignments of the
  library, each folder above the workbook and the workbook itself where inheritance is broken
  (``HasUniqueRoleAssignments``); the members of SharePoint groups.
- Microsoft Graph: the members of Microsoft 365 groups (only Graph knows them), and the sharing
  links of the workbook and of every folder above it (driveItem permissions with ``link``;
  SharePoint does not return ``inheritedFrom``, so each folder is read on its own).

A refused read (403) is ``AccessRefused`` naming the grant to ask for, never an empty answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import AccessRefused
from .base import AccessSnapshot, Principal, RoleAssignment, Scope, SharingLink

if TYPE_CHECKING:
    from office365.sharepoint.client_context import ClientContext

    from .sharepoint import SharePointSite

PRINCIPAL_KINDS = {1: "user", 4: "security_group", 8: "sharepoint_group"}
LIMITED_ACCESS_KIND = 1  # RoleTypeKind "Guest": shown as Limited Access (its name is localised)
M365_CLAIM = "federateddirectoryclaimprovider|"
LINK_SCOPES = {
    "anonymous": "anonymous",
    "organization": "organization",
    "users": "specific",
    "existingaccess": "specific",
}
GRAPH_ROLES = {"read": "Read", "write": "Edit", "owner": "Full Control"}
EXPAND = "$expand=Member,RoleDefinitionBindings"
GROUP_GRANT = "GroupMember.Read.All"


class AccessReader:
    def __init__(self, site: SharePointSite, ctx: ClientContext) -> None:
        self.site = site
        self.ctx = ctx
        self._groups: dict[int, tuple[Principal, ...]] = {}

    def read(self) -> AccessSnapshot:
        assignments = list(self._assignments("web/roleassignments", "site"))
        for scope, path in self._scopes():
            assignments.extend(self._unique(scope, path))
        admins = self.site.sp_get(self.ctx, "web/siteusers?$filter=IsSiteAdmin%20eq%20true")
        return AccessSnapshot(
            role_assignments=tuple(assignments),
            sharing_links=self._links(),
            site_admins=tuple(self._principal(p) for p in admins.get("results", [])),
        )

    # --- role assignments --------------------------------------------------------------------

    def _scopes(self) -> list[tuple[Scope, str]]:
        """(scope, REST path of the securable object) from the library down to the workbook."""
        site, root = self.site, self.site.site_path
        library = f"{root}/{site.library}"
        scopes: list[tuple[Scope, str]] = [("library", f"web/GetList('{_literal(library)}')")]
        folder = library
        for part in site.folder_parts:
            folder = f"{folder}/{part}"
            path = f"web/GetFolderByServerRelativePath(DecodedUrl='{_literal(folder)}')"
            scopes.append(("folder", f"{path}/ListItemAllFields"))
        file = f"web/GetFileByServerRelativePath(DecodedUrl='{_literal(site.file_url)}')"
        scopes.append(("workbook", f"{file}/ListItemAllFields"))
        return scopes

    def _unique(self, scope: Scope, path: str) -> list[RoleAssignment]:
        from .sharepoint import _NotFound

        try:
            item = self.site.sp_get(self.ctx, f"{path}?$select=HasUniqueRoleAssignments")
        except _NotFound:  # no workbook (yet), or a folder not made yet
            return []
        if not item.get("HasUniqueRoleAssignments"):
            return []
        return list(self._assignments(f"{path}/RoleAssignments", scope))

    def _assignments(self, path: str, scope: Scope) -> list[RoleAssignment]:
        answer = self.site.sp_get(self.ctx, f"{path}?{EXPAND}")
        result = []
        for item in answer.get("results", []):
            bindings = (item.get("RoleDefinitionBindings") or {}).get("results", [])
            roles = tuple(_role_name(b) for b in bindings)
            result.append(RoleAssignment(self._principal(item.get("Member") or {}), roles, scope))
        return result

    def _principal(self, props: dict[str, Any]) -> Principal:
        kind = PRINCIPAL_KINDS.get(_as_int(props.get("PrincipalType")), "user")
        login = props.get("LoginName") or None
        members: tuple[Principal, ...] = ()
        if kind == "sharepoint_group":
            members = self._group_members(int(props["Id"]))
            login = None
        elif kind == "security_group" and login and M365_CLAIM in login.lower():
            kind = "m365_group"
            members = self._m365_members(login)
        return Principal(
            type=kind,  # type: ignore[arg-type]
            title=str(props.get("Title") or ""),
            login=login,
            email=props.get("Email") or None,
            members=members,
        )

    def _group_members(self, group_id: int) -> tuple[Principal, ...]:
        if group_id not in self._groups:
            users = self.site.sp_get(self.ctx, f"web/sitegroups/GetById({group_id})/users")
            self._groups[group_id] = tuple(self._principal(u) for u in users.get("results", []))
        return self._groups[group_id]

    def _m365_members(self, login: str) -> tuple[Principal, ...]:
        """A Microsoft 365 group's members (claim ``…|<id>``) or owners (``…|<id>_o``)."""
        group = login.rsplit("|", 1)[-1]
        relation = "owners" if group.endswith("_o") else "members"
        group = group.removesuffix("_o")
        path = f"groups/{group}/{relation}?$select=id,displayName,userPrincipalName,mail"
        try:
            answer = self.site.graph_get(self.ctx, path)
        except AccessRefused as refused:
            raise AccessRefused(
                f"{refused.message} (the members of a Microsoft 365 group)",
                grant=GROUP_GRANT,
                hint="ask the tenant admin to grant the app the Microsoft Graph application "
                f"permission {GROUP_GRANT}: only Graph knows a Microsoft 365 group's members",
            ) from None
        return tuple(_graph_member(m) for m in answer.get("value", []))

    # --- sharing links -----------------------------------------------------------------------

    def _links(self) -> tuple[SharingLink, ...]:
        """Links on the workbook and on every folder above it inside the library."""
        site, links, seen = self.site, [], set()
        parts = [*site.folder_parts, site.file_name]
        drive = site.drive_id(self.ctx)
        for depth in range(len(parts), -1, -1):
            item = site.item(self.ctx, parts[:depth])
            if item is None:
                continue
            answer = site.graph_get(self.ctx, f"drives/{drive}/items/{item.id}/permissions")
            for permission in answer.get("value", []):
                link = permission.get("link")
                if not link or permission.get("id") in seen:
                    continue
                seen.add(permission.get("id"))
                inherited = depth < len(parts) or bool(permission.get("inheritedFrom"))
                links.append(_sharing_link(link, permission.get("roles", []), inherited))
        return tuple(links)


def _sharing_link(link: dict[str, Any], roles: list[str], inherited: bool) -> SharingLink:
    scope = str(link.get("scope") or "").lower()
    kind = LINK_SCOPES.get(scope, scope or "unknown")
    levels = tuple(GRAPH_ROLES.get(str(r).lower(), str(r)) for r in roles)
    return SharingLink(kind, levels, inherited)  # type: ignore[arg-type]


def _graph_member(data: dict[str, Any]) -> Principal:
    kind = (
        "user"
        if "user" in str(data.get("@odata.type", "#microsoft.graph.user"))
        else "security_group"
    )
    upn = data.get("userPrincipalName")
    return Principal(
        type=kind,  # type: ignore[arg-type]
        title=str(data.get("displayName") or ""),
        login=f"i:0#.f|membership|{upn}" if upn else None,
        email=data.get("mail") or None,
    )


def _role_name(binding: dict[str, Any]) -> str:
    if _as_int(binding.get("RoleTypeKind")) == LIMITED_ACCESS_KIND:
        return "Limited Access"
    return str(binding.get("Name") or "")


def _literal(url: str) -> str:
    """A server-relative URL inside a quoted OData literal: ``'`` doubled, then
    percent-encoded (``#``, ``%`` and spaces included)."""
    return quote(url.replace("'", "''"), safe="/'")


def _as_int(value: Any) -> int:
    value = getattr(value, "value", value)
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0
