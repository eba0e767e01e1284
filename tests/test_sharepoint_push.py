"""push end to end over the SharePoint REST API: the CLI and the engine, the real client
library, the emulator over HTTP on 127.0.0.1.

What is proven here: a write that races another write is redone on fresh data (nothing the
municipality typed is lost), a workbook open in Excel stops the push with exit 3 and leaves
the file alone, throttling is waited out exactly as long as asked, and awkward paths work.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from office365.runtime.http.request_options import RequestOptions
from office365.runtime.transport.base import BaseTransport
from requests import Response
from typer.testing import CliRunner

from agii_sync.cli import app
from agii_sync.config import Config, Municipality, load_config
from agii_sync.demo_data import write_export
from agii_sync.engine import Run
from agii_sync.outcome import SiteOutcome
from agii_sync.runs.push import push
from agii_sync.sites.base import Site
from agii_sync.sites.factory import SiteOpener
from agii_sync.sites.sharepoint import (
    RetryPolicy,
    SharePointConnection,
    dummy_graph_token,
    dummy_token,
    graph_client,
)
from fixtures.emulator import RunningEmulator
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL = MUNICIPALITIES[0]["id"]
STATUS = "Gecontacteerd"
WORKSPACE_WORKBOOK = "Gedeelde documenten/Participatie traject/inburgeraars.xlsx"
WORKBOOK_URL = f"/sites/{SPL}/{WORKSPACE_WORKBOOK}"
WORKBOOK = "Gedeelde documenten/Participatietraject/inburgeraars.xlsx"  # our own configs


@pytest.fixture
def site_kind() -> str:
    return "emulator"


def statuses(workspace: Workspace, site: str) -> dict[str, Any]:
    return {row["Rij-ID"]: row["Status activiteit"] for row in workspace.rows(site)}


def pushed_three(workspace: Workspace) -> list[str]:
    """Three people on Sint-Pieters-Leeuw; their Rij-IDs in sheet order."""
    export = workspace.export([person(n, 0) for n in range(1, 4)])
    result = workspace.cli("push", str(export))
    assert result.exit_code == 0, result.output
    return [row["Rij-ID"] for row in workspace.rows(SPL)]


def changed_export(workspace: Workspace) -> Path:
    """The same three people, one with a new e-mail address."""
    rows = [person(n, 0) for n in range(1, 4)]
    rows[2]["email"] = "verhuisd@voorbeeld.be"
    return workspace.export(rows, name="changed.csv")


def test_a_push_looks_up_each_sites_library_once(
    workspace: Workspace, emulator: RunningEmulator
) -> None:
    """The access check and the workbook work share one site object per run: the site and
    its drive are asked for once per site, not once per step (each request is a round trip
    to the tenant)."""
    export = workspace.export([person(n, 0) for n in range(1, 4)])
    emulator.reset_stats()

    assert workspace.cli("push", str(export)).exit_code == 0

    requests = emulator.stats()["requests"]
    assert requests["graph_site"] == {"GET": len(MUNICIPALITIES)}
    assert requests["graph_drives"] == {"GET": len(MUNICIPALITIES)}


# --- a write racing another write ------------------------------------------------------------


Hook = Callable[[int], None]  # called with n before the n-th write (or upload) goes out


class BeforeWrite(SiteOpener):
    """Sites whose ``write`` first calls ``hook(n)``: someone else's edit can land between our
    read and our write, where the ETag re-read just before the upload sees it."""

    def __init__(self, config: Config, hook: Hook) -> None:
        super().__init__(config)
        self.hook = hook

    def open(self, municipality: Municipality) -> Site:
        site = super().open(municipality)
        hook, writes = self.hook, iter(range(1, 1000))

        class Racing:
            url = site.url

            def read(self):  # type: ignore[no-untyped-def]
                return site.read()

            def write(self, content: bytes, if_match: str | None) -> str:
                hook(next(writes))
                return site.write(content, if_match)

            def delete_old_versions(self) -> int:
                return site.delete_old_versions()

            def read_access(self):  # type: ignore[no-untyped-def]
                return site.read_access()

        return Racing()  # type: ignore[return-value]


class HookedTransport(BaseTransport):
    """Calls ``hook(n)`` just before the n-th ``createUploadSession`` leaves: after our read,
    so only the server's if-match check (412) can catch what the hook does."""

    def __init__(self, inner: BaseTransport, hook: Hook) -> None:
        self.inner = inner
        self.hook = hook
        self.uploads = 0

    def execute(self, request: RequestOptions) -> Response:
        if request.url.endswith("/createUploadSession"):
            self.uploads += 1
            self.hook(self.uploads)
        return self.inner.execute(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class BeforeUpload(SiteOpener):
    """The real SharePoint sites of the config, over one connection whose Graph transport
    runs ``hook`` before every upload session is asked for."""

    def __init__(self, config: Config, hook: Hook) -> None:
        super().__init__(config)
        graph = graph_client(config.municipalities[0].site, dummy_graph_token)
        request = graph.pending_request()
        request.transport = HookedTransport(request.transport, hook)
        retry = RetryPolicy.for_lock_wait(config.agii.lock_wait_seconds)
        self.connection = SharePointConnection(dummy_token, base_graph=graph, retry=retry)

    def open(self, municipality: Municipality) -> Site:
        return self.connection.site(municipality.site, self.config.workbook.path)


def hooked_push(workspace: Workspace, opener: type[SiteOpener], hook: Hook) -> SiteOutcome:
    """Push ``changed_export`` to Sint-Pieters-Leeuw through the engine."""
    config = load_config(workspace.write_config())
    run = Run(config, "push", date.today(), opener=opener(config, hook))
    (outcome,) = push(run, changed_export(workspace), sites=[SPL]).outcomes
    return outcome


@pytest.mark.parametrize("opener", [BeforeWrite, BeforeUpload])
def test_a_racing_write_is_redone_on_fresh_data_and_keeps_their_status(
    workspace: Workspace, emulator: RunningEmulator, opener: type[SiteOpener]
) -> None:
    ids = pushed_three(workspace)
    emulator.reset_stats()

    def municipality_types_a_status(n: int) -> None:
        if n == 1:
            workspace.set_status_by_hand(SPL, ids[0], STATUS)

    outcome = hooked_push(workspace, opener, municipality_types_a_status)

    assert outcome.error is None and outcome.written and outcome.attempts == 2
    assert emulator.stats()["responses"]["412"] == 1  # if-match on createUploadSession
    assert statuses(workspace, SPL) == {ids[0]: STATUS, ids[1]: None, ids[2]: None}
    assert workspace.rows(SPL)[2]["E-mail"] == "verhuisd@voorbeeld.be"


def test_a_status_saved_in_excel_while_push_waits_for_the_lock_is_kept(
    workspace: Workspace, emulator: RunningEmulator
) -> None:
    workspace.agii["lock_wait_seconds"] = 1
    ids = pushed_three(workspace)
    emulator.lock(WORKBOOK_URL)
    emulator.reset_stats()

    def municipality_saves_and_closes_excel(n: int) -> None:
        if n == 2:  # our upload was refused (423); we are about to try again
            emulator.unlock(WORKBOOK_URL)
            workspace.set_status_by_hand(SPL, ids[1], STATUS)

    outcome = hooked_push(workspace, BeforeUpload, municipality_saves_and_closes_excel)

    assert outcome.error is None and outcome.written and outcome.attempts == 2
    responses = emulator.stats()["responses"]
    assert (responses.get("423"), responses.get("412")) == (1, 1)
    assert statuses(workspace, SPL) == {ids[0]: None, ids[1]: STATUS, ids[2]: None}
    assert workspace.rows(SPL)[2]["E-mail"] == "verhuisd@voorbeeld.be"


# --- a workbook open in Excel ----------------------------------------------------------------


def test_a_locked_workbook_stops_the_push_with_exit_3_and_is_left_alone(
    workspace: Workspace, emulator: RunningEmulator
) -> None:
    workspace.agii["lock_wait_seconds"] = 0.2
    pushed_three(workspace)
    on_disk = emulator.site_folder(SPL) / WORKSPACE_WORKBOOK
    before, before_bytes = workspace.site(SPL).read(), on_disk.read_bytes()
    emulator.lock(WORKBOOK_URL)
    emulator.reset_stats()

    result = workspace.cli("--json", "push", str(changed_export(workspace)))

    assert result.exit_code == 3
    (site,) = [s for s in json.loads(result.stdout)["sites"] if s["site"] == SPL]
    message = f"{site['error']['message']} {site['error']['hint']}"
    assert "open for editing" in message and "close the workbook in Excel" in message
    assert emulator.stats()["responses"]["423"] == 3  # tried 3 times, 0.1 s apart
    assert on_disk.read_bytes() == before_bytes
    assert workspace.site(SPL).read() == before  # bytes and ETag
    line = [a for a in workspace.audit_lines() if a["site"] == SPL][-1]
    assert (line["exit_code"], line["error"]) == (3, "WorkbookLocked")
    assert line["etag_before"] == before.etag and line["counts"] == {} and line["rows"] == []

    human = workspace.cli("push", str(changed_export(workspace)))
    assert human.exit_code == 3
    assert "close the workbook in Excel" in human.output
    assert "Naamx" not in human.output and "voorbeeld.be" not in human.output

    emulator.unlock(WORKBOOK_URL)
    assert workspace.cli("push", str(changed_export(workspace))).exit_code == 0
    assert workspace.rows(SPL)[2]["E-mail"] == "verhuisd@voorbeeld.be"


# --- many sites, under throttling ------------------------------------------------------------


def real_municipalities() -> list[tuple[str, str]]:
    """(NIS code, one of its postcodes) of real municipalities: the config checks both
    against Statbel's lists."""
    from agii_sync.domain.refnis import postcode_municipalities

    pairs: dict[str, str] = {}
    for postcode, codes in sorted(postcode_municipalities().items()):
        if len(codes) == 1:
            pairs.setdefault(next(iter(codes)), postcode)
    return sorted(pairs.items())


def municipality(n: int, site_url: str) -> dict[str, Any]:
    nis, postcode = real_municipalities()[n]
    return {
        "id": f"gemeente-{n:02d}",
        "nis": nis,
        "postal_codes": [postcode],
        "site": site_url,
    }


def write_config(folder: Path, municipalities: list[dict[str, Any]], workbook: str) -> Path:
    lines = [
        "[agii]",
        'audit_log = "var/audit.jsonl"',
        "require_access_check = false  # these tests count the workbook's requests",
        "",
        "[workbook]",
        f"path = {json.dumps(workbook)}",
    ]
    for m in municipalities:
        lines += [
            "",
            "[[municipality]]",
            f'id = "{m["id"]}"',
            f'name = "{m["id"].title()}"',
            f'nis = "{m["nis"]}"',
            f"postal_codes = {json.dumps(m['postal_codes'])}",
            f"site = {json.dumps(m['site'])}",
            "protocol_start = 2024-01-01",
            "protocol_end = 2099-12-31",
            f'allowed = ["staff@{m["id"]}.be"]',
        ]
    path = folder / "agii-sync.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def export_rows(municipalities: list[dict[str, Any]], per_site: int) -> list[dict[str, str]]:
    rows = []
    for index, m in enumerate(municipalities):
        for k in range(per_site):
            rows.append(
                person(
                    index * 100 + k,
                    nis_code=m["nis"],
                    postcode=m["postal_codes"][0],
                    gemeente=m["id"].title(),
                )
            )
    return rows


def sheet_rows(path: Path) -> list[dict[str, Any]]:
    book = openpyxl.load_workbook(io.BytesIO(path.read_bytes()))
    sheet = book["Inburgeraars"]
    header = [cell.value for cell in sheet[1]]
    return [dict(zip(header, row, strict=True)) for row in sheet.iter_rows(2, values_only=True)]


def set_status_by_hand(config: Path, site_id: str, cell: str, status: str) -> None:
    loaded = load_config(config)
    site = SiteOpener(loaded).open(loaded.by_id(site_id))
    snapshot = site.read()
    book = openpyxl.load_workbook(io.BytesIO(snapshot.content or b""))
    book["Inburgeraars"][cell] = status
    buffer = io.BytesIO()
    book.save(buffer)
    site.write(buffer.getvalue(), snapshot.etag)


def cli(config: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(config), *args])


