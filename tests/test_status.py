"""status-update, list and pull-status: the only data that flows back is 'Status activiteit'."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from agii_sync.config import load_config
from agii_sync.engine import Run
from agii_sync.runs.facts import StatusLinesDone
from agii_sync.runs.status import StatusEdit, status_update
from agii_sync.sites.factory import SiteOpener
from fixtures.handmade import libreoffice_convert
from fixtures.workspace import MUNICIPALITIES, TWIN_KINDS, Workspace, person

SPL = MUNICIPALITIES[0]["id"]

pytestmark = pytest.mark.parametrize("site_kind", TWIN_KINDS, indirect=True)


@pytest.fixture
def pushed(workspace: Workspace) -> list[str]:
    """Four people on Sint-Pieters-Leeuw; returns their Rij-IDs in sheet order."""
    export = workspace.export([person(n, 0, attest_datum="2099-01-31") for n in range(1, 5)])
    assert workspace.cli("push", str(export)).exit_code == 0
    return [r["Rij-ID"] for r in workspace.rows(SPL)]


def all_cells(content: bytes) -> dict[tuple[str, str], object]:
    book = openpyxl.load_workbook(io.BytesIO(content))
    return {
        (sheet.title, cell.coordinate): cell.value
        for sheet in book.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if cell.value is not None
    }


def changed_cells(before: dict, after: dict) -> set:  # type: ignore[type-arg]
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def test_only_the_targeted_status_cells_change(workspace: Workspace, pushed: list[str]) -> None:
    before = all_cells(workspace.workbook_bytes(SPL))
    result = workspace.cli("status-update", "--site", SPL, pushed[2], "gecontacteerd")
    assert result.exit_code == 0, result.output
    after = all_cells(workspace.workbook_bytes(SPL))
    assert changed_cells(before, after) == {("Inburgeraars", "N4")}
    assert after[("Inburgeraars", "N4")] == "Gecontacteerd"
    assert [
        line["rows"] for line in workspace.audit_lines() if line["command"] == "status-update"
    ] == [[{"row_id": pushed[2], "reason": "status_set"}]]


def test_from_file_sets_many_and_dry_run_shows_old_to_new(
    workspace: Workspace, pushed: list[str]
) -> None:
    updates = workspace.root / "updates.csv"
    updates.write_text(
        f"Rij-ID;Status activiteit\n{pushed[0]};Activiteit gestart\n{pushed[3]};NIET BEREIKBAAR\n",
        encoding="utf-8",
    )
    before = workspace.site(SPL).read()
    dry = workspace.cli("status-update", "--site", SPL, "--from", str(updates), "--dry-run")
    assert dry.exit_code == 0
    assert f"{pushed[0]} status_set: (leeg) -> Activiteit gestart" in dry.stdout
    assert workspace.site(SPL).read() == before
    assert workspace.cli("status-update", "--site", SPL, "--from", str(updates)).exit_code == 0
    statuses = [r["Status activiteit"] for r in workspace.rows(SPL)]
    assert statuses == ["Activiteit gestart", None, None, "Niet bereikbaar"]
    cleared = workspace.cli("status-update", "--site", SPL, pushed[0], "leeg")
    assert f"{pushed[0]} status_set: Activiteit gestart -> (leeg)" in cleared.stdout


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("{id};Activiteit gestrat", "unknown_status"),
        ("ZZZZZ-ZZZZZ;Gecontacteerd", "unknown_row_id"),
        ("{id};Gecontacteerd", "duplicate_row_id"),
        ("Jan Peeters;Gecontacteerd", "invalid_row_id"),
        (";Gecontacteerd", "missing_value"),  # a status for no Rij-ID
        ("{id}x;Gecontacteerd", "invalid_row_id"),  # eleven symbols
    ],
)
def test_an_invalid_line_leaves_the_workbook_byte_identical(
    workspace: Workspace, pushed: list[str], line: str, code: str
) -> None:
    updates = workspace.root / "updates.csv"
    updates.write_text(
        "Rij-ID,Status activiteit\n"
        f"{pushed[0]},Gecontacteerd\n{line.format(id=pushed[0]).replace(';', ',')}\n",
        encoding="utf-8",
    )
    before = workspace.site(SPL).read()
    result = workspace.cli("--json", "status-update", "--site", SPL, "--from", str(updates))
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    problems = doc.get("problems") or doc["sites"][0]["error"]["problems"]
    assert code in [p["code"] for p in problems]
    assert workspace.site(SPL).read() == before


def test_every_bad_line_is_listed_at_once_and_no_name_is_repeated(
    workspace: Workspace, pushed: list[str]
) -> None:
    updates = workspace.root / "updates.csv"
    updates.write_text(
        "Rij-ID;Status activiteit\n"
        f"{pushed[0]};Activiteit gestrat\nZZZZZ-ZZZZZ;Gecontacteerd\n"
        "Sofie De Smet;Gecontacteerd\n",
        encoding="utf-8",
    )
    result = workspace.cli("--json", "status-update", "--site", SPL, "--from", str(updates))
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert [(p["line"], p["code"]) for p in problems] == [
        (2, "unknown_status"),
        (3, "unknown_row_id"),
        (4, "invalid_row_id"),
    ]
    plain = workspace.cli("status-update", "--site", SPL, "Sofie De Smet", "Gecontacteerd")
    assert plain.exit_code == 1 and "not a Rij-ID" in plain.output
    for text in (result.output, plain.output):
        assert "sofie" not in text.casefold()
    for log in workspace.root.rglob("*.jsonl"):
        assert "sofie" not in log.read_text().casefold()


def test_an_empty_status_argument_clears_nothing(workspace: Workspace, pushed: list[str]) -> None:
    workspace.cli("status-update", "--site", SPL, pushed[0], "Gecontacteerd")
    for blank in ("", "   "):
        result = workspace.cli("status-update", "--site", SPL, pushed[0], blank)
        assert result.exit_code == 1 and "write 'leeg'" in result.output
    assert workspace.rows(SPL)[0]["Status activiteit"] == "Gecontacteerd"


def test_status_update_on_a_site_without_workbook_fails(workspace: Workspace) -> None:
    result = workspace.cli("status-update", "--site", SPL, "7K3QZ-M9X2A", "Gecontacteerd")
    assert result.exit_code == 2 and "no workbook yet" in result.output


def test_pull_status_with_another_row_key_secret_writes_nothing(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = workspace.export([person(1, 0)])
    workspace.cli("push", str(export))
    monkeypatch.setenv("AGII_SYNC_ROWKEY_SECRET", "een-heel-ander-geheim-0123456789")
    out = workspace.root / "status.csv"
    result = workspace.cli("pull-status", str(export), "--out", str(out))
    assert result.exit_code == 5 and "row-key secret differs" in result.output
    assert not out.exists()


@pytest.mark.parametrize("how", ["deleted", "renamed"])
def test_a_lost_toelichting_is_flagged_restored_by_push_and_no_obstacle(
    workspace: Workspace, pushed: list[str], how: str
) -> None:
    def lose(book):  # type: ignore[no-untyped-def]
        if how == "deleted":
            del book["Toelichting"]
        else:
            book["Toelichting"].title = "Uitleg"

    workspace.edit_workbook(SPL, lose)
    assert workspace.cli("status-update", "--site", SPL, pushed[0], "Gecontacteerd").exit_code == 0
    check = workspace.cli("--json", "check", "--site", SPL)
    assert check.exit_code == 1 and "toelichting_missing" in check.stdout
    export = workspace.export([person(n, 0, attest_datum="2099-01-31") for n in range(1, 5)])
    assert workspace.cli("push", str(export)).exit_code == 0  # nothing changed, still repaired
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(SPL)))
    assert "Toelichting" in book.sheetnames and book["Toelichting"]["A1"].value
    assert workspace.rows(SPL)[0]["Status activiteit"] == "Gecontacteerd"
    after = workspace.cli("--json", "check", "--site", SPL)
    if how == "deleted":
        assert after.exit_code == 0, after.output
    else:  # the renamed copy is a sheet outside the protocol now (docs/protocol.md, art. 1)
        assert after.exit_code == 1 and '"extra_sheet"' in after.stdout


def test_a_formatted_empty_area_below_the_data_is_no_row(
    workspace: Workspace, pushed: list[str]
) -> None:
    """A fill on empty rows below the people (Excel writes a styled empty cell each) is the
    municipality's formatting, not a hand-added row: status-update goes ahead."""
    from openpyxl.styles import PatternFill

    def fill_below(book):  # type: ignore[no-untyped-def]
        sheet = book["Inburgeraars"]
        for row in range(sheet.max_row + 1, sheet.max_row + 4):
            for column in range(1, 15):
                sheet.cell(row=row, column=column).fill = PatternFill("solid", fgColor="FFFF00")

    workspace.edit_workbook(SPL, fill_below)
    result = workspace.cli("status-update", "--site", SPL, pushed[2], "Gecontacteerd")

    assert result.exit_code == 0, result.output
    statuses = [r["Status activiteit"] for r in workspace.rows(SPL)]
    assert statuses == [None, None, "Gecontacteerd", None]


