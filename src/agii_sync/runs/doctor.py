"""``doctor``: prove on a site every SharePoint behaviour agii-sync relies on
(docs/sharepoint.md), with a scratch file next to the workbook that it removes afterwards.

One ``Check`` per behaviour: ``pass``, ``fail`` or ``not_allowed`` (with the grant to ask
for); checks that cannot run after an earlier failure are ``skipped``. On an emulator site a
failure names the emulator quirk (``--quirk``) that reproduces it, so each quirk the emulator
was started with shows up by name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..config import Municipality
from ..engine import Run
from ..errors import (
    AccessRefused,
    AgiiError,
    AuthFailure,
    ConfigError,
    EtagConflict,
    ExitCode,
    WorkbookCheckedOut,
    WorkbookLocked,
)
from ..outcome import Facts, SiteOutcome

Outcome = Literal["pass", "fail", "not_allowed", "skipped"]
SHAREPOINT_AUDIENCES = ("00000003-0000-0ff1-ce00-000000000000",)
GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str
    grant: str | None = None
    quirk: str | None = None  # the emulator quirk that reproduces this failure

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome in ("pass", "skipped"):  # a skip follows a failure that has its code
            return ExitCode.OK
        if self.outcome == "not_allowed" or self.name == "sign-in":
            return ExitCode.AUTH
        if self.name == "library":
            return ExitCode.USAGE
        return ExitCode.SAFETY


@dataclass(frozen=True)
class Checked(Facts):
    """The site's checks; the audit line keeps only how many failed."""

    checks: list[Check]

    def counts(self) -> dict[str, int]:
        return {"checks_failed": sum(1 for c in self.checks if c.outcome != "pass")}


def checks_of(outcome: SiteOutcome) -> list[Check]:
    checked = outcome.fact(Checked)
    return list(checked.checks) if checked else []


def doctor_site(run: Run, m: Municipality) -> SiteOutcome:
    from ..sites.sharepoint import SharePointSite

    outcome = SiteOutcome(m.id)
    site = run.site(m)
    if not isinstance(site, SharePointSite):
        checks = [Check("site", "pass", "a folder site: no SharePoint behaviour to prove")]
    else:
        checks = _Doctor(site, emulator=m.kind == "emulator").run()
    outcome.facts.append(Checked(checks))
    outcome.exit_code = max((c.exit_code for c in checks), default=ExitCode.OK)
    return outcome


