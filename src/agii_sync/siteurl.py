"""Site URLs: one parser decides both what the config allows and where a connection goes.

A URL that two parsers could read differently (a backslash, a user name, an `@`, a percent-
encoded host, spaces, non-ASCII) is refused outright rather than interpreted: the host that
passed the checks must be the host the HTTP library connects to (docs/safety.md, "Data goes
only where the config says"). Every site connection is then built from the parsed parts, never
from the text of the config.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

SiteKind = Literal["file", "sharepoint", "emulator"]

# RFC 1123 host names, and IP literals (checked with ipaddress) — nothing else.
HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_NAME = re.compile(rf"^{HOST_LABEL}(?:\.{HOST_LABEL})*$")
URL_TEXT = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no space
FORBIDDEN_IN_PATH = set('\\"*:<>?|') | {chr(c) for c in range(32)} | {"\x7f"}


@dataclass(frozen=True)
class HttpSite:
    """An ``https://`` (SharePoint Online) or loopback ``http://`` (emulator) site."""

    kind: SiteKind
    scheme: str
    host: str  # lower case
    port: int | None
    path: str  # decoded, no trailing slash, e.g. /sites/pnt-genk

    @property
    def origin(self) -> str:
        """Where a token for this site may go: scheme, host and port, nothing else."""
        default = {"https": 443, "http": 80}[self.scheme]
        port = "" if self.port in (None, default) else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"

    @property
    def url(self) -> str:
        return self.origin + self.path

    @property
    def identity(self) -> tuple[str, str]:
        """Two configs naming the same site give the same identity (SharePoint paths ignore
        case)."""
        return self.origin, self.path.casefold()


def site_kind(text: str) -> SiteKind:
    if text.startswith("file:"):
        if not text[len("file:") :].strip():
            raise ValueError("file: site needs a folder")
        return "file"
    return parse_http_site(text).kind


def parse_http_site(text: str) -> HttpSite:
    """The site a ``https://`` or ``http://`` URL names, or ValueError. The message never
    repeats the URL (it could hold a password)."""
    if "\\" in text or any(ord(char) < 0x20 or char == "\x7f" for char in text):
        raise ValueError("a site URL may not hold a backslash or a control character")
    if "?" in text or "#" in text:
        raise ValueError("a site URL may not hold a query or a fragment (? or #)")
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http"):
        raise ValueError("site must start with https://, file: or http://127.0.0.1")
    if not URL_TEXT.match(parts.netloc) or any(char in parts.netloc for char in "@[]%"):
        raise ValueError(
            "a site URL's host part is plain ASCII, without a user name or password (@)"
        )
    host = (parts.hostname or "").lower()
    if not host or not _is_host(host):
        raise ValueError("the site URL has no valid host name")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the site URL's port is not a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("the site URL's port is not a number from 1 to 65535")
    kind: SiteKind = "sharepoint" if parts.scheme == "https" else "emulator"
    if kind == "emulator" and not is_loopback(host):
        raise ValueError("plain http is only allowed for a loopback address (the emulator)")
    return HttpSite(kind, parts.scheme, host, port, _site_path(parts.path))


def _site_path(raw: str) -> str:
    path = unquote(raw).rstrip("/")
    if any(char in FORBIDDEN_IN_PATH for char in path):
        raise ValueError("the site URL's path holds a character SharePoint does not allow")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError("the site URL's path may not hold '.' or '..' segments")
    return path


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(HOST_NAME.match(host)) and not host.replace(".", "").isdigit()
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def test_seam_origin(name: str) -> str | None:
    """The ``https://127.0.0.1:PORT`` origin a test seam variable (``AGII_SYNC_TEST_*``) names,
    or None when it is unset. Anything but https on a loopback address is a config error: a
    seam must never send a token off the machine."""
    from .errors import ConfigError

    value = (os.environ.get(name) or "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not is_loopback(parts.hostname or "") or parts.path.strip("/"):
        raise ConfigError(
            f"{name} is for tests and takes only https://127.0.0.1:PORT", hint=f"unset {name}"
        )
    return f"https://{parts.netloc}"


def check_workbook_path(value: str) -> str:
    """``[workbook] path``: a relative path inside the site, in segments that SharePoint and
    Windows both allow; never ``..``, a drive, a backslash or a stream name."""
    value = value.strip().strip("/")
    segments = value.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ValueError("must be a path inside the site: no empty, '.' or '..' segments")
        if any(char in FORBIDDEN_IN_PATH for char in segment):
            raise ValueError('a segment holds one of \\ " * : < > ? | or a control character')
        if segment != segment.strip() or segment.endswith("."):
            raise ValueError("a segment may not start or end with a space, or end with '.'")
    return value