def test_a_doubled_rij_id_elsewhere_stops_a_status_update_of_another_row(
    workspace: Workspace, pushed: list[str]
) -> None:
    """The one-row read still looks at every Rij-ID: a doubled one on another row stops the
    write, as for every command that writes (docs/workbook.md)."""

    def double(book):  # type: ignore[no-untyped-def]
        book["Inburgeraars"]["A5"] = book["Inburgeraars"]["A4"].value

    workspace.edit_workbook(SPL, double)
    before = workspace.workbook_bytes(SPL)
    result = workspace.cli("--json", "status-update", "--site", SPL, pushed[0], "Gecontacteerd")

    assert result.exit_code == 5, result.output
    error = json.loads(result.stdout)["sites"][0]["error"]
    assert error["type"] == "LayoutError" and "appears more than once" in error["message"]
    assert workspace.workbook_bytes(SPL) == before


def test_a_typo_gets_a_did_you_mean(workspace: Workspace, pushed: list[str]) -> None:
    result = workspace.cli("status-update", "--site", SPL, pushed[0], "Activiteit gestrat")
    assert result.exit_code == 1
    assert "did you mean 'Activiteit gestart'?" in result.output


def test_status_from_update_survives_the_next_push(workspace: Workspace, pushed: list[str]) -> None:
    workspace.cli("status-update", "--site", SPL, pushed[1], "Toegeleid naar activiteit")
    export = workspace.export(
        [person(n, 0, attest_datum="2099-01-31", email=f"nieuw{n}@x.be") for n in range(1, 6)]
    )
    assert workspace.cli("push", str(export)).exit_code == 0
    statuses = {r["Rij-ID"]: r["Status activiteit"] for r in workspace.rows(SPL)}
    assert statuses[pushed[1]] == "Toegeleid naar activiteit"