class _Doctor:
    def __init__(self, site: object, *, emulator: bool) -> None:
        from ..sites.sharepoint import SharePointSite

        assert isinstance(site, SharePointSite)
        self.site = site
        self.emulator = emulator
        self.checks: list[Check] = []

    def run(self) -> list[Check]:
        if not self._sign_in() or not self._library():
            return self._skip("folder", "read", "write", "versions", "permissions", "cleanup")
        if self._folder():
            self._workbook()
            self._scratch()
        else:
            self._skip("read", "write", "versions")
        self._permissions()
        return self.checks

    # --- each check --------------------------------------------------------------------------

    def _sign_in(self) -> bool:
        from ..sites.graph import token_claims

        site, problems, roles = self.site, [], set()
        for api, provider, audiences in (
            ("SharePoint", site.token_provider, (*SHAREPOINT_AUDIENCES, f"https://{site.host}")),
            ("Graph", site.graph_token_provider, GRAPH_AUDIENCES),
        ):
            try:
                token = provider()["access_token"] if provider else ""
            except AgiiError as error:
                problems.append(f"{api}: {error.message}")
                continue
            claims = token_claims(str(token))
            roles |= set(claims.get("roles") or [])
            if str(claims.get("aud", "")).rstrip("/") not in audiences:
                problems.append(f"{api} token audience {claims.get('aud')!r}")
        if problems:
            return self._add("sign-in", "fail", "; ".join(problems))
        shown = ", ".join(sorted(roles)) or "delegated (no app roles)"
        return self._add("sign-in", "pass", f"tokens for SharePoint and Graph; roles: {shown}")

    def _library(self) -> bool:
        try:
            self.site.call("find the library", self.site.drive_id, grant="read")
        except ConfigError as error:
            return self._add("library", "fail", error.message, quirk="missing-library")
        except AccessRefused as refused:
            return self._refused("library", refused)
        except AuthFailure as error:
            return self._add("sign-in", "fail", error.message)
        return self._add("library", "pass", f"document library {self.site.library!r} exists")

    def _folder(self) -> bool:
        site = self.site
        found = site.call("find the folder", lambda ctx: site.item(ctx, site.folder_parts))
        if found is None:
            detail = "the workbook's folder does not exist yet: `agii-sync init` makes it"
            return self._add("folder", "fail", detail)
        return self._add("folder", "pass", "the workbook's folder exists")

    def _workbook(self) -> None:
        site = self.site
        item = site.call("read the workbook", site.workbook_item, grant="read")
        if item is None:
            self._add("read", "pass", "no workbook yet (checked on the scratch file)")
            return
        if item.checked_out:
            detail = "the workbook is checked out: every write is refused until it is checked in"
            self._add("check-out", "fail", detail, quirk="checked-out")
            return
        snapshot = site.read()
        ok = snapshot.exists and snapshot.etag == item.etag
        self._add("read", "pass" if ok else "fail", f"workbook read with its eTag {item.etag}")

    def _scratch(self) -> None:
        site = self.site
        folder = "/".join(site.parts[:-1])
        name = f"agii-sync-doctor-{uuid.uuid4().hex[:8]}.txt"
        scratch = site.sibling(f"{folder}/{name}")
        try:
            self._on_scratch(scratch, name)
        finally:
            self._cleanup(scratch, name)

    def _on_scratch(self, scratch: object, name: str) -> None:
        from ..sites.sharepoint import SharePointSite

        assert isinstance(scratch, SharePointSite)
        first = self._try("create", lambda: scratch.write(b"agii-sync doctor 1", None))
        if first is None:
            self._skip("read", "write", "versions")
            return
        read = scratch.read()
        ok = read.content == b"agii-sync doctor 1" and read.etag == first
        self._add("read", "pass" if ok else "fail", f"{name} read back with its eTag")
        second = self._try("write-current", lambda: scratch.write(b"agii-sync doctor 2", first))
        if second is None:
            self._skip("write-stale", "write-during-upload", "versions")
            return
        back = scratch.stats.etag_read_back
        self._add(
            "etag-after-write",
            "pass" if not back else "fail",
            "the upload's answer carries the new eTag"
            if not back
            else "the upload's answer had no eTag: agii-sync had to read it back",
            quirk="no-etag-after-write",
        )
        self._stale(scratch, first, second)
        self._held(scratch, second)
        self._versions(scratch)

    def _stale(self, scratch: object, stale: str, current: str) -> None:
        """The site itself refuses an upload session for a stale eTag (agii-sync's own eTag
        re-read before the commit is left out of this proof)."""
        from ..sites.sharepoint import SharePointSite

        assert isinstance(scratch, SharePointSite)

        def attempt() -> None:
            url = scratch.call("open", lambda ctx: scratch.open_replace_session(ctx, stale))
            scratch.cancel_upload(url)

        self._refused_write(
            scratch,
            "write-stale",
            attempt,
            b"agii-sync doctor 2",
            "an upload session for a stale eTag is refused (412)",
            "an upload session for a stale eTag was accepted: this site does not enforce "
            "if-match, so agii-sync could overwrite a municipality's edits",
            "ignore-if-match",
        )

    def _held(self, scratch: object, current: str) -> None:
        """A session opened on the current eTag is not committed once the file changed
        meanwhile: the window between agii-sync's last eTag read and its commit is closed."""
        from ..sites.sharepoint import SharePointSite

        assert isinstance(scratch, SharePointSite)

        def race(ctx):  # type: ignore[no-untyped-def]
            url = scratch.open_replace_session(ctx, current)
            scratch.put_bytes(ctx, url, b"agii-sync doctor 4 (late)")
            return url

        def attempt() -> None:
            url = scratch.call("open a session", race)
            scratch.write(b"agii-sync doctor 5 (meanwhile)", current)
            scratch.call("commit", lambda ctx: scratch.commit(ctx, url, None))

        self._refused_write(
            scratch,
            "write-during-upload",
            attempt,
            b"agii-sync doctor 5 (meanwhile)",
            "a session is not committed once its file changed meanwhile (412)",
            "a session was committed over a write that landed during the upload: the site "
            "checks if-match only when a session is created (as documented), so a write in "
            "the moment between agii-sync's last eTag read and its commit could be lost",
            "if-match-at-creation-only",
        )

    def _refused_write(
        self,
        scratch: object,
        name: str,
        attempt: Callable[[], None],
        kept: bytes,
        passed: str,
        failed: str,
        quirk: str,
    ) -> None:
        """``attempt`` must end in a conflict (412) and leave the file holding ``kept``."""
        from ..sites.sharepoint import SharePointSite

        assert isinstance(scratch, SharePointSite)
        try:
            attempt()
        except EtagConflict:
            ok = scratch.read().content == kept
            self._add(name, "pass" if ok else "fail", passed)
            return
        except AgiiError as error:
            self._add(name, "fail", error.message)
            return
        self._add(name, "fail", failed, quirk=quirk)

    def _versions(self, scratch: object) -> None:
        from ..sites.sharepoint import SharePointSite

        assert isinstance(scratch, SharePointSite)
        try:
            deleted = scratch.delete_old_versions()
            left = scratch.delete_old_versions()
        except AccessRefused as refused:
            self._refused("versions", refused)
            return
        except AgiiError as error:
            self._add("versions", "fail", error.message)
            return
        ok = deleted >= 1 and left == 0
        self._add(
            "versions", "pass" if ok else "fail", f"{deleted} old version(s) listed and deleted"
        )

    def _permissions(self) -> None:
        try:
            access = self.site.read_access()
        except AccessRefused as refused:
            self._refused("permissions", refused, quirk="permissions-403")
            return
        except AgiiError as error:
            self._add("permissions", "fail", error.message)
            return
        detail = (
            f"{len(access.role_assignments)} role assignment(s), {len(access.site_admins)} "
            f"site admin(s), {len(access.sharing_links)} sharing link(s) readable"
        )
        self._add("permissions", "pass", detail)

    def _cleanup(self, scratch: object, name: str) -> None:
        from ..sites.sharepoint import SharePointSite

        assert isinstance(scratch, SharePointSite)
        try:
            removed = scratch.call("remove the scratch file", scratch.delete_file)
        except AgiiError as error:
            self._add("cleanup", "fail", f"{name}: {error.message}; remove it by hand")
            return
        if removed:
            self._add("cleanup", "pass", f"{name} removed")

    # --- helpers -----------------------------------------------------------------------------

    def _try(self, name: str, action: Callable[[], str]) -> str | None:
        try:
            result = action()
        except WorkbookCheckedOut as error:
            self._add("check-out", "fail", error.message, quirk="checked-out")
            return None
        except WorkbookLocked as error:
            self._add(name, "fail", error.message)
            return None
        except AccessRefused as refused:
            self._refused(name, refused)
            return None
        except AgiiError as error:
            self._add(name, "fail", error.message)
            return None
        self._add(name, "pass", _PASSED[name])
        if name == "write-current":
            self._add(
                "check-out", "pass", "check-out state read (publication.level); not checked out"
            )
        return result

    def _refused(self, name: str, refused: AccessRefused, quirk: str | None = None) -> bool:
        return self._add(name, "not_allowed", refused.message, grant=refused.grant, quirk=quirk)

    def _add(self, name: str, outcome: Outcome, detail: str, **extra: str | None) -> bool:
        quirk = extra.pop("quirk", None) if self.emulator and outcome != "pass" else None
        extra.pop("quirk", None)
        self.checks.append(Check(name, outcome, detail, quirk=quirk, **extra))
        return outcome == "pass"

    def _skip(self, *names: str) -> list[Check]:
        done = {c.name for c in self.checks}
        for name in names:
            if name not in done:
                self.checks.append(Check(name, "skipped", "not run: an earlier check failed"))
        return self.checks


_PASSED = {
    "create": "a new file is created (upload session, conflict behaviour fail)",
    "write-current": "a write with the current eTag is accepted (createUploadSession if-match)",
}
