"""A SharePoint Online site (or the loopback emulator) through office365-rest-python-client.

Two APIs, each used only for what Microsoft documents (docs/sharepoint.md lists every request
with its Microsoft Learn page):

- Microsoft Graph (the package's ``GraphClient``) for the workbook's content: the library is a
  drive, the workbook a driveItem read with its ``eTag``; a replace goes through an upload
  session created with ``if-match`` (412 on a stale eTag), a new file through an upload
  session that fails when the name exists. A failed upload cancels its session. Sharing links
  are read from the driveItem permissions of the workbook and of each folder above it.
- SharePoint REST (the package's ``ClientContext``) for what only SharePoint knows: deleting
  old versions, role assignments (site, and library/folder/workbook where inheritance is
  broken), site collection admins, SharePoint group members.

One ``SharePointConnection`` holds one root context and one Graph client (token and HTTP
transport each); every site and every thread gets its own ``ctx.clone(site_url)``, which
shares that token and transport but has its own query queue and form digest.

- Retries are per HTTP request, inside one time budget per Site method call; waiting for a
  workbook that is open in Excel (423) has its own allowance (``RetryPolicy.for_lock_wait``).
  A checked-out workbook (423 with ``SPFileCheckOutException``, or a driveItem whose
  ``publication.level`` is ``checkout``) is not waited on: it needs a person.
- One form digest per connection for SharePoint REST (Microsoft documents it for
  cookie-authenticated requests; the library insists on sending one with OAuth too).
- A 403 is ``AccessRefused`` naming the Sites.Selected role the call needs.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from office365.graph_client import GraphClient
from office365.runtime.client_request_exception import ClientRequestException
from office365.runtime.http.http_method import HttpMethod
from office365.runtime.http.request_options import RequestOptions
from office365.runtime.transport.base import BaseTransport
from office365.sharepoint.client_context import ClientContext
from requests import Response
from requests import exceptions as http_errors

from .. import __version__
from ..errors import (
    AccessRefused,
    AgiiError,
    AuthFailure,
    ConfigError,
    EtagConflict,
    TemporaryFailure,
    Throttled,
    WorkbookCheckedOut,
    WorkbookLocked,
)
from ..siteurl import parse_http_site, site_kind
from .base import AccessSnapshot, Snapshot
from .graph import (
    GRAPH_RESOURCE,
    MAX_FRAGMENT,
    SHAREPOINT_APP_ID,
    RootedGraphClient,
    emulator_token,
    graph_root_for,
    item_path,
    path_segment,
)

USER_AGENT = f"NONISV|AgII|agii-sync/{__version__}"
CHUNK_SIZE = MAX_FRAGMENT  # above this, an upload session takes several PUTs
DIGEST_EXPIRED_HRESULT = "-2130575251"
DIGEST_REFRESH_MARGIN = 120.0  # seconds: renew the shared digest this long before it expires
LOCK_POLL_SECONDS = 5.0  # how often a locked workbook is tried again (at least)
THROTTLE_STATUSES = {429, 503}
TRANSIENT_STATUSES = {408, 500, 502, 504}
CHECKOUT_ERROR = "SPFileCheckOutException"
ACCESS_GRANT = "fullcontrol"

TokenProvider = Callable[[], dict[str, Any]]
T = TypeVar("T")


dummy_token = emulator_token(SHAREPOINT_APP_ID)  # SharePoint REST on the emulator
dummy_graph_token = emulator_token(GRAPH_RESOURCE)  # Graph on the emulator


def grant_hint(role: str) -> str:
    """What to ask the tenant's admin for when a call is refused (docs/sharepoint.md,
    "Least privilege")."""
    return (
        f"ask the tenant admin to grant the app the Sites.Selected role '{role}' on this site "
        "(both for Microsoft Graph and for SharePoint); `agii-sync doctor` shows what is allowed"
    )


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
        "uploads_cancelled",
        "etag_read_back",
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
    """One token and HTTP session per API (SharePoint REST, Graph) shared by every SharePoint
    site of a run."""

    def __init__(
        self,
        token_provider: TokenProvider,
        *,
        graph_token_provider: TokenProvider | None = None,
        retry: RetryPolicy | None = None,
        base_context: ClientContext | None = None,
        base_graph: GraphClient | None = None,
        chunk_size: int = MAX_FRAGMENT,
    ) -> None:
        self.token_provider = token_provider
        self.graph_token_provider = graph_token_provider
        self.retry = retry or RetryPolicy()
        self.stats = RetryStats()
        self.chunk_size = chunk_size
        self.digest = FormDigestCache()
        self._root = identify(base_context) if base_context is not None else None
        self._origin: str | None = None
        self._graph = identify_graph(base_graph) if base_graph is not None else None
        self._lock = threading.Lock()

    def site(self, site_url: str, workbook_path: str) -> SharePointSite:
        self._refuse_other_origin(site_url)
        return SharePointSite(
            site_url,
            workbook_path,
            self.token_provider,
            graph_token_provider=self.graph_token_provider,
            retry=self.retry,
            base_context=self._root_for(site_url),
            graph=self._graph_for(site_url),
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

    def _graph_for(self, site_url: str) -> GraphClient:
        with self._lock:
            if self._graph is None:
                self._graph = graph_client(site_url, self.graph_token_provider)
            return self._graph

    def close(self) -> None:
        with self._lock:
            if self._root is not None:
                self._root.close()


def graph_client(site_url: str, token_provider: TokenProvider | None) -> GraphClient:
    kind = site_kind(check_site_url(site_url))
    if token_provider is None:
        if kind != "emulator":
            raise ValueError("a SharePoint Online site needs a Graph token provider")
        token_provider = dummy_graph_token
    return identify_graph(RootedGraphClient(graph_root_for(site_url, kind), token_provider))


def identify_graph(client: GraphClient, user_agent: str = USER_AGENT) -> GraphClient:
    request = client.pending_request()
    if not isinstance(request.transport, _IdentifiedTransport):
        request.transport = _IdentifiedTransport(request.transport, user_agent)
    return client


class _NotFound(Exception):
    """A 404 for a file or folder: the caller decides what a missing object means."""


@dataclass
class _Call:
    """One call of a Site method: what it does (for messages), when its budget runs out
    (moved on by the time spent waiting for a locked workbook), and the grant a 403 asks for."""

    action: str
    deadline: float
    grant: str = "write"


@dataclass(frozen=True)
class DriveItem:
    """The Graph driveItem facts the backend uses."""

    id: str
    etag: str
    ctag: str | None
    download_url: str | None
    checked_out: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriveItem:
        publication = data.get("publication") or {}
        return cls(
            id=str(data["id"]),
            etag=str(data.get("eTag") or ""),
            ctag=data.get("cTag"),
            download_url=data.get("@microsoft.graph.downloadUrl"),
            checked_out=str(publication.get("level", "")).lower() == "checkout",
        )


class SharePointSite:
    """The workbook at ``workbook_path`` (relative to the site) on one SharePoint site.

    The first segment of ``workbook_path`` is the document library (its URL name, e.g.
    ``Shared Documents`` or ``Gedeelde documenten``); it must exist, it is never created.
    Content goes through Microsoft Graph (read with eTag, replace through an upload session
    with ``if-match``); versions and permissions through SharePoint REST and Graph (see
    docs/sharepoint.md for every request and its documentation).

    Every HTTP request is retried on its own (429/503 after ``Retry-After``, connection errors
    and 5xx with backoff, 423 a few times), within one time budget per method call. Writes are
    safe to repeat: they carry ``if-match`` or refuse to overwrite, so a repeated write whose
    first answer was lost ends in ``EtagConflict``, never in a lost update.
    """

    def __init__(
        self,
        site_url: str,
        workbook_path: str,
        token_provider: TokenProvider | None = None,
        *,
        graph_token_provider: TokenProvider | None = None,
        retry: RetryPolicy | None = None,
        base_context: ClientContext | None = None,
        graph: GraphClient | None = None,
        stats: RetryStats | None = None,
        chunk_size: int = MAX_FRAGMENT,
        digest: FormDigestCache | None = None,
    ) -> None:
        self.url = check_site_url(site_url)
        self.kind = site_kind(self.url)
        self.token_provider = token_provider
        self.graph_token_provider = graph_token_provider or (
            dummy_graph_token if self.kind == "emulator" else None
        )
        if base_context is None:
            if token_provider is None:
                raise ValueError("SharePointSite needs a token_provider or a base_context")
            base_context = root_context(self.url, token_provider)
        self._base = identify(base_context)
        self.graph = graph if graph is not None else graph_client(self.url, graph_token_provider)
        self.retry = retry or RetryPolicy()
        self.stats = stats or RetryStats()
        self.chunk_size = chunk_size
        self.digest = digest or FormDigestCache()
        parts = urlsplit(self.url)
        self.host = parts.hostname or ""
        self.site_path = parts.path.rstrip("/")
        self.workbook_path = workbook_path.strip().strip("/")
        self.file_url = f"{self.site_path}/{self.workbook_path}"
        self.parts = [part for part in self.workbook_path.split("/") if part]
        self.library, self.file_name = (
            (self.parts[0] if len(self.parts) > 1 else ""),
            self.parts[-1],
        )
        self.folder_parts = self.parts[1:-1]  # inside the library
        self._local = threading.local()
        self._resolved: dict[str, str] = {}
        self._resolve_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SharePointSite({self.url!r}, {self.workbook_path!r})"

    # --- the Site protocol -------------------------------------------------------------------

    def read(self) -> Snapshot:
        return self._call("read the workbook", self._read, grant="read")

    def write(self, content: bytes, if_match: str | None) -> str:
        if if_match is None:
            return self._call("create the workbook", lambda ctx: self._create(ctx, content))
        return self._call("write the workbook", lambda ctx: self._replace(ctx, content, if_match))

    def delete_old_versions(self) -> int:
        return self._call("delete old versions", self._delete_versions)

    def read_access(self) -> AccessSnapshot:
        from .sharepoint_access import AccessReader

        return self._call(
            "read who has access", lambda ctx: AccessReader(self, ctx).read(), grant=ACCESS_GRANT
        )

    def sibling(self, workbook_path: str) -> SharePointSite:
        """Another file on the same site, over the same connection (``doctor``'s scratch)."""
        return SharePointSite(
            self.url,
            workbook_path,
            self.token_provider,
            graph_token_provider=self.graph_token_provider,
            retry=self.retry,
            base_context=self._base,
            graph=self.graph,
            stats=RetryStats(),
            chunk_size=self.chunk_size,
            digest=self.digest,
        )

    def call(
        self, action: str, operation: Callable[[ClientContext], T], *, grant: str = "write"
    ) -> T:
        """Run ``operation`` like a Site method (retries, budget, errors); for ``doctor``."""
        return self._call(action, operation, grant=grant)

    def delete_file(self, ctx: ClientContext) -> bool:
        """``DELETE /drives/{drive}/items/{id}`` of this file (``doctor``'s scratch file only);
        False when there is none."""
        item = self.workbook_item(ctx)
        if item is None:
            return False
        self._graph(ctx, "DELETE", f"drives/{self.drive_id(ctx)}/items/{item.id}")
        return True

    # --- the library (Graph drive) -----------------------------------------------------------

    def drive_id(self, ctx: ClientContext) -> str:
        """The Graph drive of the workbook's library: ``GET /sites/{host}:/{path}`` then
        ``GET /sites/{id}/drives``, once per site. A missing library is a config error."""
        with self._resolve_lock:
            if "drive" in self._resolved:
                return self._resolved["drive"]
        if not self.library:
            raise ConfigError(
                f"[workbook] path {self.workbook_path!r} is not inside a document library",
                hint="start the path with the library, e.g. 'Gedeelde documenten/…'",
            )
        site = self._graph_json(ctx, "GET", f"sites/{self.host}:{quote(self.site_path)}")
        drives = self._graph_json(ctx, "GET", f"sites/{site['id']}/drives?$select=id,name,webUrl")
        names = {}
        for drive in drives.get("value", []):
            url_name = unquote(urlsplit(str(drive.get("webUrl", ""))).path.rstrip("/"))
            names[url_name.rpartition("/")[2]] = str(drive["id"])
        for url_name, drive_id in names.items():
            if url_name.casefold() == self.library.casefold():
                with self._resolve_lock:
                    self._resolved["drive"] = drive_id
                return drive_id
        listed = ", ".join(repr(n) for n in sorted(names)) or "none"
        raise ConfigError(
            f"the document library {self.library!r} of [workbook] path does not exist on "
            f"{self.url}; its libraries: {listed}",
            hint="correct [workbook] path in the config; agii-sync never creates a library",
        )

    def item(self, ctx: ClientContext, parts: list[str]) -> DriveItem | None:
        """``GET /drives/{drive}/root:/{path}``: the driveItem at ``parts`` inside the library
        (the library's root for no parts), or None when there is none."""
        drive = self.drive_id(ctx)
        where = f"root:/{item_path(parts)}" if parts else "root"
        try:
            return DriveItem.from_json(self._graph_json(ctx, "GET", f"drives/{drive}/{where}"))
        except _NotFound:
            return None

    def workbook_item(self, ctx: ClientContext) -> DriveItem | None:
        return self.item(ctx, [*self.folder_parts, self.file_name])

    # --- read --------------------------------------------------------------------------------

    def _read(self, ctx: ClientContext) -> Snapshot:
        # The eTag is read before the bytes: if a write slips in between, the eTag is the older
        # one and our next write fails with a conflict instead of overwriting the newer file.
        item = self.workbook_item(ctx)
        if item is None:
            return Snapshot(None, None)
        self._remember(item)
        return Snapshot(self.download(ctx, item), item.etag)

    def download(self, ctx: ClientContext, item: DriveItem) -> bytes:
        """The ``@microsoft.graph.downloadUrl`` of the item (pre-authenticated, so sent without
        a token), else ``GET /drives/{drive}/items/{id}/content``."""
        url = item.download_url
        if url:
            return self._retrying(ctx, lambda: self._unauthenticated("GET", url).content)
        path = f"drives/{self.drive_id(ctx)}/items/{item.id}/content"
        return self._graph(ctx, "GET", path).content

    def _remember(self, item: DriveItem) -> None:
        self._resolved["item"] = item.id

    # --- write -------------------------------------------------------------------------------

    def _replace(self, ctx: ClientContext, content: bytes, if_match: str) -> str:
        """``createUploadSession`` with ``if-match`` (412 when the workbook changed since it
        was read) and ``deferCommit``; the bytes go up; then, as one step retried together,
        the eTag is read once more and the session committed (POST to the upload URL) only
        while it still matches. ``doctor`` proves that the site also refuses the commit of a
        session whose file changed meanwhile (docs/sharepoint.md, "The commit window")."""
        upload_url = self.open_replace_session(ctx, if_match)
        with self._cancelled_on_failure(upload_url):
            self._put_bytes(ctx, upload_url, content)
            response = self.commit(ctx, upload_url, if_match)
        return self._etag_after(ctx, response)

    def open_replace_session(self, ctx: ClientContext, if_match: str) -> str:
        """The upload URL of a replace session created with ``if-match``."""
        item_id = self._resolved.get("item")
        if item_id is None:
            item = self.workbook_item(ctx)
            if item is None:
                raise self._conflict("was deleted")
            item_id = item.id
        path = f"drives/{self.drive_id(ctx)}/items/{item_id}/createUploadSession"
        body = {"item": {"@microsoft.graph.conflictBehavior": "replace"}, "deferCommit": True}
        try:
            session = self._graph_json(
                ctx, "POST", path, body, {"if-match": if_match}, checked_out=self._checked_out
            )
        except _NotFound:
            self._resolved.pop("item", None)
            raise self._conflict("was deleted") from None
        return str(session["uploadUrl"])

    def commit(self, ctx: ClientContext, upload_url: str, if_match: str | None) -> Response:
        """Re-read the eTag (when ``if_match``), then ``POST {uploadUrl}``; a retry repeats
        both, so the commit always follows a fresh read."""

        def once() -> Response:
            if if_match is not None:
                current = self.workbook_item(ctx)
                if current is None or current.etag != if_match:
                    raise self._conflict("changed")
            return self._unauthenticated("POST", upload_url, b"")

        return self._retrying(ctx, once, checked_out=self._checked_out)

    def _create(self, ctx: ClientContext, content: bytes) -> str:
        """An upload session for a new name that fails (409) when the name exists."""
        parent = self._ensure_folder(ctx)
        name = path_segment(self.file_name)
        path = f"drives/{self.drive_id(ctx)}/items/{parent}:/{name}:/createUploadSession"
        body = {"item": {"@microsoft.graph.conflictBehavior": "fail"}}
        try:
            session = self._graph_json(ctx, "POST", path, body, passthrough={409})
        except ClientRequestException as exc:
            if _status(exc) == 409:
                raise self._conflict("was created by someone else") from None
            raise
        upload_url = session["uploadUrl"]
        try:
            with self._cancelled_on_failure(upload_url):
                response = self._put_bytes(ctx, upload_url, content)
        except ClientRequestException as exc:
            if _status(exc) == 409:
                raise self._conflict("was created by someone else") from None
            raise
        return self._etag_after(ctx, response)

    def put_bytes(self, ctx: ClientContext, upload_url: str, content: bytes) -> Response:
        return self._put_bytes(ctx, upload_url, content)

    def cancel_upload(self, upload_url: str) -> None:
        self._cancel_upload(upload_url)

    def _put_bytes(self, ctx: ClientContext, upload_url: str, content: bytes) -> Response:
        """PUT the bytes to the upload session: one request up to the documented fragment
        limit, fragments of a multiple of 320 KiB above it."""
        total, response = len(content), None
        for start in range(0, max(total, 1), self.chunk_size):
            chunk = content[start : start + self.chunk_size]
            headers = {"Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{total}"}

            def put(part: bytes = chunk, range_: dict[str, str] = headers) -> Response:
                return self._unauthenticated("PUT", upload_url, part, range_)

            response = self._retrying(ctx, put, passthrough={409})
        assert response is not None
        return response

    @contextlib.contextmanager
    def _cancelled_on_failure(self, upload_url: str) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._cancel_upload(upload_url)
            raise

    def _etag_after(self, ctx: ClientContext, response: Response) -> str:
        item = DriveItem.from_json(response.json())
        if not item.etag:
            # No eTag in the answer: read it back (a later writer's eTag would make our next
            # write fail with a conflict, never overwrite theirs).
            self.stats.add("etag_read_back")
            found = self.workbook_item(ctx)
            if found is None:
                raise self._conflict("was deleted")
            item = found
        self._remember(item)
        return item.etag

    def _cancel_upload(self, upload_url: str) -> None:
        """``DELETE {uploadUrl}``: best effort (an abandoned session expires by itself)."""
        self.stats.add("uploads_cancelled")
        with contextlib.suppress(Exception):  # cleanup must not hide the error behind it
            self._unauthenticated("DELETE", upload_url)

    def _ensure_folder(self, ctx: ClientContext) -> str:
        """The id of the workbook's folder, creating missing folders inside the library (never
        the library itself): ``POST /drives/{drive}/items/{parent}/children``."""
        parts = self.folder_parts
        found = self.item(ctx, parts)
        if found is not None:
            return found.id
        existing = len(parts) - 1
        parent = None
        while existing >= 0:
            parent = self.item(ctx, parts[:existing])
            if parent is not None:
                break
            existing -= 1
        assert parent is not None  # the library's root exists: drive_id found it
        folder_id = parent.id
        for depth in range(existing, len(parts)):
            folder_id = self._add_folder(ctx, folder_id, parts[: depth + 1])
        return folder_id

    def _add_folder(self, ctx: ClientContext, parent_id: str, parts: list[str]) -> str:
        path = f"drives/{self.drive_id(ctx)}/items/{parent_id}/children"
        body = {"name": parts[-1], "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}
        try:
            return str(self._graph_json(ctx, "POST", path, body, passthrough={409})["id"])
        except ClientRequestException as exc:
            if _status(exc) != 409:
                raise
        made = self.item(ctx, parts)  # someone else made it meanwhile
        if made is None:
            raise TemporaryFailure(f"could not create a folder of the workbook on {self.url}")
        return made.id

    def _checked_out(self, ctx: ClientContext) -> bool:
        """After a 423: is the workbook checked out (``publication.level``), rather than open
        for co-authoring? A check-out does not clear by waiting."""
        try:
            item = self.workbook_item(ctx)
        except AgiiError:
            return False
        return item is not None and item.checked_out

    def _conflict(self, what: str) -> EtagConflict:
        return EtagConflict(
            f"the workbook on {self.url} {what} since it was read",
            hint="run again: agii-sync reads the workbook again and reapplies its change",
        )

    # --- versions (SharePoint REST) ------------------------------------------------------------

    def _delete_versions(self, ctx: ClientContext) -> int:
        try:
            versions = self._query(ctx, lambda: self._file(ctx).versions.get())
        except _NotFound:
            return 0
        if len(versions):
            self._query(ctx, lambda: self._file(ctx).versions.delete_all())
        return len(versions)

    def _file(self, ctx: ClientContext) -> Any:
        return ctx.web.get_file_by_server_relative_path(self.file_url)

    # --- requests and the retry loop ---------------------------------------------------------

    def _context(self) -> ClientContext:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._base.clone(self.url)
            self._local.ctx = ctx
        return ctx

    def _call(
        self, action: str, operation: Callable[[ClientContext], T], *, grant: str = "write"
    ) -> T:
        self.stats.add("calls")
        self._local.call = _Call(action, time.monotonic() + self.retry.budget_seconds, grant)
        ctx = self._context()
        try:
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
        """Queue one SharePoint REST query with ``build`` and run it; a retry builds it afresh.
        Errors with a status in ``passthrough`` reach the caller as they are."""
        self._ensure_digest(ctx)

        def once() -> T:
            result = build()
            _execute(ctx)
            return result

        return self._retrying(ctx, once, passthrough or set())

    def sp_get(self, ctx: ClientContext, path: str) -> dict[str, Any]:
        """``GET {site}/_api/{path}``, the ``d`` of its odata=verbose answer."""
        self._ensure_digest(ctx)
        response = self._retrying(ctx, lambda: _send(ctx, RequestOptions(_api(ctx, path))))
        answer: dict[str, Any] = response.json()["d"]
        return answer

    def _graph(
        self,
        ctx: ClientContext,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        passthrough: set[int] | None = None,
        checked_out: Callable[[ClientContext], bool] | None = None,
    ) -> Response:
        """One Graph request (``path`` below the v1.0 root, or a full URL) through the Graph
        client's authentication and transport, retried like every request."""
        request_client = self.graph.pending_request()
        url = path if "://" in path else f"{request_client.service_root_url}/{path}"

        def once() -> Response:
            options = RequestOptions(url)
            options.method = HttpMethod(method)
            options.set_header("Accept", "application/json")
            if body is not None:
                options.set_header("Content-Type", "application/json")
                options.data = body
            for name, value in (headers or {}).items():
                options.set_header(name, value)
            try:
                return request_client.execute_request_direct(options)
            except ClientRequestException as exc:
                if _status(exc) == 404:
                    raise _NotFound() from None
                raise

        return self._retrying(ctx, once, passthrough, checked_out)

    def _graph_json(self, ctx: ClientContext, *args: Any, **options: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self._graph(ctx, *args, **options).json()
        return answer

    def graph_get(self, ctx: ClientContext, path: str) -> dict[str, Any]:
        return self._graph_json(ctx, "GET", path)

    def _unauthenticated(
        self,
        method: str,
        url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """A request to a pre-authenticated URL (upload session, download URL): Microsoft asks
        not to send the bearer token there."""
        options = RequestOptions(url)
        options.method = HttpMethod(method)
        if data is not None:
            options.data = data
        for name, value in (headers or {}).items():
            options.set_header(name, value)
        response = self.graph.pending_request().transport.execute(options)
        if not response.ok:
            raise ClientRequestException.from_response(response)
        answer: Response = response
        return answer

    def _retrying(
        self,
        ctx: ClientContext,
        once: Callable[[], T],
        passthrough: set[int] | None = None,
        checked_out: Callable[[ClientContext], bool] | None = None,
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
                    if _checked_out_error(exc) or (
                        lock_tries == 1 and checked_out is not None and checked_out(ctx)
                    ):
                        raise self._checked_out_failure() from None
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
        if status == 401:
            raise AuthFailure(
                f"SharePoint refused the sign-in (401) to {where}",
                hint="run `agii-sync doctor` to see which token was refused, or `agii-sync login`",
            ) from None
        if status == 403 and not _digest_expired(exc):
            raise AccessRefused(
                f"SharePoint refused access (403) to {where}",
                grant=call.grant,
                hint=grant_hint(call.grant),
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
            after = _retry_after(exc)
            wait = policy.backoff(tries) if after is None else after
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

    def _checked_out_failure(self) -> WorkbookCheckedOut:
        return WorkbookCheckedOut(
            f"the workbook on {self.url} is checked out; nothing was written (a check-out "
            "does not end by waiting)",
            hint="ask whoever checked it out to check it in or discard the check-out "
            "(library → … → Check in), then run again",
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


def _checked_out_error(exc: BaseException) -> bool:
    """SharePoint REST names a check-out in the error type of its 423."""
    return CHECKOUT_ERROR.lower() in str(getattr(exc, "error_type", "") or "").lower()


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
    "dummy_graph_token",
    "dummy_token",
]
