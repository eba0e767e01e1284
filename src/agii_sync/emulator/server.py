"""The HTTP side of the emulator: routing, latency, fault injection, stats, control endpoints."""

from __future__ import annotations

import json
import math
import random
import socket
import ssl
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, unquote

from ..siteurl import is_loopback
from .api import (
    JSON_TYPE,
    UNSUPPORTED_CODE,
    Api,
    ApiRequest,
    Reply,
    Unsupported,
    error_reply,
)
from .graph import GraphApi, GraphError, graph_error
from .odata import ODataPathError, parse_path
from .store import SiteStore, StoreError
from .tenant import GRAPH_AUDIENCES, SHAREPOINT_AUDIENCES, LockRegistry, Tenant, token_audience

API_PREFIX = "/sites/"
GRAPH_PREFIX = "/v1.0/"
UPLOAD_PREFIX = "/_upload/"
DOWNLOAD_PREFIX = "/_download/"
CONTROL_PREFIX = "/_emulator/"
UNAUTHORIZED_CODE = "-2147024891, System.UnauthorizedAccessException"


@dataclass
class Settings:
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    retry_after: float = 1.0
    verbose: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        for name in ("latency_ms", "fault_rate", "retry_after"):
            if name in changes:
                setattr(self, name, float(changes[name]))

    def as_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "fault_rate": self.fault_rate,
            "retry_after": self.retry_after,
        }