class RacingOpener(SiteOpener):
    """Opens sites whose first write is preceded by another user's status-update."""

    def __init__(self, config, other) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config)
        self.other = other

    def open(self, municipality):  # type: ignore[no-untyped-def]
        site = super().open(municipality)
        opener = self

        class Racing:
            url = site.url

            def read(self):  # type: ignore[no-untyped-def]
                return site.read()

            def write(self, content, if_match):  # type: ignore[no-untyped-def]
                if opener.other is not None:
                    other, opener.other = opener.other, None
                    other()
                return site.write(content, if_match)

            def delete_old_versions(self):  # type: ignore[no-untyped-def]
                return site.delete_old_versions()

            def read_access(self):  # type: ignore[no-untyped-def]
                return site.read_access()

        return Racing()


def racing_update(workspace: Workspace, mine: tuple[str, str], theirs: tuple[str, str]):  # type: ignore[no-untyped-def]
    config = load_config(workspace.write_config())
    m = config.by_id(SPL)

    def other() -> None:
        run = Run(config, "status-update", date.today())
        outcome = status_update(run, m, [StatusEdit(None, *theirs)])
        assert outcome.written

    run = Run(config, "status-update", date.today(), opener=RacingOpener(config, other))
    return status_update(run, m, [StatusEdit(None, *mine)])


