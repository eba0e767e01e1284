"""Who can reach a municipality's site, compared with who may (``access-check``): pure.

Input: the site's role assignments and sharing links (a ``sites.base.AccessSnapshot``, seen
here through the read-only protocols below so the domain imports nothing from ``sites``) and
the municipality's ``allowed`` list.

Matching. An allowed entry names a principal when, ignoring case and surrounding spaces, it
equals the principal's e-mail address; its login name (``i:0#.f|membership|x@y``), whole or
the part after the last ``|``; or, for a group, its title. A user's display name is never
matched: names are not unique.

Decisions.

- A SharePoint group whose title is allowed is fine as a whole: AgII vouches for its
  membership. Its members are listed as having access ``via`` the group, not reported.
- A SharePoint group that is not allowed is looked through: each member is judged on its own,
  with the group's roles and the group as ``via``. The group gives no finding of its own (one
  finding per member says what to fix, and counts stay per principal), so an empty group, or
  one whose members are all allowed, passes.
- A security group is judged as one principal (its members are not read): ``unexpected_group``
  unless allowed.
- Critical whatever ``allowed`` says: Everyone, Everyone except external users and All Users
  (by title, English or Dutch, or by claim), wherever they appear, also inside an allowed
  group; anonymous and organisation-wide sharing links.
- A guest account (``#ext#``, ``urn:spo:guest``, ``urn:spo:anon``) is critical unless an allowed
  entry names it or it is in an allowed group: municipal staff reach AgII's tenant as guests,
  so a named guest is normal and an unnamed one is not.
- ``specific`` sharing links give no finding: they reach named people only, who are judged
  where SharePoint lists them as principals. Link kinds match case-insensitively (``anyone``
  and ``organisation`` too); a kind agii-sync does not know is critical (``unknown_link``):
  it could be open to anyone.
- A Microsoft 365 group is read like a SharePoint group: fine as a whole when allowed (by
  title or claim), else each member (as Graph lists them) is judged with the group as ``via``.
- Site collection admins reach everything without a role assignment: each is judged like a
  user (``unexpected_admin`` unless allowed).
- Where the library, a folder or the workbook has unique permissions, those assignments are
  judged like the site's, with their ``scope``. An assignment holding only Limited Access is
  not access to the workbook (SharePoint adds it on the site when something below is shared;
  the sharing itself is judged where it is); SharePoint's ``Limited Access System Group…`` is
  a system group and skipped; a ``SharingLinks.…`` group is looked through like any group.
- A sharing link inherited from a folder above the workbook is judged like one on the
  workbook (``via`` says so).
- ``above_level``: an allowed entry may carry the highest permission level of its function
  profile (``read``, ``edit``, ``full``; docs/protocol.md, art. 4 and 6); a principal it
  covers whose roles go beyond that is unexpected. Roles rank as SharePoint's default
  permission levels ("Understanding permission levels in SharePoint",
  https://learn.microsoft.com/en-us/sharepoint/understanding-permission-levels): Limited
  Access gives nothing by itself; Read and View Only read; Contribute, Edit and Approve edit;
  Design, Manage Hierarchy and Full Control are full. A role agii-sync does not know counts as
  full.
- ``missing``: an allowed entry that names no principal with access (directly or as a member
  of a group with access). Every finding, missing included, fails the check; only
  ``blocks_push`` (unexpected or critical access) keeps personal data from being pushed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["unexpected", "missing", "critical"]
Severity = Literal["critical", "warning"]

EVERYONE_TITLES = frozenset(
    {
        "everyone",
        "everyone except external users",
        "all users",
        "all users (windows)",
        "all users (membership)",
        "iedereen",
        "iedereen behalve externe gebruikers",
        "alle gebruikers",
    }
)
EVERYONE_CLAIMS = ("spo-grid-all-users", "c:0(.s|true", "c:0!.s|windows")
GUEST_MARKS = ("#ext#", "urn:spo:guest", "urn:spo:anon")
CRITICAL_LINKS = {"anonymous": "anonymous_link", "organization": "organization_link"}
LINK_TITLES = {
    "anonymous": "anyone with the link",
    "organization": "everyone in the organisation",
    "unknown": "a sharing link of an unknown kind",
}
LINK_KIND_ALIASES = {"anyone": "anonymous", "organisation": "organization", "users": "specific"}
LIMITED_ACCESS = frozenset({"limited access", "web-only limited access", "beperkte toegang"})
SYSTEM_GROUP_PREFIXES = ("limited access system group",)
GROUP_TYPES = frozenset({"sharepoint_group", "m365_group"})
ADMIN_ROLE = "Site collection administrator"
INHERITED_VIA = "a folder above the workbook"

MESSAGES = {
    "unexpected_user": "has access but is not in allowed",
    "unexpected_group_member": "has access through a group that is not in allowed",
    "unexpected_group": "group has access but is not in allowed",
    "unexpected_admin": "site collection administrator but not in allowed",
    "above_level": "has a higher permission level than its allowed entry gives",
    "missing": "in allowed, but has no access to the site",
    "everyone": "everybody in the organisation has access",
    "guest": "guest account not named in allowed",
    "anonymous_link": "anyone with the link has access, without signing in",
    "organization_link": "everybody in the organisation with the link has access",
    "unknown_link": "a sharing link of a kind agii-sync does not know: it may be open to anyone",
}
KIND_ORDER: dict[str, int] = {"critical": 0, "unexpected": 1, "missing": 2}
LEVELS = {"read": 1, "edit": 2, "full": 3}
ROLE_LEVELS = {
    "limited access": 0,
    "beperkte toegang": 0,
    "read": 1,
    "view only": 1,
    "restricted view": 1,
    "lezen": 1,
    "alleen weergeven": 1,
    "contribute": 2,
    "edit": 2,
    "approve": 2,
    "bijdragen": 2,
    "bewerken": 2,
    "goedkeuren": 2,
    "design": 3,
    "manage hierarchy": 3,
    "full control": 3,
    "ontwerpen": 3,
    "volledig beheer": 3,
}


def role_level(roles: Iterable[str]) -> int:
    """The highest permission level among ``roles`` (0 when none gives access by itself)."""
    return max((ROLE_LEVELS.get(normalise(role), 3) for role in roles), default=0)


class PrincipalView(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def login(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...
    @property
    def members(self) -> Sequence[PrincipalView]: ...


class _GivesRoles(Protocol):
    @property
    def roles(self) -> Sequence[str]: ...


class AssignmentView(_GivesRoles, Protocol):
    @property
    def principal(self) -> PrincipalView: ...
    @property
    def scope(self) -> str: ...


class LinkView(_GivesRoles, Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def inherited(self) -> bool: ...


class AccessView(Protocol):
    @property
    def role_assignments(self) -> Sequence[AssignmentView]: ...
    @property
    def sharing_links(self) -> Sequence[LinkView]: ...
    @property
    def site_admins(self) -> Sequence[PrincipalView]: ...


@dataclass(frozen=True)
class AccessFinding:
    kind: Kind
    code: str
    severity: Severity
    title: str
    login: str | None = None
    email: str | None = None
    type: str | None = None  # a principal type, "link", or None for a missing entry
    roles: tuple[str, ...] = ()
    via: str | None = None  # the group it comes through, or the folder a link sits on
    scope: str = "site"  # where the access is given: site, library, folder, workbook

    @property
    def message(self) -> str:
        return MESSAGES[self.code]


@dataclass(frozen=True)
class Grant:
    """One way someone can reach the site, and the allowed entry that covers it (if any)."""

    title: str
    login: str | None
    email: str | None
    type: str
    roles: tuple[str, ...]
    via: str | None
    allowed_by: str | None
    scope: str = "site"


@dataclass(frozen=True)
class AccessReport:
    grants: tuple[Grant, ...]
    links: tuple[tuple[str, tuple[str, ...]], ...]  # (kind, roles) of every sharing link
    findings: tuple[AccessFinding, ...]

    def counts(self) -> dict[str, int]:
        return {kind: sum(1 for f in self.findings if f.kind == kind) for kind in KIND_ORDER}

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def blocks_push(self) -> bool:
        return any(f.kind != "missing" for f in self.findings)


def compare_access(
    snapshot: AccessView, allowed: Iterable[str], levels: Mapping[str, str] | None = None
) -> AccessReport:
    """``levels``: allowed entry → the highest level (``read``/``edit``/``full``) it gives."""
    judge = _Judge(allowed, levels or {})
    for assignment in snapshot.role_assignments:
        judge.assignment(assignment.principal, tuple(assignment.roles), assignment.scope)
    for admin in snapshot.site_admins:
        judge.principal(admin, (ADMIN_ROLE,), via=None, vouched_by=None, scope="site")
    for link in snapshot.sharing_links:
        judge.link(link)
    findings = [*judge.findings, *judge.missing()]
    findings.sort(key=lambda f: KIND_ORDER[f.kind])
    return AccessReport(
        grants=tuple(judge.grants),
        links=tuple((link.kind, tuple(link.roles)) for link in snapshot.sharing_links),
        findings=tuple(findings),
    )


def normalise(text: str) -> str:
    return text.strip().casefold()


def principal_names(p: PrincipalView) -> set[str]:
    """The names an allowed entry may use for this principal, normalised."""
    names = set()
    if p.email:
        names.add(normalise(p.email))
    if p.login:
        names.update({normalise(p.login), normalise(p.login.rsplit("|", 1)[-1])})
    if p.type != "user":
        names.add(normalise(p.title))
    names.discard("")
    return names


def is_limited_access(roles: Sequence[str]) -> bool:
    """Only Limited Access: no access to the workbook by this assignment itself."""
    return bool(roles) and all(normalise(r) in LIMITED_ACCESS for r in roles)


def is_system_group(p: PrincipalView) -> bool:
    return p.type == "sharepoint_group" and normalise(p.title).startswith(SYSTEM_GROUP_PREFIXES)


def is_everyone(p: PrincipalView) -> bool:
    if p.type in GROUP_TYPES:
        return False  # a group reaches its members only; they are judged one by one
    login = normalise(p.login or "")
    return normalise(p.title) in EVERYONE_TITLES or any(claim in login for claim in EVERYONE_CLAIMS)


def is_guest(p: PrincipalView) -> bool:
    text = normalise(f"{p.login or ''} {p.email or ''}")
    return any(mark in text for mark in GUEST_MARKS)


class _Judge:
    def __init__(self, allowed: Iterable[str], levels: Mapping[str, str]) -> None:
        self.entries = {normalise(e): e.strip() for e in allowed if e.strip()}
        self.levels = {normalise(e): LEVELS[level] for e, level in levels.items()}
        self.matched: set[str] = set()
        self.grants: list[Grant] = []
        self.findings: list[AccessFinding] = []

    def assignment(self, p: PrincipalView, roles: tuple[str, ...], scope: str = "site") -> None:
        if is_system_group(p):
            return
        if is_limited_access(roles):
            self.grants.append(_grant(p, roles, None, self.match(p), scope))
            return
        if p.type in GROUP_TYPES:
            self.group(p, roles, scope)
        else:
            self.principal(p, roles, via=None, vouched_by=None, scope=scope)

    def group(self, group: PrincipalView, roles: tuple[str, ...], scope: str) -> None:
        allowed_by = self.match(group)
        self.grants.append(_grant(group, roles, None, allowed_by, scope))
        if self.above_level(allowed_by, roles):
            self.findings.append(_finding("unexpected", "above_level", group, roles, None, scope))
        for member in group.members:
            self.principal(member, roles, via=group.title, vouched_by=allowed_by, scope=scope)

    def principal(
        self,
        p: PrincipalView,
        roles: tuple[str, ...],
        *,
        via: str | None,
        vouched_by: str | None,
        scope: str = "site",
    ) -> None:
        allowed_by = self.match(p) or vouched_by
        self.grants.append(_grant(p, roles, via, allowed_by, scope))
        code = self.code(p, allowed_by, via, admin=ADMIN_ROLE in roles)
        if code is None and self.above_level(allowed_by, roles) and allowed_by != vouched_by:
            code = "above_level"  # a member of an allowed group: reported with the group
        if code is not None:
            unexpected = code.startswith("unexpected") or code == "above_level"
            kind: Kind = "unexpected" if unexpected else "critical"
            self.findings.append(_finding(kind, code, p, roles, via, scope))

    @staticmethod
    def code(
        p: PrincipalView, allowed_by: str | None, via: str | None, *, admin: bool = False
    ) -> str | None:
        if is_everyone(p):
            return "everyone"
        if allowed_by is not None:
            return None
        if is_guest(p):
            return "guest"
        if admin:
            return "unexpected_admin"
        if p.type != "user":
            return "unexpected_group"
        return "unexpected_group_member" if via else "unexpected_user"

    def above_level(self, entry: str | None, roles: tuple[str, ...]) -> bool:
        limit = self.levels.get(normalise(entry)) if entry is not None else None
        return limit is not None and role_level(roles) > limit

    def link(self, link: LinkView) -> None:
        kind = link_kind(link.kind)
        if kind == "specific":
            return
        code = CRITICAL_LINKS.get(kind, "unknown_link")
        title = LINK_TITLES[kind if kind in CRITICAL_LINKS else "unknown"]
        roles = tuple(link.roles)
        inherited = bool(getattr(link, "inherited", False))
        finding = AccessFinding(
            "critical",
            code,
            "critical",
            title,
            type="link",
            roles=roles,
            via=INHERITED_VIA if inherited else None,
            scope="folder" if inherited else "workbook",
        )
        self.findings.append(finding)

    def match(self, p: PrincipalView) -> str | None:
        hits = principal_names(p) & self.entries.keys()
        self.matched |= hits
        return self.entries[min(hits)] if hits else None

    def missing(self) -> list[AccessFinding]:
        return [
            AccessFinding("missing", "missing", "warning", entry)
            for key, entry in self.entries.items()
            if key not in self.matched
        ]


def _grant(
    p: PrincipalView,
    roles: tuple[str, ...],
    via: str | None,
    allowed_by: str | None,
    scope: str = "site",
) -> Grant:
    return Grant(p.title, p.login, p.email, p.type, roles, via, allowed_by, scope)


def link_kind(kind: str) -> str:
    """``anonymous``, ``organization``, ``specific``, or the kind as given when unknown."""
    key = " ".join(str(kind).split()).casefold()
    return LINK_KIND_ALIASES.get(key, key)


def _finding(
    kind: Kind,
    code: str,
    p: PrincipalView,
    roles: tuple[str, ...],
    via: str | None,
    scope: str = "site",
) -> AccessFinding:
    severity: Severity = "critical" if kind == "critical" else "warning"
    return AccessFinding(kind, code, severity, p.title, p.login, p.email, p.type, roles, via, scope)