@pytest.fixture
def rowkey_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGII_SYNC_ROWKEY_SECRET", "sharepoint-push-secret")
    monkeypatch.delenv("AGII_SYNC_CONFIG", raising=False)


@pytest.mark.slow  # 20 sites under faults: a chaos run (the default run keeps the retry tests)
@pytest.mark.usefixtures("rowkey_secret")
def test_twenty_sites_under_30_percent_faults_are_pushed_exactly(
    emulator_factory: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    running = emulator_factory("--fault-rate", "0.3", "--retry-after", "0.05")
    sites = [municipality(n, running.site_url(f"gemeente-{n:02d}")) for n in range(20)]
    config = write_config(tmp_path, sites, WORKBOOK)
    rows = export_rows(sites, per_site=3)
    export = tmp_path / "export.csv"
    write_export(export, rows)

    def assert_every_site_has_exactly_its_people() -> None:
        for m in sites:
            shared = sheet_rows(running.site_folder(m["id"]) / WORKBOOK)
            expected = [(r["naam"], r["email"]) for r in rows if r["nis_code"] == m["nis"]]
            assert sorted((r["Naam"], r["E-mail"]) for r in shared) == sorted(expected)

    first = cli(config, "push", str(export))
    assert first.exit_code == 0, first.output
    assert_every_site_has_exactly_its_people()

    set_status_by_hand(config, "gemeente-07", "N3", STATUS)
    for row in rows[::3]:  # one changed person on every site
        row["email"] = f"nieuw-{row['dossiernummer']}@voorbeeld.be"
    write_export(export, rows)
    second = cli(config, "push", str(export))

    assert second.exit_code == 0, second.output
    assert_every_site_has_exactly_its_people()
    kept = sheet_rows(running.site_folder("gemeente-07") / WORKBOOK)[1]["Status activiteit"]
    assert kept == STATUS
    stats = running.stats()
    print(f"faults injected: {stats['faults_total']} {stats['faults_injected']}")
    assert stats["faults_total"] > 20
    assert stats["early_retries"] == 0


# --- awkward paths ---------------------------------------------------------------------------


@pytest.mark.usefixtures("rowkey_secret")
def test_spaces_and_apostrophes_in_site_and_workbook_path(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    workbook = "Gedeelde documenten/O'Brien map/inburgeraars van 't jaar.xlsx"
    # (as written in the config, the site's folder): the last one copied from a browser
    names = [
        ("sint-job-in-'t-goor", "sint-job-in-'t-goor"),
        ("Gemeente met spatie", "Gemeente met spatie"),
        ("d%27n%20Hoek", "d'n Hoek"),
    ]
    sites = [municipality(n, emulator.site_url(url)) for n, (url, _) in enumerate(names)]
    config = write_config(tmp_path, sites, workbook)
    rows = export_rows(sites, per_site=2)
    export = tmp_path / "export.csv"
    write_export(export, rows)
    assert cli(config, "push", str(export)).exit_code == 0
    rows[0]["email"] = "ander@voorbeeld.be"
    write_export(export, rows)

    result = cli(config, "--json", "push", str(export))

    assert result.exit_code == 0, result.output
    assert [s["written"] for s in json.loads(result.stdout)["sites"]] == [True, False, False]
    for (_, folder), m in zip(names, sites, strict=True):
        shared = sheet_rows(emulator.site_folder(folder) / workbook)
        assert sorted(r["Naam"] for r in shared) == sorted(
            r["naam"] for r in rows if r["nis_code"] == m["nis"]
        )
    first = sheet_rows(emulator.site_folder(names[0][1]) / workbook)
    assert first[0]["E-mail"] == "ander@voorbeeld.be"
    assert "unsupported" not in emulator.stats()["requests"]
