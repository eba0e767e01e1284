"""purge through the CLI: retention to the day, protocol end, max_delete, version history.

The clock is set in-process with time-machine; the CLI reads it through ``date.today()``.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import time_machine
from openpyxl.comments import Comment

from agii_sync.sites.sharepoint import dummy_token
from fixtures.emulator import RunningEmulator
from fixtures.workspace import AGII_ENTRY, AGII_USER, MUNICIPALITIES, Workspace, person

SPL, MECHELEN, GENK = (m["id"] for m in MUNICIPALITIES)
WORKBOOK = "Gedeelde documenten/Participatie traject/inburgeraars.xlsx"

both_kinds = pytest.mark.parametrize("site_kind", ["file", "emulator"], indirect=True)
emulator_only = pytest.mark.parametrize("site_kind", ["emulator"], indirect=True)


@contextmanager
def on(day: date) -> Iterator[None]:
    """Run the block on ``day`` (at noon local time, the clock standing still)."""
    with time_machine.travel(datetime.combine(day, time(12)), tick=False):
        yield


def site_doc(result: Any, site: str) -> dict[str, Any]:
    return next(s for s in json.loads(result.stdout)["sites"] if s["site"] == site)


def ids_by_name(ws: Workspace, site: str) -> dict[str, str]:
    return {r["Naam"]: r["Rij-ID"] for r in ws.rows(site)}


def audit_of(ws: Workspace, command: str, site: str) -> list[dict[str, Any]]:
    return [a for a in ws.audit_lines() if a["command"] == command and a["site"] == site]


def push_on(ws: Workspace, day: date, people: list[dict[str, str]]) -> None:
    with on(day):
        result = ws.cli("push", str(ws.export(people)))
    assert result.exit_code == 0, result.output


# -- 1. retention, to the day ----------------------------------------------------------------


@both_kinds
def test_row_is_kept_on_its_last_day_and_purged_the_day_after(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 5)]
    people[1]["attest_datum"] = "2025-01-15"  # Bewaren tot 2025-07-15
    push_on(workspace, date(2025, 3, 1), people)
    ids = ids_by_name(workspace, SPL)
    target, keeper = ids["Naamx0002q"], ids["Naamx0003q"]
    assert {r["Rij-ID"]: r["Bewaren tot"] for r in workspace.rows(SPL)}[target].date() == date(
        2025, 7, 15
    )
    workspace.set_status_by_hand(SPL, keeper, "Activiteit gestart")

    with on(date(2025, 7, 15)):  # the last day: kept
        assert workspace.cli("check", "--site", SPL).exit_code == 0
        result = workspace.cli("--json", "purge")
    assert result.exit_code == 0, result.output
    doc = site_doc(result, SPL)
    assert (doc["written"], doc["counts"]["removed"], doc["changes"]) == (False, 0, [])
    assert target in ids_by_name(workspace, SPL).values()

    with on(date(2025, 7, 16)):  # the day after: gone
        checked = workspace.cli("--json", "check", "--site", SPL)
        result = workspace.cli("--json", "purge")
    assert checked.exit_code == 1
    assert [f["code"] for f in site_doc(checked, SPL)["findings"]] == ["past_retention"]
    assert result.exit_code == 0, result.output
    doc = site_doc(result, SPL)
    assert doc["written"] is True
    assert doc["changes"] == [{"row_id": target, "reason": "retention", "columns": []}]
    assert doc["counts"] | {} == {
        "added": 0,
        "updated": 0,
        "removed": 1,
        "retention": 1,
        "unchanged": 3,
    }
    rows = workspace.rows(SPL)
    assert target not in [r["Rij-ID"] for r in rows] and len(rows) == 3
    assert {r["Rij-ID"]: r["Status activiteit"] for r in rows}[keeper] == "Activiteit gestart"
    (line,) = [a for a in audit_of(workspace, "purge", SPL) if a["rows"]]
    assert line["rows"] == [{"row_id": target, "reason": "retention"}]
    assert line["counts"]["retention"] == 1 and line["etag_before"] != line["etag_after"]
    for other in (MECHELEN, GENK):  # empty workbooks: nothing to do, nothing written
        assert (site_doc(result, other)["exit_code"], site_doc(result, other)["written"]) == (
            0,
            False,
        )


@both_kinds
def test_purge_with_nothing_due_writes_nothing(workspace: Workspace) -> None:
    push_on(
        workspace, date(2025, 3, 1), [person(n, 0, attest_datum="2025-02-01") for n in range(1, 4)]
    )
    before = workspace.site(SPL).read()
    with on(date(2025, 8, 1)):
        result = workspace.cli("--json", "purge", "--site", SPL)
    assert result.exit_code == 0
    assert site_doc(result, SPL)["written"] is False
    assert workspace.site(SPL).read() == before


# -- 2. protocol end ---------------------------------------------------------------------------


def _toelichting(content: bytes) -> list[tuple[object, ...]]:
    book = openpyxl.load_workbook(io.BytesIO(content))
    return list(book["Toelichting"].iter_rows(values_only=True))


@both_kinds
def test_protocol_end_empties_the_workbook_and_refuses_pushes(workspace: Workspace) -> None:
    """docs/protocol.md, art. 5, 8, 12: after the end only pull-status, purge and access-check
    run; purge leaves the empty template (added sheets and notes go too) and stops (exit 5),
    saying what remains, while anyone but AgII's own accounts can still reach the site."""
    people = [person(n, 0) for n in range(1, 9)] + [person(20, 1)]
    push_on(workspace, date(2025, 3, 1), people)

    def add_notes(book):  # type: ignore[no-untyped-def]
        notes = book.create_sheet("Notities gemeente")
        notes["A1"], notes["B2"] = "eigen planning Naamx0001q", 42
        book["Inburgeraars"]["B2"].comment = Comment("belt terug Naamx0002q", "gemeente")

    workspace.edit_workbook(SPL, add_notes)
    ids = list(ids_by_name(workspace, SPL).values())
    toelichting = _toelichting(workspace.workbook_bytes(SPL))
    mechelen_before = workspace.site(MECHELEN).read()
    workspace.protocol[SPL] = {"start": "2024-01-01", "end": "2025-06-30"}
    workspace.agii["max_delete"] = 1  # the law, not the limit, decides at the protocol's end
    before = workspace.site(SPL).read()

    with on(date(2025, 7, 1)):
        pushed = workspace.cli("push", str(workspace.export(people)), "--site", SPL)
        assert pushed.exit_code == 5
        assert "protocol ended on 2025-06-30" in pushed.output and "purge" in pushed.output
        for refused in (
            ("check", "--site", SPL),
            ("list", "--site", SPL),
            ("status-update", "--site", SPL, ids[0], "Gecontacteerd"),
            ("init", "--site", SPL),
        ):
            result = workspace.cli(*refused)
            assert result.exit_code == 5, (refused, result.output)
            assert "only pull-status, purge and access-check run" in result.output
        assert workspace.site(SPL).read() == before
        pulled = workspace.cli(
            "pull-status", str(workspace.export(people)), "--out", str(workspace.root / "s.csv")
        )
        assert pulled.exit_code == 0, pulled.output  # a last collection of the statuses

        dry = workspace.cli("purge", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert "nothing was written" in dry.stdout
        assert all(f"- {row_id} protocol_ended" in dry.stdout for row_id in ids)
        dry_json = workspace.cli("--json", "purge", "--dry-run", "--site", SPL)
        assert [c["reason"] for c in site_doc(dry_json, SPL)["changes"]] == ["protocol_ended"] * 8
        assert site_doc(dry_json, SPL)["written"] is False
        assert workspace.site(SPL).read() == before

        result = workspace.cli("--json", "purge")
    # The data is gone at once; the staff's access still stands, so a person must act.
    assert result.exit_code == 5, result.output
    doc = site_doc(result, SPL)
    assert doc["written"] and doc["counts"]["protocol_ended"] == 8 and doc["counts"]["removed"] == 8
    assert (doc["sheets_removed"], doc["notes_removed"]) == (1, 1)
    assert (doc["remaining_rows"], doc["remaining_sheets"]) == (0, 0)
    assert (doc["remaining_principals"], doc["remaining_links"]) == (1, 0)
    assert "1 principal(s) other than AgII's own with access" in doc["error"]["message"]

    content = workspace.workbook_bytes(SPL)
    book = openpyxl.load_workbook(io.BytesIO(content))
    assert book.sheetnames == ["Inburgeraars", "Toelichting"]
    data = book["Inburgeraars"]
    assert [c.value for c in data[1]][:2] == ["Rij-ID", "Naam"]
    assert data.max_row == 1 and data["B2"].comment is None
    assert _toelichting(content) == toelichting
    assert b"Naamx000" not in _unzipped(content)
    assert workspace.site(MECHELEN).read() == mechelen_before  # its protocol still runs
    line = next(a for a in audit_of(workspace, "purge", SPL) if a["rows"])
    assert sorted(line["rows"], key=lambda r: r["row_id"]) == sorted(
        ({"row_id": i, "reason": "protocol_ended"} for i in ids), key=lambda r: r["row_id"]
    )
    assert line["exit_code"] == 5
    pushes = audit_of(workspace, "push", SPL)
    assert pushes[-1]["exit_code"] == 5 and pushes[-1]["rows"] == []

    only_agii_access(workspace, SPL)  # AgII's own account may stay
    with on(date(2025, 7, 2)):  # nothing left: purge passes; a push is still refused
        done = workspace.cli("--json", "purge", "--site", SPL)
        assert done.exit_code == 0, done.output
        assert site_doc(done, SPL)["remaining_principals"] == 0
        assert workspace.cli("push", str(workspace.export(people)), "--site", SPL).exit_code == 5
        assert workspace.cli("access-check", "--site", SPL).exit_code == 1  # staff: missing
    assert workspace.rows(SPL) == []


def only_agii_access(ws: Workspace, site: str) -> None:
    ws.allowed[site] = f'["staff@{site}.be", {AGII_ENTRY}]'
    ws.grant_access(
        site,
        overwrite=True,
        role_assignments=[{"principal": AGII_USER, "roles": ["Full Control"]}],
        sharing_links=[],
    )


def _unzipped(content: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return b"".join(archive.read(name) for name in archive.namelist())


@both_kinds
def test_protocol_end_removes_hand_added_rows_and_formulas_too(workspace: Workspace) -> None:
    """A workbook a push would refuse (a hand-added row, a formula) is still emptied: after
    the protocol's end nothing may remain, whoever put it there."""
    push_on(workspace, date(2025, 3, 1), [person(n, 0) for n in range(1, 4)])

    def slips(book):  # type: ignore[no-untyped-def]
        sheet = book["Inburgeraars"]
        sheet.append(["", "Handx", "Toegevoegdx", "Straatx 1"])
        sheet.cell(2, 8).value = "=CONCAT(B2,C2)"

    workspace.edit_workbook(SPL, slips)
    workspace.protocol[SPL] = {"start": "2024-01-01", "end": "2025-06-30"}
    only_agii_access(workspace, SPL)
    with on(date(2025, 6, 30)):  # still running: the slips stop the purge
        assert workspace.cli("purge", "--site", SPL).exit_code == 5
    with on(date(2025, 7, 1)):
        result = workspace.cli("--json", "purge", "--site", SPL)
    assert result.exit_code == 0, result.output
    assert site_doc(result, SPL)["counts"]["protocol_ended"] == 4
    assert workspace.rows(SPL) == []


# -- 3. max_delete -----------------------------------------------------------------------------


@both_kinds
def test_max_delete_stops_a_purge_of_too_many_retention_rows(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 5)]
    for p in people[:2]:
        p["attest_datum"] = "2025-01-15"
    push_on(workspace, date(2025, 3, 1), people)
    before = workspace.site(SPL).read()
    with on(date(2025, 7, 16)):
        refused = workspace.cli("purge")
        dry = workspace.cli("--json", "purge", "--dry-run", "--site", SPL)
    assert refused.exit_code == 5
    assert "max_delete" in refused.output and "2 of 4" in refused.output
    assert dry.exit_code == 5
    assert site_doc(dry, SPL)["error"]["type"] == "DeleteLimitExceeded"
    assert [c["reason"] for c in site_doc(dry, SPL)["changes"]] == ["retention"] * 2
    assert workspace.site(SPL).read() == before
    assert audit_of(workspace, "purge", SPL)[0]["exit_code"] == 5
    assert all(not a["rows"] for a in audit_of(workspace, "purge", SPL))

    workspace.agii["max_delete"] = "50%"
    with on(date(2025, 7, 16)):
        result = workspace.cli("--json", "purge")
    assert result.exit_code == 0, result.output
    assert site_doc(result, SPL)["counts"]["retention"] == 2
    assert len(workspace.rows(SPL)) == 2


# -- 4. no copies left behind ------------------------------------------------------------------


def _rest(site_url: str, path: str) -> Any:
    request = urllib.request.Request(
        f"{site_url}/_api/{urllib.parse.quote(path, safe='/()=,')}",
        headers={
            "Authorization": f"Bearer {dummy_token()['access_token']}",
            "Accept": "application/json;odata=verbose",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["d"]


def rest_versions(ws: Workspace, site: str) -> list[dict[str, Any]]:
    url = ws.site_url(site)
    server_relative = f"{urllib.parse.urlsplit(url).path}/{WORKBOOK}"
    return _rest(url, f"web/GetFileByServerRelativeUrl('{server_relative}')/Versions")["results"]


def stored_versions(emulator: RunningEmulator, site: str) -> list[bytes]:
    """The bytes of every older version the emulator keeps for the site (its own storage)."""
    folder = emulator.site_folder(site) / ".emulator" / "versions"
    return [p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()]


def names_in(content: bytes) -> set[str]:
    book = openpyxl.load_workbook(io.BytesIO(content))
    return {
        str(row[1]) for row in book["Inburgeraars"].iter_rows(min_row=2, values_only=True) if row[1]
    }


@emulator_only
def test_purge_deletes_the_versions_that_hold_removed_rows(
    workspace: Workspace, emulator: RunningEmulator
) -> None:
    people = [person(n, 0) for n in range(1, 5)]
    people[0]["attest_datum"] = "2025-01-15"
    push_on(workspace, date(2025, 3, 1), people)
    people[2]["straat"] = "Anderex"
    push_on(workspace, date(2025, 3, 2), people)
    workspace.set_status_by_hand(SPL, ids_by_name(workspace, SPL)["Naamx0003q"], "Gecontacteerd")
    assert len(rest_versions(workspace, SPL)) == 2
    assert all("Naamx0001q" in names_in(v) for v in stored_versions(emulator, SPL))

    with on(date(2025, 7, 16)):
        result = workspace.cli("--json", "purge")
    assert result.exit_code == 0, result.output
    doc = site_doc(result, SPL)
    assert doc["counts"]["retention"] == 1
    assert doc["versions_deleted"] == 3  # two older ones and the one the purge's write made
    assert rest_versions(workspace, SPL) == []
    assert all("Naamx0001q" not in names_in(v) for v in stored_versions(emulator, SPL))
    assert "Naamx0001q" not in names_in(workspace.workbook_bytes(SPL))
    line = next(a for a in audit_of(workspace, "purge", SPL) if a["rows"])
    assert line["counts"]["versions_deleted"] == 3

    workspace.set_status_by_hand(SPL, ids_by_name(workspace, SPL)["Naamx0002q"], "Gecontacteerd")
    with on(date(2025, 7, 17)):  # the text output says so too
        again = workspace.cli("purge", "--site", SPL)
    assert again.exit_code == 0
    assert "1 old version(s) deleted" in again.stdout


@emulator_only
def test_purge_also_clears_versions_left_by_a_push_that_removed_people(
    workspace: Workspace, emulator: RunningEmulator
) -> None:
    """A push removes people (moved away, past retention); their rows live on in the older
    versions until the next purge, even when that purge has nothing of its own to remove."""
    people = [person(n, 0) for n in range(1, 5)]
    push_on(workspace, date(2025, 3, 1), people)
    push_on(workspace, date(2025, 3, 2), people[1:])  # Naamx0001q moved away
    assert any("Naamx0001q" in names_in(v) for v in stored_versions(emulator, SPL))
    with on(date(2025, 3, 3)):
        result = workspace.cli("--json", "purge", "--site", SPL)
    assert result.exit_code == 0, result.output
    doc = site_doc(result, SPL)
    assert doc["written"] is False and doc["versions_deleted"] == 1
    assert rest_versions(workspace, SPL) == [] and stored_versions(emulator, SPL) == []

    with on(date(2025, 3, 3)):
        dry = workspace.cli("--json", "purge", "--dry-run", "--site", SPL)
    assert site_doc(dry, SPL).get("versions_deleted", 0) == 0


@both_kinds
def test_dry_run_deletes_no_versions(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 6)]
    people[0]["attest_datum"] = "2025-01-15"
    push_on(workspace, date(2025, 3, 1), people)
    push_on(workspace, date(2025, 3, 2), people[:4])
    versions = rest_versions(workspace, SPL) if workspace.kind == "emulator" else []
    with on(date(2025, 7, 16)):
        dry = workspace.cli("--json", "purge", "--dry-run")
    assert dry.exit_code == 0
    assert site_doc(dry, SPL).get("versions_deleted", 0) == 0
    if workspace.kind == "emulator":
        assert rest_versions(workspace, SPL) == versions


@pytest.mark.parametrize("site_kind", ["file"], indirect=True)
def test_file_site_keeps_no_copies(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 5)]
    people[0]["attest_datum"] = "2025-01-15"
    push_on(workspace, date(2025, 3, 1), people)
    push_on(workspace, date(2025, 3, 2), people[:3] + [person(9, 0)])
    workspace.protocol[MECHELEN] = {"start": "2024-01-01", "end": "2025-06-30"}
    push_on(workspace, date(2025, 3, 3), people + [person(10, 1)])
    only_agii_access(workspace, MECHELEN)
    with on(date(2025, 7, 16)):
        result = workspace.cli("--json", "purge")
    assert result.exit_code == 0, result.output
    assert site_doc(result, SPL)["versions_deleted"] == 0
    assert workspace.rows(MECHELEN) == []
    for site in (SPL, MECHELEN):
        files = sorted(p for p in (workspace.root / "sites" / site).rglob("*") if p.is_file())
        workbook = workspace.root / "sites" / site / WORKBOOK
        access = workbook.parents[len(Path(WORKBOOK).parts) - 1] / "_access.json"
        strays = [p for p in files if p not in (workbook, access) and not _empty_lock_file(p)]
        assert strays == [], strays


def _empty_lock_file(path: Path) -> bool:
    """The write lock beside the workbook: an empty marker, never a copy."""
    return path.name.endswith(".agii-lock") and path.stat().st_size == 0