def test_two_concurrent_updates_on_different_rows_both_land(
    workspace: Workspace, pushed: list[str]
) -> None:
    outcome = racing_update(workspace, (pushed[0], "Gecontacteerd"), (pushed[1], "Geen interesse"))
    assert outcome.written and outcome.attempts == 2 and outcome.error is None
    statuses = [r["Status activiteit"] for r in workspace.rows(SPL)]
    assert statuses[:2] == ["Gecontacteerd", "Geen interesse"]


def test_a_conflicting_update_is_reported_not_lost(workspace: Workspace, pushed: list[str]) -> None:
    outcome = racing_update(workspace, (pushed[0], "Gecontacteerd"), (pushed[0], "Geen interesse"))
    assert outcome.exit_code == 5
    lines = outcome.fact(StatusLinesDone)
    assert lines is not None and lines.conflict_rows == [pushed[0]]
    assert workspace.rows(SPL)[0]["Status activiteit"] == "Geen interesse"


def test_a_line_asking_for_the_status_already_there_is_a_conflict_when_someone_changes_it(
    workspace: Workspace, pushed: list[str]
) -> None:
    """Found by the chaos run: the line for pushed[0] was "no change" at the first read, the
    other user's update made the write re-read, and the re-planned write reported success for
    a status the workbook no longer held."""
    assert workspace.cli("status-update", "--site", SPL, pushed[0], "Gecontacteerd").exit_code == 0
    config = load_config(workspace.write_config())
    m = config.by_id(SPL)

    def other() -> None:
        run = Run(config, "status-update", date.today())
        assert status_update(run, m, [StatusEdit(None, pushed[0], "Geen interesse")]).written

    run = Run(config, "status-update", date.today(), opener=RacingOpener(config, other))
    mine = [
        StatusEdit(None, pushed[0], "Gecontacteerd"),
        StatusEdit(None, pushed[1], "Gecontacteerd"),
    ]
    outcome = status_update(run, m, mine)
    assert outcome.exit_code == 5 and outcome.attempts == 2
    lines = outcome.fact(StatusLinesDone)
    assert lines is not None and lines.conflict_rows == [pushed[0]]
    assert (lines.changed, lines.unchanged) == (1, 0)
    statuses = [r["Status activiteit"] for r in workspace.rows(SPL)]
    assert statuses[:2] == ["Geen interesse", "Gecontacteerd"]  # theirs kept, mine landed


