"""One interface for every kind of site: local folder, SharePoint Online, the emulator.

A site holds at most one workbook (at the config's ``[workbook] path``). Only modules under
``sites/`` do I/O on sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

PrincipalType = Literal["user", "sharepoint_group", "security_group", "m365_group"]
LinkKind = Literal["anonymous", "organization", "specific"]
Scope = Literal["site", "library", "folder", "workbook"]


@dataclass(frozen=True)
class Snapshot:
    """The workbook as read: its bytes and the ETag they had. ``content`` is None when the
    site has no workbook yet (then ``etag`` is None too)."""

    content: bytes | None
    etag: str | None

    @property
    def exists(self) -> bool:
        return self.content is not None


@dataclass(frozen=True)
class Principal:
    type: PrincipalType
    title: str
    login: str | None = None
    email: str | None = None
    members: tuple[Principal, ...] = ()


@dataclass(frozen=True)
class RoleAssignment:
    """``roles`` (permission levels) given to ``principal`` on the site, or on the library,
    a folder or the workbook where that object has unique permissions."""

    principal: Principal
    roles: tuple[str, ...]
    scope: Scope = "site"


@dataclass(frozen=True)
class SharingLink:
    """A sharing link on the workbook, or on a folder above it (``inherited``)."""

    kind: LinkKind
    roles: tuple[str, ...] = ()
    inherited: bool = False


@dataclass(frozen=True)
class AccessSnapshot:
    """Who has access to a site: the normalised form of ``_access.json`` (docs/emulator.md)."""

    role_assignments: tuple[RoleAssignment, ...] = ()
    sharing_links: tuple[SharingLink, ...] = field(default_factory=tuple)
    site_admins: tuple[Principal, ...] = ()


@runtime_checkable
class Site(Protocol):
    """A place that holds one municipality's workbook.

    Errors raised (from ``agii_sync.errors``): ``EtagConflict`` when ``if_match`` no longer
    matches, ``WorkbookLocked`` (423), ``Throttled``/``TemporaryFailure`` for network trouble
    past the retry budget, ``AuthFailure`` for 401/403.
    """

    url: str

    def read(self) -> Snapshot:
        """The workbook's bytes and ETag, or an empty Snapshot if there is none."""
        ...

    def write(self, content: bytes, if_match: str | None) -> str:
        """Replace the workbook atomically if its ETag is still ``if_match`` and return the new
        ETag. ``if_match=None`` means "create; fail with EtagConflict if one exists"."""
        ...

    def delete_old_versions(self) -> int:
        """Delete every version but the current one; return how many were deleted."""
        ...

    def read_access(self) -> AccessSnapshot:
        """Role assignments (groups expanded to members) and sharing links."""
        ...