class Stats:
    """Request counts per path kind and method, injected faults and early retries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests: dict[str, Counter[str]] = defaultdict(Counter)
            self.responses: Counter[str] = Counter()
            self.faults: Counter[str] = Counter()
            self.user_agents: Counter[str] = Counter()
            self.early_retries = 0

    def request(self, kind: str, method: str, user_agent: str) -> None:
        with self._lock:
            self.requests[kind][method] += 1
            self.user_agents[user_agent] += 1

    def response(self, status: int) -> None:
        with self._lock:
            self.responses[str(status)] += 1

    def fault(self, status: int) -> None:
        with self._lock:
            self.faults[str(status)] += 1

    def early_retry(self) -> None:
        with self._lock:
            self.early_retries += 1

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {
                    kind: dict(methods) for kind, methods in sorted(self.requests.items())
                },
                "total_requests": sum(sum(m.values()) for m in self.requests.values()),
                "responses": dict(sorted(self.responses.items())),
                "faults_injected": dict(self.faults),
                "faults_total": sum(self.faults.values()),
                "early_retries": self.early_retries,
                "user_agents": dict(self.user_agents),
            }


class Throttle:
    """Random 429/503 answers, and a memory of who was told to wait for how long.

    A client that repeats the same request (same address, method and path) before its
    Retry-After has passed gets 429 again and is counted as an early retry.
    """

    def __init__(self, settings: Settings, stats: Stats, seed: int | None) -> None:
        self.settings = settings
        self.stats = stats
        self._rng = random.Random(seed)
        self._until: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def check(self, key: tuple[str, str, str]) -> Reply | None:
        now = time.monotonic()
        with self._lock:
            until = self._until.get(key)
            if until is not None and now < until:
                self.stats.early_retry()
                self.stats.fault(429)
                return self._reply(429, until - now)
            self._until.pop(key, None)
            if self._rng.random() >= self.settings.fault_rate:
                return None
            status = self._rng.choice((429, 503))
            self._until[key] = now + self.settings.retry_after
        self.stats.fault(status)
        return self._reply(status, self.settings.retry_after)

    def _reply(self, status: int, wait: float) -> Reply:
        if status == 429:
            code, message = (
                "-2147024860, Microsoft.SharePoint.SPQueryThrottledException",
                "Throttled.",
            )
        else:
            code, message = "-1, System.Web.HttpException", "Server Too Busy."
        reply = error_reply(status, code, message)
        reply.headers["Retry-After"] = self._format(wait)
        return reply

    def _format(self, wait: float) -> str:
        if float(self.settings.retry_after).is_integer():
            return str(max(1, math.ceil(wait)))  # the RFC form, what SharePoint sends
        return f"{math.ceil(wait * 1000) / 1000:.3f}"  # rounded up: never invite an early retry


class Emulator:
    """The emulator's state, shared by every handler thread."""

    def __init__(
        self,
        root: Path,
        *,
        settings: Settings | None = None,
        locks: list[str] | None = None,
        seed: int | None = None,
        quirks: list[str] | None = None,
    ) -> None:
        self.root = root
        self.settings = settings or Settings()
        self.stats = Stats()
        self.locks = LockRegistry(locks)
        self.tenant = Tenant(self.locks, frozenset(quirks or ()))
        self.api = Api(self.tenant)
        self.graph = GraphApi(self, self.tenant)
        self.throttle = Throttle(self.settings, self.stats, seed)
        self._sites: dict[str, SiteStore] = {}
        self._sites_lock = threading.Lock()
        self.base_url = ""
        self.host = "127.0.0.1"
        self._server: ThreadingHTTPServer | None = None

    def site(self, name: str) -> SiteStore:
        """The site called ``name``, made on first use; a name that would leave ``--root`` is
        a 404 (StoreError)."""
        with self._sites_lock:
            key = name.lower()
            if key not in self._sites:
                self._sites[key] = SiteStore(self.root, name, self.tenant.libraries)
            return self._sites[key]

    def bind(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> str:
        """Listen on ``host``; with ``tls`` (a server context) on https, so that a site looks
        like SharePoint Online (``https://``) to agii-sync, e.g. in sign-in tests."""
        if not is_loopback(host):
            raise ValueError(f"the emulator only listens on a loopback address, not {host}")
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.emulator = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        bound_port = self._server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.host = host
        self.base_url = f"{'https' if tls else 'http'}://{shown}:{bound_port}"
        return self.base_url

    def serve_forever(self) -> None:
        assert self._server is not None, "call bind() first"
        self._server.serve_forever(poll_interval=0.05)  # stop() waits up to one interval

    def start(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> str:
        """Bind and serve on a daemon thread (for in-process use, e.g. ``agii-sync demo``)."""
        url = self.bind(host, port, tls=tls)
        threading.Thread(target=self.serve_forever, name="agii-emulator", daemon=True).start()
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Emulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: Emulator


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agii-sync-emulator"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def emulator(self) -> Emulator:
        return self.server.emulator

    @property
    def request_headers(self) -> Mapping[str, str]:
        """The request's headers: an ``email.message.Message``, read as a (case-insensitive)
        mapping."""
        return cast(Mapping[str, str], self.headers)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.emulator.settings.verbose:
            sys.stderr.write(f"emulator: {format % args}\n")

    def _handle(self, verb: str) -> None:
        body = self._read_body()
        raw_path, _, raw_query = self.path.partition("?")
        try:
            lowered = raw_path.lower()
            if lowered.startswith(CONTROL_PREFIX):
                reply = self._control(verb, lowered, body)
            elif lowered.startswith((GRAPH_PREFIX, UPLOAD_PREFIX, DOWNLOAD_PREFIX)):
                reply = self._graph(verb, raw_path, raw_query, body)
            else:
                reply = self._api(verb, raw_path, raw_query, body)
        except Exception as exc:  # a bug must not kill the connection silently
            reply = error_reply(500, "-2146233088, System.Exception", type(exc).__name__)
        self._send(reply)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, reply: Reply) -> None:
        self.emulator.stats.response(reply.status)
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)

    # --- the SharePoint API ------------------------------------------------------------------

    def _api(self, verb: str, raw_path: str, raw_query: str, body: bytes) -> Reply:
        emulator = self.emulator
        if emulator.settings.latency_ms:
            time.sleep(emulator.settings.latency_ms / 1000)
        path = unquote(raw_path)
        site_name, sep, rest = path[len(API_PREFIX) :].partition("/")
        if not path.lower().startswith(API_PREFIX) or not site_name or not sep:
            return error_reply(404, UNSUPPORTED_CODE, "Not a site API path.")
        if not (rest.lower() == "_api" or rest.lower().startswith("_api/")):
            return error_reply(404, UNSUPPORTED_CODE, "Not a site API path.")
        method = self.headers.get("X-HTTP-Method", verb).upper()
        kind, run = self._resolve(site_name, rest[4:], method, raw_query, body)
        emulator.stats.request(kind, verb, self.headers.get("User-Agent", ""))
        origin = emulator.base_url
        refusal = self._refuse(verb, raw_path, raw_query, (*SHAREPOINT_AUDIENCES, origin))
        if refusal is not None:
            return refusal
        try:
            return run()
        except StoreError as exc:
            return error_reply(exc.status, exc.code, exc.message)
        except Unsupported as exc:
            return error_reply(400, UNSUPPORTED_CODE, f"Not supported by the emulator: {exc}")

    def _resolve(
        self, site_name: str, rest: str, method: str, raw_query: str, body: bytes
    ) -> tuple[str, Callable[[], Reply]]:
        try:
            store = self.emulator.site(site_name)
        except StoreError as exc:
            reply = error_reply(exc.status, exc.code, exc.message)
            return "unsupported", lambda: reply
        site_url = f"{self.emulator.base_url}{store.server_relative_root}"
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        try:
            req = ApiRequest(method, parse_path(rest), query, self.request_headers, body, site_url)
            operation = self.emulator.api.operation(store, req)
        except (ODataPathError, Unsupported) as exc:
            message = f"Not supported by the emulator: {exc}"
            return "unsupported", lambda: error_reply(400, UNSUPPORTED_CODE, message)
        return operation.kind, operation.run

    # --- Microsoft Graph ---------------------------------------------------------------------

    def _graph(self, verb: str, raw_path: str, raw_query: str, body: bytes) -> Reply:
        emulator = self.emulator
        if emulator.settings.latency_ms:
            time.sleep(emulator.settings.latency_ms / 1000)
        lowered = raw_path.lower()
        agent = self.headers.get("User-Agent", "")
        try:
            if lowered.startswith(UPLOAD_PREFIX):
                kinds = {"PUT": "upload_put", "POST": "upload_commit", "DELETE": "upload_cancel"}
                emulator.stats.request(kinds.get(verb, "unsupported"), verb, agent)
                refusal = emulator.throttle.check((self.client_address[0], verb, raw_path))
                session = raw_path[len(UPLOAD_PREFIX) :]
                return refusal or emulator.graph.upload(verb, session, self.request_headers, body)
            if lowered.startswith(DOWNLOAD_PREFIX):
                emulator.stats.request("download", verb, agent)
                return self._download(raw_path[len(DOWNLOAD_PREFIX) :])
            path = raw_path[len(GRAPH_PREFIX) :]
            try:
                operation = emulator.graph.operation(verb, path, self.request_headers, body)
            except GraphError as exc:
                emulator.stats.request("unsupported", verb, agent)
                return graph_error(exc.status, exc.code, exc.message)
            emulator.stats.request(operation.kind, verb, agent)
            refusal = self._refuse(verb, raw_path, raw_query, GRAPH_AUDIENCES, graph=True)
            return refusal or operation.run()
        except GraphError as exc:
            return graph_error(exc.status, exc.code, exc.message)
        except StoreError as exc:
            return graph_error(
                exc.status, "itemNotFound" if exc.status == 404 else "invalidRequest", exc.message
            )

    def _download(self, rest: str) -> Reply:
        """A pre-authenticated download URL: ``/_download/{site}/{unique id}``."""
        site, _, unique_id = unquote(rest).rpartition("/")
        store = self.emulator.site(site)
        content, _ = store.read(store.file_by_id(unique_id))
        return Reply(200, content, "application/octet-stream")

    def _refuse(
        self,
        verb: str,
        raw_path: str,
        raw_query: str,
        audiences: tuple[str, ...],
        *,
        graph: bool = False,
    ) -> Reply | None:
        """Authentication (a bearer token for this API's audience), the odata flavour, then
        injected faults."""
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        if not token or token == "None":
            return self._unauthorized(graph, "no bearer token")
        if token.startswith("denied"):
            if graph:
                return graph_error(403, "accessDenied", "Access denied")
            return error_reply(403, UNAUTHORIZED_CODE, "Access denied.")
        audience = token_audience(auth)
        if audience is None:
            return self._unauthorized(graph, "the token is not a JWT")
        if audience not in audiences:
            return self._unauthorized(graph, "Invalid audience")
        accept = self.headers.get("Accept", "")
        if graph:
            return self.emulator.throttle.check(
                (self.client_address[0], verb, f"{raw_path}?{raw_query}")
            )
        if "odata=" in accept and "odata=verbose" not in accept:
            return error_reply(406, UNSUPPORTED_CODE, "The emulator only speaks odata=verbose.")
        key = (self.client_address[0], verb, f"{raw_path}?{raw_query}")
        return self.emulator.throttle.check(key)

    def _unauthorized(self, graph: bool, why: str) -> Reply:
        if graph:
            message = f"Access token validation failure. {why}."
            return graph_error(401, "InvalidAuthenticationToken", message)
        reply = error_reply(401, UNAUTHORIZED_CODE, f"Access denied: {why}.")
        reply.headers["WWW-Authenticate"] = (
            'Bearer realm="emulator", client_id="00000003-0000-0ff1-ce00-000000000000"'
        )
        return reply

    # --- control endpoints for tests ---------------------------------------------------------

    def _control(self, verb: str, path: str, body: bytes) -> Reply:
        emulator = self.emulator
        name = path[len(CONTROL_PREFIX) :].rstrip("/")
        if verb == "GET" and name == "stats":
            return _plain_json(emulator.stats.as_json())
        if verb == "POST" and name == "stats/reset":
            emulator.stats.reset()
            return _plain_json({"ok": True})
        if verb == "GET" and name == "locks":
            return _plain_json({"locks": emulator.locks.urls()})
        if verb == "GET" and name == "config":
            return _plain_json(
                {**emulator.settings.as_json(), "quirks": sorted(emulator.tenant.quirks)}
            )
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return _plain_json({"error": "body is not JSON"}, 400)
        if verb == "POST" and name in ("lock", "unlock") and isinstance(data.get("url"), str):
            action = emulator.locks.lock if name == "lock" else emulator.locks.unlock
            action(data["url"])
            return _plain_json({"locks": emulator.locks.urls()})
        if verb == "POST" and name == "config":
            emulator.settings.update(data)
            return _plain_json(emulator.settings.as_json())
        return _plain_json({"error": f"unknown control endpoint {verb} {path}"}, 404)


def _plain_json(data: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data).encode(), "application/json")


__all__ = ["Emulator", "Settings", "is_loopback", "JSON_TYPE"]
