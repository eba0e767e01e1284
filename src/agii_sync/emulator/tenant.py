"""What the emulated tenant enforces beyond files, for SharePoint REST and Graph alike: the
app's Sites.Selected role per site, files "open in Excel" (locks), check-outs, token
audiences, and the quirks ``--quirk NAME`` switches on (docs/emulator.md, "Quirks")."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any
from urllib.parse import unquote

from .store import SiteStore, StoreError

QUIRKS = {
    "ignore-if-match": "writes ignore if-match/If-Match (a stale eTag overwrites)",
    "if-match-at-creation-only": "an upload session checks if-match when it is created, "
    "not again at its commit (all Microsoft documents)",
    "no-etag-after-write": "a finished upload answers without eTag/cTag",
    "permissions-403": "every permissions read answers 403, whatever the app's role",
    "checked-out": "every file is checked out to someone else (423 on every write)",
    "missing-library": "sites have only 'Shared Documents', not 'Gedeelde documenten'",
}
DEFAULT_LIBRARIES = ("Gedeelde documenten",)
ENGLISH_LIBRARIES = ("Shared Documents",)
ROLE_ORDER = {"read": 1, "write": 2, "manage": 3, "fullcontrol": 4}
SHAREPOINT_AUDIENCES = ("00000003-0000-0ff1-ce00-000000000000",)
GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
SP_ACCESS_DENIED = "-2147024891, System.UnauthorizedAccessException"


class LockRegistry:
    """Server-relative URLs of files "open in Excel": writes to them answer 423."""

    def __init__(self, urls: list[str] | None = None) -> None:
        self._urls: set[str] = {self._key(u) for u in urls or []}
        self._lock = threading.Lock()

    @staticmethod
    def _key(url: str) -> str:
        """As SharePoint compares paths: decoded (``%20``), case-insensitive."""
        return unquote(url.strip()).rstrip("/").casefold()

    def lock(self, url: str) -> None:
        with self._lock:
            self._urls.add(self._key(url))

    def unlock(self, url: str) -> None:
        with self._lock:
            self._urls.discard(self._key(url))

    def is_locked(self, url: str) -> bool:
        with self._lock:
            return self._key(url) in self._urls

    def urls(self) -> list[str]:
        with self._lock:
            return sorted(self._urls)


class Tenant:
    def __init__(self, locks: LockRegistry, quirks: frozenset[str] = frozenset()) -> None:
        unknown = quirks - QUIRKS.keys()
        if unknown:
            raise ValueError(f"unknown quirk(s): {', '.join(sorted(unknown))}")
        self.locks = locks
        self.quirks = quirks

    @property
    def libraries(self) -> tuple[str, ...]:
        return ENGLISH_LIBRARIES if "missing-library" in self.quirks else DEFAULT_LIBRARIES

    def has(self, quirk: str) -> bool:
        return quirk in self.quirks

    def app_role(self, store: SiteStore) -> str:
        """The app's Sites.Selected role on the site: ``app_grant`` in ``_access.json``."""
        return str(store.access().get("app_grant", "fullcontrol")).lower()

    def allows(self, store: SiteStore, need: str) -> bool:
        if need == "permissions" and self.has("permissions-403"):
            return False
        needed = "fullcontrol" if need == "permissions" else need
        return ROLE_ORDER.get(self.app_role(store), 0) >= ROLE_ORDER[needed]

    def require(self, store: SiteStore, need: str) -> None:
        """SharePoint REST's 403 when the app's role on the site is not enough."""
        if not self.allows(store, need):
            raise StoreError(403, SP_ACCESS_DENIED, "Access denied.")

    def checked_out(self, store: SiteStore, rel: str) -> bool:
        return self.has("checked-out") and store.exists(rel)

    def locked(self, store: SiteStore, rel: str) -> bool:
        return store.exists(rel) and self.locks.is_locked(store.server_relative(rel))


def token_audience(authorization: str) -> str | None:
    """The ``aud`` claim of the bearer token (signatures are not checked: the emulator only
    checks that a token meant for SharePoint goes to SharePoint, one for Graph to Graph)."""
    token = authorization[len("Bearer ") :].strip() if authorization.startswith("Bearer ") else ""
    try:
        payload = token.split(".")[1]
        claims: Any = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    return str(claims.get("aud")) if isinstance(claims, dict) else None