def test_list_filters_people(workspace: Workspace) -> None:
    export = workspace.export(
        [
            person(1, 0, interesses="buddy", niveau_nederlands="A1"),
            person(2, 0, interesses="6;8", niveau_nederlands="B2"),
            person(3, 0, interesses="geen", niveau_nederlands=""),
        ]
    )
    workspace.cli("push", str(export))
    ids = [r["Rij-ID"] for r in workspace.rows(SPL)]
    workspace.cli("status-update", "--site", SPL, ids[1], "Gecontacteerd")
    result = workspace.cli(
        "list", "--site", SPL, "--interest", "8", "--interest", "buddy", "--format", "json"
    )
    assert [p["Naam"] for p in json.loads(result.stdout)["people"]] == ["Naamx0001q", "Naamx0002q"]
    result = workspace.cli("list", "--site", SPL, "--min-dutch", "a2", "--format", "csv")
    assert [r["Naam"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["Naamx0002q"]
    result = workspace.cli("--json", "list", "--site", SPL, "--status", "gecontacteerd")
    assert json.loads(result.stdout)["count"] == 1
    assert workspace.cli("list", "--site", SPL, "--status", "gecontaceterd").exit_code == 2
    list_lines = [line for line in workspace.audit_lines() if line["command"] == "list"]
    assert [line["counts"]["rows_read"] for line in list_lines] == [2, 1, 1]


def test_pull_status_brings_statuses_back_by_dossier(workspace: Workspace) -> None:
    people = [person(n, n % 2, attest_datum="2099-01-31") for n in range(1, 5)]
    export = workspace.export(people)
    workspace.cli("push", str(export))
    mechelen = MUNICIPALITIES[1]["id"]
    m_ids = [r["Rij-ID"] for r in workspace.rows(mechelen)]
    workspace.cli("status-update", "--site", mechelen, m_ids[0], "Activiteit afgerond")
    workspace.set_status_by_hand(SPL, workspace.rows(SPL)[0]["Rij-ID"], "bellen in mei")
    out = workspace.root / "terug" / "status.csv"
    result = workspace.cli("--json", "pull-status", str(export), "--out", str(out))
    assert result.exit_code == 1  # a hand-typed status outside the list is flagged
    lines = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(lines[0]) == ["dossiernummer", "nis_code", "status_activiteit"]
    got = {(r["dossiernummer"], r["nis_code"]): r["status_activiteit"] for r in lines}
    assert got[("A7000001", "12025")] == "Activiteit afgerond"
    assert got[("A7000002", "23077")] == ""  # free text never flows back (protocol art. 1)
    assert "bellen" not in out.read_text(encoding="utf-8")
    assert len(got) == 4
    doc = json.loads(result.stdout)
    assert sum(s["not_in_list"] for s in doc["sites"]) == 1
    assert "A7000001" not in result.stdout and "bellen" not in result.stdout


def test_csv_for_spreadsheets_never_holds_a_formula(workspace: Workspace) -> None:
    people = [person(1, 0, naam="=HYPERLINK(1)", attest_datum="2099-01-31")]
    export = workspace.export(people)
    workspace.cli("push", str(export))
    row_id = workspace.rows(SPL)[0]["Rij-ID"]
    workspace.set_status_by_hand(SPL, row_id, "@SUM(1+1)")
    listed = workspace.cli("list", "--site", SPL, "--format", "csv")
    person_row = next(csv.DictReader(io.StringIO(listed.stdout)))
    assert person_row["Naam"] == "'=HYPERLINK(1)"
    assert person_row["Telefoon"] == "'+32 470 00 00 01"  # a leading + is a formula too
    assert person_row["Status activiteit"] == "'@SUM(1+1)"
    out = workspace.root / "status.csv"
    workspace.cli("pull-status", str(export), "--out", str(out), "--site", SPL)
    assert next(csv.DictReader(out.open(encoding="utf-8")))["status_activiteit"] == ""


def test_rows_without_export_match_are_counted(workspace: Workspace) -> None:
    workspace.cli("push", str(workspace.export([person(1, 0), person(2, 0), person(3, 0)])))
    partial = workspace.export([person(1, 0)], name="partial.csv")
    result = workspace.cli(
        "--json", "pull-status", str(partial), "--out", str(workspace.root / "o.csv"), "--site", SPL
    )
    (site,) = json.loads(result.stdout)["sites"]
    assert (site["pulled"], site["unmatched"]) == (1, 2)


def test_a_workbook_resaved_by_libreoffice_still_updates(
    workspace: Workspace, pushed: list[str], tmp_path: Path
) -> None:
    resaved = libreoffice_convert(workspace.workbook_bytes(SPL), tmp_path, "xlsx")
    site = workspace.site(SPL)
    site.write(resaved, site.read().etag)
    before = all_cells(workspace.workbook_bytes(SPL))
    result = workspace.cli("status-update", "--site", SPL, pushed[1], "Activiteit gestart")
    assert result.exit_code == 0, result.output
    after = all_cells(workspace.workbook_bytes(SPL))
    assert changed_cells(before, after) == {("Inburgeraars", "N3")}
