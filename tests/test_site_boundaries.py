"""Data goes only where the config says, with the right credential (docs/safety.md).

Each test is an attack or slip found in review: a URL two parsers read differently, a token
sent to a second host, a workbook path that leaves the site, two municipalities on one site, a
symbolic link to another site's workbook, a typo in a folder site's path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agii_sync.config import load_config
from agii_sync.errors import ConfigError
from agii_sync.sites.factory import SiteOpener
from agii_sync.sites.graph import GRAPH_RESOURCE
from agii_sync.sites.sharepoint import SharePointConnection, dummy_token
from agii_sync.siteurl import parse_http_site
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL, MECHELEN, GENK = (m["id"] for m in MUNICIPALITIES)
AUTH = '\n[auth]\ntenant = "agii.onmicrosoft.com"\nclient_id = "c"\nmethod = "device-code"\n'


def configured(workspace: Workspace, text_change) -> Path:  # type: ignore[no-untyped-def]
    path = workspace.write_config()
    path.write_text(text_change(path.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def run_with(workspace: Workspace, config: Path, *args: str):  # type: ignore[no-untyped-def]
    from agii_sync.cli import app

    return workspace.runner.invoke(app, ["--config", str(config), *args])


def genk_site(url: str):  # type: ignore[no-untyped-def]
    return lambda text: text.replace('site = "file:sites/genk"', f"site = '{url}'")


REFUSED_SITES = {
    # the review's attack, aimed at another loopback address: the check read 127.0.0.1, the
    # HTTP library would have connected to 127.0.0.2
    "backslash-userinfo": "http://127.0.0.2:8123\\@127.0.0.1/sites/x",
    "userinfo": "https://jan:geheim@agii.sharepoint.com/sites/x",
    "plain-http-elsewhere": "http://example.org/sites/x",
    "decimal-ip": "http://2130706433/sites/x",
    "short-ip": "http://127.1/sites/x",
    "encoded-host": "http://127.0.0.1%2f@x/sites/x",
    "dot-dot-path": "https://agii.sharepoint.com/sites/%2e%2e/x",
    "query": "https://agii.sharepoint.com/sites/x?y=1",
    "space-in-host": "https://agii .sharepoint.com/sites/x",
    "at-in-host": "https://agii.sharepoint.com@127.0.0.1/sites/x",
    "other-tenant": "https://someone-else.sharepoint.com/sites/x",
    "lookalike-host": "https://agii.sharepoint.com.example.org/sites/x",
}


@pytest.mark.parametrize("url", REFUSED_SITES.values(), ids=REFUSED_SITES.keys())
def test_a_site_url_that_could_lead_elsewhere_is_a_config_error(
    workspace: Workspace, url: str
) -> None:
    config = configured(workspace, lambda t: genk_site(url)(t) + AUTH)
    export = workspace.export([person(1, 0)])
    result = run_with(workspace, config, "push", str(export))
    assert result.exit_code == 2, result.output
    assert "municipality" in result.output and "geheim" not in result.output
    assert not list((workspace.root / "sites").rglob("*.xlsx"))


def test_a_host_outside_the_tenant_is_allowed_only_when_listed(workspace: Workspace) -> None:
    url = "https://partner.sharepoint.com/sites/pnt-genk"
    listed = AUTH + 'sharepoint_hosts = ["partner.sharepoint.com"]\n'
    assert load_config(configured(workspace, lambda t: genk_site(url)(t) + listed))
    with pytest.raises(ConfigError, match="tenant's SharePoint host"):
        load_config(configured(workspace, lambda t: genk_site(url)(t) + AUTH))


def test_each_host_gets_its_own_connection_and_token(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    minted: list[str] = []

    def provider(auth, resource, *, prompt, certificate_file=None):  # type: ignore[no-untyped-def]
        minted.append(resource)
        return dummy_token

    monkeypatch.setattr("agii_sync.auth.token_provider", provider)
    hosts = 'sharepoint_hosts = ["partner.sharepoint.com"]\n'

    def change(text: str) -> str:
        text = genk_site("https://partner.sharepoint.com/sites/pnt-genk")(text)
        text = text.replace(
            'site = "file:sites/mechelen"', 'site = "https://agii.sharepoint.com/sites/pnt-m"'
        )
        return text + AUTH + hosts

    config = load_config(configured(workspace, change))
    opener = SiteOpener(config)
    mechelen, genk = (opener.open(config.by_id(s)) for s in (MECHELEN, GENK))
    # a SharePoint token per host; Graph's own token goes to Graph only
    assert minted == [
        "https://agii.sharepoint.com",
        GRAPH_RESOURCE,
        "https://partner.sharepoint.com",
        GRAPH_RESOURCE,
    ]
    assert mechelen._base is not genk._base
    assert len(opener._connections) == 2


def test_a_connection_never_serves_a_site_on_another_host() -> None:
    connection = SharePointConnection(dummy_token)
    connection.site("http://127.0.0.1:8000/sites/a", "Docs/w.xlsx")
    with pytest.raises(ConfigError):
        connection.site("http://127.0.0.2:8000/sites/b", "Docs/w.xlsx")


def test_one_parser_gives_the_origin_the_token_is_for() -> None:
    site = parse_http_site("HTTPS://Agii.SharePoint.com:443/sites/PNT%20Genk/")
    assert site.origin == "https://agii.sharepoint.com"
    assert site.url == "https://agii.sharepoint.com/sites/PNT Genk"


@pytest.mark.parametrize(
    "path",
    ["../../x.xlsx", "Docs/../../x.xlsx", "Docs\\..\\x.xlsx", "C:/x.xlsx", "Docs//x.xlsx"],
)
def test_a_workbook_path_cannot_leave_the_site(workspace: Workspace, path: str) -> None:
    config = configured(
        workspace,
        lambda t: t.replace(
            'path = "Gedeelde documenten/Participatie traject/inburgeraars.xlsx"',
            f"path = '{path}'",
        ),
    )
    result = run_with(workspace, config, "push", str(workspace.export([person(1, 0)])))
    assert result.exit_code == 2, result.output
    assert "workbook.path" in result.output
    assert not list(workspace.root.rglob("*.xlsx"))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("file:sites/genk", "file:sites/../sites/genk/"),
        ("file:sites/genk", "file:sites/genk/binnen"),
        ("https://agii.sharepoint.com/sites/a", "https://AGII.sharepoint.com/sites/A/"),
    ],
    ids=["same-folder", "nested-folder", "same-sharepoint-site"],
)
def test_two_municipalities_cannot_share_a_site(
    workspace: Workspace, first: str, second: str
) -> None:
    def change(text: str) -> str:
        text = text.replace('site = "file:sites/genk"', f'site = "{first}"')
        return text.replace('site = "file:sites/mechelen"', f'site = "{second}"') + AUTH

    with pytest.raises(ConfigError, match="share a site"):
        load_config(configured(workspace, change))


def test_a_missing_site_folder_is_a_config_error_and_is_not_created(
    workspace: Workspace,
) -> None:
    config = configured(workspace, genk_site("file:sites/gnek"))  # a typo
    result = run_with(workspace, config, "push", str(workspace.export([person(1, 2)])))
    assert result.exit_code == 2, result.output
    assert "does not exist" in result.output
    assert not (workspace.root / "sites" / "gnek").exists()
    for command in ("init", "check", "purge"):
        assert run_with(workspace, config, command, "--site", GENK).exit_code == 2


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_a_symbolic_link_to_another_sites_workbook_is_refused(workspace: Workspace) -> None:
    assert workspace.cli("push", str(workspace.export([person(1, 0)]))).exit_code == 0
    other = workspace.root / "sites" / SPL / "Gedeelde documenten"
    library = workspace.root / "sites" / GENK / "Gedeelde documenten"
    shutil.rmtree(library)
    library.symlink_to(other, target_is_directory=True)
    before = workspace.workbook_bytes(SPL)
    result = workspace.cli("push", "--site", GENK, str(workspace.export([person(2, 2)])))
    assert result.exit_code == 2, result.output
    assert "outside the site folder" in result.output
    assert workspace.workbook_bytes(SPL) == before
