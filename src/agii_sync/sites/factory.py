"""Open the right kind of site for a municipality's ``site`` URL (docs/config.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import Config, Municipality
from .base import Site
from .local import LocalFolderSite

if TYPE_CHECKING:  # office365, requests: only for https:// and emulator sites
    from .sharepoint import SharePointConnection

TokenProvider = Callable[[], dict[str, Any]]


class SiteOpener:
    """Hands out sites. SharePoint sites on one host share one connection (session and a
    token minted for that host); a token is never sent to another host."""

    def __init__(self, config: Config, *, prompt: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.prompt = prompt or (lambda message: None)
        self._connections: dict[str, SharePointConnection] = {}
        self._sites: dict[str, Site] = {}
        self._providers: list[Any] = []
        self._lock = threading.Lock()

    def signed_in_account(self) -> str | None:
        """The person who signed in (device code) for this run's sites, once they have."""
        accounts = [p.account for p in self._providers if getattr(p, "account", None)]
        return accounts[0] if accounts else None

    def open(self, municipality: Municipality) -> Site:
        if municipality.kind == "file":
            return LocalFolderSite(
                self.config.site_folder(municipality),
                self.config.workbook.path,
                lock_wait_seconds=self.config.agii.lock_wait_seconds,
            )
        # One object per site for the whole run: it keeps the site's drive and item ids, so
        # the access check and the workbook work do not look them up again (2 requests).
        with self._lock:
            if municipality.site in self._sites:
                return self._sites[municipality.site]
        site = self._connection(municipality).site(municipality.site, self.config.workbook.path)
        with self._lock:
            return self._sites.setdefault(municipality.site, site)

    def _connection(self, municipality: Municipality) -> SharePointConnection:
        from .sharepoint import RetryPolicy, SharePointConnection

        key = municipality.http_site.origin
        with self._lock:
            if key not in self._connections:
                self._connections[key] = SharePointConnection(
                    self._token_provider(municipality),
                    graph_token_provider=self._token_provider(municipality, graph=True),
                    retry=RetryPolicy.for_lock_wait(self.config.agii.lock_wait_seconds),
                )
            return self._connections[key]

    def _token_provider(self, municipality: Municipality, *, graph: bool = False) -> TokenProvider:
        from .graph import GRAPH_RESOURCE
        from .sharepoint import dummy_graph_token, dummy_token

        if municipality.kind == "emulator":
            return dummy_graph_token if graph else dummy_token
        from ..auth import token_provider
        from ..errors import ConfigError

        if self.config.auth is None:
            raise ConfigError(
                f"site {municipality.id!r} is on SharePoint Online but the config has no [auth]"
            )
        resource = GRAPH_RESOURCE if graph else municipality.http_site.origin
        provider = token_provider(
            self.config.auth,
            resource,
            prompt=self.prompt,
            certificate_file=self.config.certificate_file,
        )
        self._providers.append(provider)
        return provider
