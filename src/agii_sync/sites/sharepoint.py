"""A SharePoint Online site (or the loopback emulator) through office365-rest-python-client.

All traffic goes through the library's ``ClientContext``. One ``SharePointConnection`` holds
one root context (token and HTTP transport); every site and every thread gets its own
``ctx.clone(site_url)``, which shares that token and transport but has its own query queue
and form digest, so sites can be processed from a small thread pool.

What is and is not verified against SharePoint Online (see docs/sharepoint.md):

- A conditional write re-reads the ETag just before the write and sends ``If-Match`` on the
  ``$value`` PUT; whether SharePoint Online enforces ``If-Match`` there is unverified, hence
  the re-read. The new ETag comes from the PUT's ``ETag`` response header when present (the
  emulator sends it), else from a read-back (which could see a later writer's ETag).
- Sharing links: on the emulator from its own endpoint (``_api/web/_emulator/sharinglinks``);
  on https sites from ``GetSharingInformation`` of the workbook's list item only (the links
  on that one file). That path is unverified against SharePoint Online.
- Folders are created level by level with ``Folders/Add`` below the deepest existing one, so
  an existing document library is never re-created.
- Retries are per HTTP request, inside one time budget per Site method call; waiting for a
  workbook that is open in Excel (423) has its own allowance (``RetryPolicy.for_lock_wait``).
- One form digest per connection, not one per site: it is fetched once (through our own retry
  loop, so a fractional ``Retry-After`` is honoured too) and handed to every clone. With the
  OAuth bearer tokens used here SharePoint Online does not need the digest at all (Microsoft
  documents it for cookie-authenticated requests); the library insists on sending one. Should a
  site reject a digest from another site (403, ``-2130575251``), the library fetches that
  site's own and retries once. Unverified against SharePoint Online.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from office365.runtime.client_request_exception import ClientRequestException
from office365.runtime.http.http_method import HttpMethod
from office365.runtime.http.request_options import RequestOptions
from office365.runtime.transport.base import BaseTransport
from office365.sharepoint.client_context import ClientContext
from requests import Response
from requests import exceptions as http_errors

from .. import __version__
from ..errors import (
    AgiiError,
    AuthFailure,
    ConfigError,
    EtagConflict,
    TemporaryFailure,
    Throttled,
    WorkbookLocked,
)
from ..siteurl import parse_http_site, site_kind
from .base import AccessSnapshot, Principal, RoleAssignment, SharingLink, Snapshot

USER_AGENT = f"NONISV|AgII|agii-sync/{__version__}"
CHUNK_SIZE = 4 * 1024 * 1024  # above this, uploads go in startUpload/continueUpload chunks
DIGEST_EXPIRED_HRESULT = "-2130575251"
DIGEST_REFRESH_MARGIN = 120.0  # seconds: renew the shared digest this long before it expires
LOCK_POLL_SECONDS = 5.0  # how often a locked workbook is tried again (at least)
THROTTLE_STATUSES = {429, 503}
TRANSIENT_STATUSES = {408, 500, 502, 504}
PRINCIPAL_KINDS = {1: "user", 4: "security_group", 8: "sharepoint_group"}
LINK_KINDS = {1: "specific", 2: "organization", 3: "organization", 4: "anonymous", 5: "anonymous"}

TokenProvider = Callable[[], dict[str, Any]]
T = TypeVar("T")


def dummy_token() -> dict[str, Any]:
    """The token for loopback emulator sites (the emulator accepts any bearer token)."""
    return {"access_token": "emulator", "token_type": "Bearer", "expires_in": 3600}


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying. ``Retry-After`` is honoured exactly; without it, exponential
    backoff with full jitter. Never more than ``max_attempts`` tries of one request, nor
    longer than ``budget_seconds`` per Site method call. A workbook open in Excel (423) is
    tried ``lock_attempts`` times, ``lock_wait_seconds`` apart; that waiting does not use up
    the budget."""

    max_attempts: int = 10
    budget_seconds: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 15.0
    lock_attempts: int = 3  # tries while the workbook is open in Excel (423)
    lock_wait_seconds: float = LOCK_POLL_SECONDS  # between those tries

    @classmethod
    def for_lock_wait(cls, total_seconds: float) -> RetryPolicy:
        """The default policy, waiting about ``total_seconds`` in all for a workbook that is
        open in Excel (``[agii] lock_wait_seconds``); 0 gives up at the first 423."""
        if total_seconds <= 0:
            return cls(lock_attempts=1)
        interval = min(total_seconds / 2, max(LOCK_POLL_SECONDS, min(total_seconds / 10, 30.0)))
        tries = 1 + math.ceil(round(total_seconds / interval, 6))
        return cls(lock_attempts=tries, lock_wait_seconds=interval)

    @property
    def lock_patience(self) -> float:
        """The longest a write waits in all for a locked workbook."""
        return self.lock_wait_seconds * max(0, self.lock_attempts - 1)

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class RetryStats:
    """Thread-safe counters of what the retry loop did, for tests and benchmarks."""

    FIELDS = (
        "calls",
        "retries",
        "throttled",
        "lock_waits",
        "connection_errors",
        "server_errors",
        "waited_seconds",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = dict.fromkeys(self.FIELDS, 0)

    def add(self, name: str, amount: float = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def __getattr__(self, name: str) -> float:
        if name in RetryStats.FIELDS:
            with self._lock:
                return self._values[name]
        raise AttributeError(name)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._values)


class FormDigestCache:
    """One form digest for every site and thread of a connection (see the module docstring).

    Fetched on first need, single-flight, and renewed a while before it expires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: str | None = None
        self._renew_at = 0.0
        self._expires_at = 0.0

    def seed(self, ctx: ClientContext, fetch: Callable[[], tuple[str, float]]) -> None:
        """Give ``ctx`` the shared digest, calling ``fetch`` for a new one when needed."""
        with self._lock:
            now = time.monotonic()
            if self._value is None or now >= self._renew_at:
                value, lifetime = fetch()
                now = time.monotonic()
                self._value, self._expires_at = value, now + lifetime
                self._renew_at = now + lifetime - min(DIGEST_REFRESH_MARGIN, lifetime / 2)
            value, remaining = self._value, self._expires_at - now
        request = ctx.pending_request()
        request.invalidate_digest()  # a fresh ContextWebInformation, valid from now
        info = request.context_info
        info.FormDigestValue = value
        info.FormDigestTimeoutSeconds = int(remaining)


class _IdentifiedTransport(BaseTransport):
    """Adds Microsoft's ``NONISV|Org|App/version`` User-Agent to every request."""

    def __init__(self, inner: BaseTransport, user_agent: str) -> None:
        self.inner = inner
        self.user_agent = user_agent

    def execute(self, request: RequestOptions) -> Response:
        request.set_header("User-Agent", self.user_agent)
        return self.inner.execute(request)

    @property
    def proxies(self) -> dict[str, str] | None:
        return self.inner.proxies

    @property
    def verify(self) -> bool | str | None:
        return self.inner.verify

    @property
    def timeout(self) -> Any:
        return self.inner.timeout

    @property
    def auth(self) -> Any | None:
        return self.inner.auth

    def reset_connections(self) -> None:
        self.inner.reset_connections()

    def close(self) -> None:
        self.inner.close()


def check_site_url(site_url: str) -> str:
    """The site URL rebuilt from its parsed parts (scheme, host, port, decoded path; a URL
    copied from a browser has ``%20`` and ``%27``, the library compares paths decoded): the
    same parse that the config checked decides where the connection goes."""
    if site_url.startswith("file:"):
        raise ConfigError("a file: site is a folder, not a SharePoint site")
    try:
        return parse_http_site(site_url).url
    except ValueError as exc:
        raise ConfigError(f"site URL: {exc}") from None


def identify(ctx: ClientContext, user_agent: str = USER_AGENT) -> ClientContext:
    request = ctx.pending_request()
    if not isinstance(request.transport, _IdentifiedTransport):
        request.transport = _IdentifiedTransport(request.transport, user_agent)
    return ctx


def root_context(site_url: str, token_provider: TokenProvider) -> ClientContext:
    ctx = ClientContext(check_site_url(site_url)).with_access_token(token_provider)
    return identify(ctx)


class SharePointConnection:
    """One token and HTTP session shared by every SharePoint site of a run."""

    def __init__(
        self,
        token_provider: TokenProvider,
        *,
        retry: RetryPolicy | None = None,
        base_context: ClientContext | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.token_provider = token_provider
        self.retry = retry or RetryPolicy()
        self.stats = RetryStats()
        self.chunk_size = chunk_size
        self.digest = FormDigestCache()
        self._root = identify(base_context) if base_context is not None else None
        self._origin: str | None = None
        self._lock = threading.Lock()

    def site(self, site_url: str, workbook_path: str) -> SharePointSite:
        self._refuse_other_origin(site_url)
        return SharePointSite(
            site_url,
            workbook_path,
            self.token_provider,
            retry=self.retry,
            base_context=self._root_for(site_url),
            stats=self.stats,
            chunk_size=self.chunk_size,
            digest=self.digest,
        )

    def _refuse_other_origin(self, site_url: str) -> None:
        """This connection's token is for one host: it is never sent to another."""
        origin = parse_http_site(check_site_url(site_url)).origin
        with self._lock:
            if self._origin is None:
                self._origin = origin
            elif origin != self._origin:
                raise ConfigError("internal: a site on another host asked for this connection")

    def _root_for(self, site_url: str) -> ClientContext:
        with self._lock:
            if self._root is None:
                self._root = root_context(site_url, self.token_provider)
            return self._root

    def close(self) -> None:
        with self._lock:
            if self._root is not None:
                self._root.close()


class _NotFound(Exception):
    """A 404 for a file or folder: the caller decides what a missing object means."""


@dataclass
class _Call:
    """One call of a Site method: what it does (for messages) and when its budget runs out
    (moved on by the time spent waiting for a locked workbook)."""

    action: str
    deadline: float


class SharePointSite:
    """The workbook at ``workbook_path`` (relative to the site) on one SharePoint site.

    Every HTTP request is retried on its own (429/503 after ``Retry-After``, connection errors
    and 5xx with backoff, 423 a few times), within one time budget per method call. Writes are
    safe to repeat: they carry ``If-Match`` or refuse to overwrite, so a repeated write whose
    first answer was lost ends in ``EtagConflict``, never in a lost update.
    """

    def __init__(
        self,
        site_url: str,
        workbook_path: str,
        token_provider: TokenProvider | None = None,
        *,
        retry: RetryPolicy | None = None,
        base_context: ClientContext | None = None,
        stats: RetryStats | None = None,
        chunk_size: int = CHUNK_SIZE,
        digest: FormDigestCache | None = None,
    ) -> None:
        self.url = check_site_url(site_url)
        if base_context is None:
            if token_provider is None:
                raise ValueError("SharePointSite needs a token_provider or a base_context")
            base_context = root_context(self.url, token_provider)
        self._base = identify(base_context)
        self.retry = retry or RetryPolicy()
        self.stats = stats or RetryStats()
        self.chunk_size = chunk_size
        self.digest = digest or FormDigestCache()
        self.site_path = urlsplit(self.url).path.rstrip("/")
        self.workbook_path = workbook_path.strip().strip("/")
        self.file_url = f"{self.site_path}/{self.workbook_path}"
        folder, _, self.file_name = self.workbook_path.rpartition("/")
        self.folder_parts = [part for part in folder.split("/") if part]
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SharePointSite({self.url!r}, {self.workbook_path!r})"

    # --- the Site protocol -------------------------------------------------------------------

    def read(self) -> Snapshot:
        return self._call("read the workbook", self._read)

    def write(self, content: bytes, if_match: str | None) -> str:
        if if_match is None:
            return self._call("create the workbook", lambda ctx: self._create(ctx, content))
        return self._call("write the workbook", lambda ctx: self._replace(ctx, content, if_match))

    def delete_old_versions(self) -> int:
        return self._call("delete old versions", self._delete_versions)

    def read_access(self) -> AccessSnapshot:
        return self._call("read who has access", self._read_access)

    # --- read --------------------------------------------------------------------------------

    def _read(self, ctx: ClientContext) -> Snapshot:
        # The ETag is read before the bytes: if a write slips in between, the ETag is the older
        # one and our next write fails with a conflict instead of overwriting the newer file.
        try:
            etag, _ = self._properties(ctx)
            result = self._query(ctx, lambda: self._file(ctx).get_content())
        except _NotFound:
            return Snapshot(None, None)
        return Snapshot(bytes(result.value), etag)

    def _file(self, ctx: ClientContext) -> Any:
        return ctx.web.get_file_by_server_relative_path(self.file_url)

    def _properties(self, ctx: ClientContext) -> tuple[str, str]:
        """The workbook's ETag and UniqueId; ``_NotFound`` when there is none."""
        file = self._query(ctx, lambda: self._file(ctx).select(["ETag", "UniqueId"]).get())
        return str(file.properties["ETag"]), str(file.properties["UniqueId"])

    # --- write -------------------------------------------------------------------------------

    def _replace(self, ctx: ClientContext, content: bytes, if_match: str) -> str:
        try:
            etag, unique_id = self._properties(ctx)
        except _NotFound:
            raise self._conflict("was deleted") from None
        if not same_etag(etag, if_match):
            raise self._conflict("changed")
        if len(content) > self.chunk_size:
            return self._upload_in_chunks(ctx, unique_id, content, if_match)
        headers = {"X-HTTP-Method": "PUT", "If-Match": if_match}
        try:
            response = self._post(ctx, f"web/GetFileById('{unique_id}')/$value", content, headers)
        except _NotFound:
            raise self._conflict("was deleted") from None
        return response.headers.get("ETag") or self._properties(ctx)[0]

    def _create(self, ctx: ClientContext, content: bytes) -> str:
        first = content if len(content) <= self.chunk_size else b""
        try:
            etag, unique_id = self._add(ctx, first)
        except _NotFound:
            self._ensure_folder(ctx)
            etag, unique_id = self._add(ctx, first)
        if len(content) > self.chunk_size:
            return self._upload_in_chunks(ctx, unique_id, content, etag)
        return etag

    def _add(self, ctx: ClientContext, content: bytes) -> tuple[str, str]:
        def add() -> Any:
            folder_url = self._folder_url(self.folder_parts)
            folder = ctx.web.get_folder_by_server_relative_path(folder_url)
            return folder.files.add(self.file_name, content, overwrite=False)

        try:
            file = self._query(ctx, add, passthrough={400})
        except ClientRequestException as exc:
            if _status(exc) == 400 and self._exists(ctx):
                raise self._conflict("was created by someone else") from None
            raise
        return str(file.properties["ETag"]), str(file.properties["UniqueId"])

    def _exists(self, ctx: ClientContext) -> bool:
        try:
            self._properties(ctx)
        except _NotFound:
            return False
        return True

    def _ensure_folder(self, ctx: ClientContext) -> None:
        parts = self.folder_parts
        existing = len(parts)
        while existing > 0 and not self._folder_exists(ctx, parts[:existing]):
            existing -= 1
        for depth in range(existing, len(parts)):
            self._add_folder(ctx, self._folder_url(parts[:depth]), parts[depth])

    def _add_folder(self, ctx: ClientContext, parent: str, name: str) -> None:
        self._query(
            ctx, lambda: ctx.web.get_folder_by_server_relative_path(parent).folders.add(name)
        )

    def _folder_exists(self, ctx: ClientContext, parts: list[str]) -> bool:
        url = self._folder_url(parts)
        try:
            self._query(ctx, lambda: ctx.web.get_folder_by_server_relative_path(url).get())
        except _NotFound:
            return False
        return True

    def _folder_url(self, parts: list[str]) -> str:
        return "/".join([self.site_path, *parts])

    def _upload_in_chunks(
        self, ctx: ClientContext, unique_id: str, content: bytes, etag: str
    ) -> str:
        """startUpload/continueUpload/finishUpload on the existing file. Its content only
        changes at finishUpload; every chunk carries If-Match, so a concurrent write stops us."""
        file = f"web/GetFileById('{unique_id}')"
        upload = f"uploadID='{uuid.uuid4()}'"
        size, response = self.chunk_size, None
        for offset in range(0, len(content), size):
            chunk = content[offset : offset + size]
            if offset == 0:
                step = f"startUpload({upload})"
            elif offset + size < len(content):
                step = f"continueUpload({upload},fileOffset={offset})"
            else:
                step = f"finishUpload({upload},fileOffset={offset})"
            response = self._post(ctx, f"{file}/{step}", chunk, {"If-Match": etag})
        assert response is not None
        new_etag = response.headers.get("ETag") or response.json()["d"].get("ETag")
        return str(new_etag or self._properties(ctx)[0])

    def _conflict(self, what: str) -> EtagConflict:
        return EtagConflict(
            f"the workbook on {self.url} {what} since it was read",
            hint="run again: agii-sync reads the workbook again and reapplies its change",
        )

    # --- versions ----------------------------------------------------------------------------

    def _delete_versions(self, ctx: ClientContext) -> int:
        try:
            versions = self._query(ctx, lambda: self._file(ctx).versions.get())
        except _NotFound:
            return 0
        if len(versions):
            self._query(ctx, lambda: self._file(ctx).versions.delete_all())
        return len(versions)

    # --- access ------------------------------------------------------------------------------

    def _read_access(self, ctx: ClientContext) -> AccessSnapshot:
        assignments = self._query(
            ctx,
            lambda: ctx.web.role_assignments.expand(["Member", "RoleDefinitionBindings"]).get(),
        )
        result = []
        for assignment in assignments:
            principal = self._principal(ctx, assignment.member.properties)
            roles = tuple(
                str(r.properties.get("Name")) for r in assignment.role_definition_bindings
            )
            result.append(RoleAssignment(principal, roles))
        return AccessSnapshot(tuple(result), self._sharing_links(ctx))

    def _principal(self, ctx: ClientContext, props: dict[str, Any]) -> Principal:
        kind = PRINCIPAL_KINDS.get(_as_int(props.get("PrincipalType")), "user")
        members: tuple[Principal, ...] = ()
        if kind == "sharepoint_group":
            group_id = int(props["Id"])
            users = self._query(ctx, lambda: ctx.web.site_groups.get_by_id(group_id).users.get())
            members = tuple(self._principal(ctx, user.properties) for user in users)
        return Principal(
            type=kind,
            title=str(props.get("Title") or ""),
            login=None if kind == "sharepoint_group" else props.get("LoginName") or None,
            email=props.get("Email") or None,
            members=members,
        )

    def _sharing_links(self, ctx: ClientContext) -> tuple[SharingLink, ...]:
        if site_kind(self.url) != "emulator":
            return self._file_sharing_links(ctx)
        response = self._get(ctx, "web/_emulator/sharinglinks")
        return tuple(
            SharingLink(item["Kind"], tuple(item.get("Roles", {}).get("results", [])))
            for item in response.json()["d"]["results"]
        )

    def _file_sharing_links(self, ctx: ClientContext) -> tuple[SharingLink, ...]:
        """Unverified against SharePoint Online: the links on the workbook's list item."""
        try:
            info = self._query(
                ctx, lambda: self._file(ctx).listItemAllFields.get_sharing_information()
            )
        except _NotFound:
            return ()
        except (AssertionError, KeyError, TypeError, ValueError):
            raise TemporaryFailure(
                f"could not read the sharing links of the workbook on {self.url}"
            ) from None
        links = []
        for link in info.sharing_links:
            kind = LINK_KINDS.get(_as_int(link.LinkKind))
            if kind is None or not link.Url:  # 0: uninitialised; 6: flexible, not created yet
                continue
            links.append(SharingLink(kind, ("Edit",) if link.IsEditLink else ("Read",)))
        return tuple(links)

    # --- requests and the retry loop ---------------------------------------------------------

    def _context(self) -> ClientContext:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._base.clone(self.url)
            self._local.ctx = ctx
        return ctx

    def _call(self, action: str, operation: Callable[[ClientContext], T]) -> T:
        self.stats.add("calls")
        self._local.call = _Call(action, time.monotonic() + self.retry.budget_seconds)
        ctx = self._context()
        try:
            self._ensure_digest(ctx)
            return operation(ctx)
        except _NotFound:
            raise TemporaryFailure(
                f"SharePoint answered 404 trying to {action} on {self.url}",
                hint="check the site URL and the [workbook] path in the config",
            ) from None
        finally:
            if ctx.has_pending_request:  # never carry half a queue into the next call
                self._local.ctx = None

    def _ensure_digest(self, ctx: ClientContext) -> None:
        if not ctx.pending_request().context_info.is_valid:
            self._retrying(ctx, lambda: self.digest.seed(ctx, lambda: self._fetch_digest(ctx)))

    def _fetch_digest(self, ctx: ClientContext) -> tuple[str, float]:
        """``POST contextinfo`` by hand, so that our retry loop paces it (the library's own
        digest retry reads only whole-second ``Retry-After`` values)."""
        request = ctx.pending_request()
        options = RequestOptions(_api(ctx, "contextinfo"))
        options.method = HttpMethod.Post
        for name in ("Accept", "Content-Type"):
            options.set_header(name, "application/json;odata=verbose")
        options.set_header("client-request-id", str(uuid.uuid4()))
        request.authentication_context.authenticate_request(options)
        response = request.transport.execute(options)
        if not response.ok:
            raise ClientRequestException.from_response(response)
        info = response.json()["d"]["GetContextWebInformation"]
        return str(info["FormDigestValue"]), float(info.get("FormDigestTimeoutSeconds") or 1800)

    def _query(
        self, ctx: ClientContext, build: Callable[[], T], passthrough: set[int] | None = None
    ) -> T:
        """Queue one query with ``build`` and run it; a retry builds it afresh. Errors with a
        status in ``passthrough`` reach the caller as they are."""

        def once() -> T:
            result = build()
            _execute(ctx)
            return result

        return self._retrying(ctx, once, passthrough or set())

    def _get(self, ctx: ClientContext, path: str) -> Response:
        return self._retrying(ctx, lambda: _send(ctx, RequestOptions(_api(ctx, path))))

    def _post(
        self, ctx: ClientContext, path: str, data: bytes, headers: dict[str, str]
    ) -> Response:
        def once() -> Response:
            request = RequestOptions(_api(ctx, path))
            request.method = HttpMethod.Post
            request.data = data
            for name, value in headers.items():
                request.set_header(name, value)
            return _send(ctx, request)

        return self._retrying(ctx, once)

    def _retrying(
        self, ctx: ClientContext, once: Callable[[], T], passthrough: set[int] | None = None
    ) -> T:
        call: _Call = self._local.call
        tries = lock_tries = 0
        while True:
            tries += 1
            try:
                return once()
            except (AgiiError, _NotFound):
                raise
            except Exception as exc:  # classified in _delay; anything unknown is re-raised
                status = _status(exc)
                if passthrough and status in passthrough:
                    raise
                if _digest_expired(exc):
                    ctx.pending_request().invalidate_digest()
                if status == 423:
                    lock_tries += 1
                delay = self._delay(call, exc, tries, lock_tries)
            self.stats.add("retries")
            self.stats.add("waited_seconds", delay)
            time.sleep(delay)

    def _delay(self, call: _Call, exc: Exception, tries: int, lock_tries: int) -> float:
        """How long to wait before the next try, or raise the error that ends the call."""
        policy, status = self.retry, _status(exc)
        remaining = call.deadline - time.monotonic()
        where = f"{call.action} on {self.url}"
        if isinstance(exc, ValueError) and "credentials" in str(exc).lower():
            raise AuthFailure(f"no usable credentials to {where}") from None
        if status in (401, 403) and not _digest_expired(exc):
            raise AuthFailure(
                f"SharePoint refused access ({status}) to {where}",
                hint="check the app's permissions on this site, or run `agii-sync login`",
            ) from None
        if status == 412:
            raise self._conflict("changed") from None
        if status == 404:  # only the digest request of a site that does not exist gets here
            raise ConfigError(f"site {self.url} not found (404)") from None
        if status == 423:
            self.stats.add("lock_waits")
            wait = _retry_after(exc) or policy.lock_wait_seconds
            if lock_tries >= policy.lock_attempts or wait > policy.lock_patience:
                raise self._locked() from None
            call.deadline += wait  # waiting for Excel is not throttling: keep the budget
            return wait
        if status in THROTTLE_STATUSES:
            self.stats.add("throttled")
            wait = _retry_after(exc)
            wait = policy.backoff(tries) if wait is None else wait
            if tries >= policy.max_attempts or wait > remaining:
                raise Throttled(
                    f"SharePoint kept answering {status} (too busy) to {where}",
                    hint="nothing was written; run again later",
                ) from None
            return wait
        if _is_connection_error(exc) or status in TRANSIENT_STATUSES or _digest_expired(exc):
            self.stats.add("connection_errors" if status is None else "server_errors")
            wait = policy.backoff(tries)
            if tries >= policy.max_attempts or wait > remaining:
                reason = f"SharePoint answered {status}" if status else "could not reach SharePoint"
                raise TemporaryFailure(
                    f"{reason} trying to {where}", hint="nothing was written; run again later"
                ) from None
            return wait
        if status is not None:
            raise TemporaryFailure(
                f"SharePoint answered {status} ({_error_type(exc)}) trying to {where}"
            ) from None
        raise exc

    def _locked(self) -> WorkbookLocked:
        return WorkbookLocked(
            f"the workbook on {self.url} is open for editing (in Excel or by another user); "
            "nothing was written",
            hint="ask everyone to close the workbook in Excel, then run again",
        )


def _api(ctx: ClientContext, path: str) -> str:
    return f"{ctx.service_root_url}/{path}"


def same_etag(a: str, b: str) -> bool:
    def normal(tag: str) -> str:
        return tag.strip().removeprefix("W/").strip('"').lower()

    return normal(a) == normal(b)


def _execute(ctx: ClientContext) -> None:
    try:
        ctx.execute_query()
    except ClientRequestException as exc:
        if _object_missing(exc):
            raise _NotFound() from None
        raise


def _send(ctx: ClientContext, request: RequestOptions) -> Response:
    """A request the object model has no method for, still through the context's pipeline."""
    try:
        return ctx.pending_request().execute_request_direct(request)
    except ClientRequestException as exc:
        if _object_missing(exc):
            raise _NotFound() from None
        raise


def _object_missing(exc: ClientRequestException) -> bool:
    """A 404 for a file or folder; a 404 on the form digest means the site itself is missing."""
    url = str(getattr(exc.response, "url", "") or "")
    return _status(exc) == 404 and not url.lower().rstrip("/").endswith("/_api/contextinfo")


def _as_int(value: Any) -> int:
    """The library hands some enumerations over as ``Enum`` members, others as plain ints."""
    value = getattr(value, "value", value)
    return int(value) if value is not None else 0


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) if response is not None else None


def _error_type(exc: BaseException) -> str:
    # The .NET type only: SharePoint's message can name a person (e.g. the lock holder).
    return getattr(exc, "error_type", None) or "no details"


def _digest_expired(exc: BaseException) -> bool:
    return _status(exc) == 403 and getattr(exc, "hresult", None) == DIGEST_EXPIRED_HRESULT


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, http_errors.SSLError):
        return False
    return isinstance(
        exc, http_errors.ConnectionError | http_errors.Timeout | http_errors.ChunkedEncodingError
    )


def _retry_after(exc: BaseException) -> float | None:
    """Retry-After in seconds: a number (fractions allowed) or an HTTP date."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


__all__ = [
    "CHUNK_SIZE",
    "USER_AGENT",
    "FormDigestCache",
    "RetryPolicy",
    "RetryStats",
    "SharePointConnection",
    "SharePointSite",
    "dummy_token",
]
