"""Microsoft Graph through office365-rest-python-client's ``GraphClient``, and access tokens.

SharePoint REST does not document ``If-Match`` on a file's ``$value`` PUT; Microsoft Graph
documents it on ``createUploadSession`` (412 on a stale eTag or cTag). So the workbook's
content goes through Graph, everything else that only SharePoint knows (site users and groups,
role assignments, version deletion) through SharePoint REST. Every request, with the Microsoft
Learn page that documents it, is listed in docs/sharepoint.md.

The emulator serves Graph at ``http://127.0.0.1:PORT/v1.0``: ``RootedGraphClient`` is the
library's ``GraphClient`` with its service root moved there (the library hard-codes
``graph.microsoft.com``). Requests are sent with ``execute_request_direct``, so each one is
exactly the documented HTTP request, with the client's authentication and transport.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from office365.graph_client import GraphClient
from office365.graph_request import GraphRequest

from ..siteurl import test_seam_origin

GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
GRAPH_RESOURCE = "https://graph.microsoft.com"
# For tests only: Microsoft Graph on a loopback https address (the emulator behind the https
# test setup) instead of graph.microsoft.com; the tokens stay Graph's (audience and scope).
TEST_GRAPH_HOST_ENV = "AGII_SYNC_TEST_GRAPH_HOST"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
SHAREPOINT_APP_ID = "00000003-0000-0ff1-ce00-000000000000"
# "driveItem: createUploadSession": each PUT to the upload URL must be under 60 MiB, and
# fragments of a file sent in several PUTs must be multiples of 320 KiB.
FRAGMENT_UNIT = 320 * 1024
MAX_FRAGMENT = 192 * FRAGMENT_UNIT - FRAGMENT_UNIT  # 59.7 MiB: under 60 MiB, a 320 KiB multiple

TokenProvider = Callable[[], dict[str, Any]]


class _RootedGraphRequest(GraphRequest):
    def __init__(self, root: str) -> None:
        super().__init__()
        self._root = root.rstrip("/")

    @property
    def service_root_url(self) -> str:
        return self._root


class RootedGraphClient(GraphClient):
    """``GraphClient`` whose requests go to ``root`` (Graph itself, or the emulator)."""

    def __init__(self, root: str, token_provider: TokenProvider) -> None:
        super().__init__(token_callback=token_provider)
        self._root = root

    def pending_request(self) -> GraphRequest:
        if self._pending_request is None:
            request = _RootedGraphRequest(self._root)
            request.with_access_token(self._token_callback)  # type: ignore[arg-type]
            self._pending_request = request
        return self._pending_request  # type: ignore[return-value]


def graph_root_for(site_url: str, kind: str) -> str:
    """Graph's v1.0 root; for an emulator site, the emulator's own ``/v1.0``; for a test of
    SharePoint Online's sign-in, the loopback Graph ``AGII_SYNC_TEST_GRAPH_HOST`` names."""
    if kind != "emulator":
        test_host = test_seam_origin(TEST_GRAPH_HOST_ENV)
        return GRAPH_ROOT if test_host is None else f"{test_host}/v1.0"
    parts = urlsplit(site_url)
    return f"{parts.scheme}://{parts.netloc}/v1.0"


def path_segment(text: str) -> str:
    """One percent-encoded path segment for Graph's ``root:/{path}`` addressing."""
    return quote(text, safe="")


def item_path(parts: list[str]) -> str:
    return "/".join(path_segment(part) for part in parts)


# --- tokens ----------------------------------------------------------------------------------


def emulator_token(audience: str, roles: tuple[str, ...] = ("Sites.Selected",)) -> TokenProvider:
    """A token for the emulator: an unsigned JWT whose ``aud`` and ``roles`` it checks, as
    SharePoint and Graph check those of a real token."""
    claims = {"aud": audience, "roles": list(roles), "appid": "agii-sync-emulator"}
    token = ".".join((_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""))

    def provide() -> dict[str, Any]:
        return {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    return provide


def token_claims(access_token: str) -> dict[str, Any]:
    """The claims of a JWT access token, read without checking its signature: only to tell
    the user which audience and roles a token carries (``doctor``); never to trust it."""
    try:
        payload = access_token.split(".")[1]
        data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(data)
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
