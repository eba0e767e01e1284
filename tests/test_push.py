"""push, init, check and validate through the CLI, on every site kind.

The promises of docs/safety.md are the point: nothing lost, nothing sent to the wrong place,
nothing written that should not be.
"""

from __future__ import annotations

import io
import json
from datetime import date, timedelta

import openpyxl
import pytest

from agii_sync.domain.row import COLUMNS
from fixtures.workspace import MUNICIPALITIES, TWIN_KINDS, Workspace, person

SPL, MECHELEN, GENK = (m["id"] for m in MUNICIPALITIES)

pytestmark = pytest.mark.parametrize("site_kind", TWIN_KINDS, indirect=True)


def row_ids(ws: Workspace, site: str) -> list[str]:
    return [r["Rij-ID"] for r in ws.rows(site)]


def test_push_routes_each_person_to_their_municipality(workspace: Workspace) -> None:
    export = workspace.export([person(1, 0), person(2, 1), person(3, 2), person(4, 0)])
    result = workspace.cli("push", str(export))
    assert result.exit_code == 0, result.output
    assert [r["Naam"] for r in workspace.rows(SPL)] == ["Naamx0001q", "Naamx0004q"]
    assert [r["Naam"] for r in workspace.rows(MECHELEN)] == ["Naamx0002q"]
    assert [r["Naam"] for r in workspace.rows(GENK)] == ["Naamx0003q"]


def test_shared_row_holds_the_workbook_columns(workspace: Workspace) -> None:
    export = workspace.export(
        [
            person(
                1,
                0,
                bus="3",
                contacttaal="Arabisch",
                interesses="buddy|6",
                niveau_nederlands="B1/2",
                attest_datum="15/01/2099",
                telefoon="0032470123456",
            )
        ]
    )
    assert workspace.cli("push", str(export)).exit_code == 0
    (row,) = workspace.rows(SPL)
    assert list(row) == [
        "Rij-ID",
        "Naam",
        "Voornaam",
        "Adres",
        "Postcode",
        "Gemeente",
        "Telefoon",
        "E-mail",
        "Contacttaal",
        "Niveau Nederlands",
        "Status MO",
        "Interesses en noden",
        "Bewaren tot",
        "Status activiteit",
    ]
    assert row["Adres"] == "Straatx0001laan 2 bus 3"
    assert row["Telefoon"] == "+32 470 12 34 56"
    assert row["Contacttaal"] == "Arabisch (ARA)"
    assert row["Niveau Nederlands"] == "B1"
    assert row["Interesses en noden"] == "buddy; sport en beweging"
    assert row["Bewaren tot"].date() == date(2099, 7, 15)
    assert row["Status activiteit"] is None
    assert "A7000001" not in json.dumps(row, default=str)  # the dossier number never goes out


def test_repush_of_the_same_export_writes_nothing(workspace: Workspace) -> None:
    export = workspace.export([person(n, n % 3) for n in range(1, 10)])
    assert workspace.cli("push", str(export)).exit_code == 0
    before = {m["id"]: workspace.site(m["id"]).read() for m in MUNICIPALITIES}
    result = workspace.cli("--json", "push", str(export))
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert all(not s["written"] for s in doc["sites"])
    assert all(s["counts"]["unchanged"] == 3 for s in doc["sites"])
    for site, snapshot in before.items():
        after = workspace.site(site).read()
        assert (after.etag, after.content) == (snapshot.etag, snapshot.content)


def test_person_absent_from_new_export_is_removed_as_moved_away(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 5)]
    workspace.cli("push", str(workspace.export(people)))
    gone = row_ids(workspace, SPL)[1]
    result = workspace.cli("--json", "push", str(workspace.export(people[:1] + people[2:])))
    assert result.exit_code == 0, result.output
    site = next(s for s in json.loads(result.stdout)["sites"] if s["site"] == SPL)
    assert {"row_id": gone, "reason": "moved_away", "columns": []} in site["changes"]
    assert gone not in row_ids(workspace, SPL)
    audit_rows = [r for line in workspace.audit_lines() for r in line["rows"]]
    assert {"row_id": gone, "reason": "moved_away"} in audit_rows


def test_person_who_moved_leaves_the_old_site_and_reaches_the_new_one(workspace: Workspace) -> None:
    workspace.cli(
        "push", str(workspace.export([person(1, 0), person(2, 0), person(3, 0), person(4, 0)]))
    )
    moved = person(1, 1)  # same dossier, now living in Mechelen
    result = workspace.cli(
        "push", str(workspace.export([moved, person(2, 0), person(3, 0), person(4, 0)]))
    )
    assert result.exit_code == 0, result.output
    assert "Naamx0001q" not in [r["Naam"] for r in workspace.rows(SPL)]
    assert [r["Naam"] for r in workspace.rows(MECHELEN)] == ["Naamx0001q"]


def test_status_typed_in_the_workbook_survives_every_push(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 4)]
    workspace.cli("push", str(workspace.export(people)))
    target = row_ids(workspace, SPL)[1]
    workspace.set_status_by_hand(SPL, target, "Activiteit gestart")
    changed = [dict(p) for p in people]
    changed[1]["straat"] = "Nieuwex0002straat"  # AgII updates this very person
    for export in (people, changed, changed + [person(9, 0)]):
        assert workspace.cli("push", str(workspace.export(export))).exit_code == 0
        statuses = {r["Rij-ID"]: r["Status activiteit"] for r in workspace.rows(SPL)}
        assert statuses[target] == "Activiteit gestart"
    assert workspace.rows(SPL)[1]["Adres"].startswith("Nieuwex0002straat")


def test_status_of_a_rejected_row_is_kept(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 4)]
    workspace.cli("push", str(workspace.export(people)))
    target = row_ids(workspace, SPL)[0]
    workspace.set_status_by_hand(SPL, target, "Gecontacteerd")
    people[0]["telefoon"] = "12"  # invalid now: the row is rejected, the person still shared
    result = workspace.cli("push", str(workspace.export(people)))
    assert result.exit_code == 1
    assert {r["Rij-ID"]: r["Status activiteit"] for r in workspace.rows(SPL)}[
        target
    ] == "Gecontacteerd"


def test_foreign_postcode_reaches_no_workbook(workspace: Workspace) -> None:
    stray = person(5, 0, postcode="2800")  # NIS of Sint-Pieters-Leeuw, postcode of Mechelen
    result = workspace.cli(
        "--json", "push", str(workspace.export([person(1, 0), stray, person(2, 1)]))
    )
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [(p["line"], p["code"]) for p in doc["export"]["problems"]] == [(3, "postcode_mismatch")]
    for m in MUNICIPALITIES:
        content = workspace.workbook_bytes(m["id"])
        names = [r["Naam"] for r in workspace.rows(m["id"])] if content else []
        assert "Naamx0005q" not in names


def test_rows_of_municipalities_not_in_the_config_are_skipped_not_judged(
    workspace: Workspace,
) -> None:
    other = {"nis_code": "11002", "postcode": "2000", "gemeente": "Antwerpen"}
    messy = person(2, 0, **other, email="geen-adres", status_mo="onbekend", telefoon="12")
    twice = [person(3, 0, **other), person(3, 0, **other, naam="Anders")]  # their problem
    export = workspace.export([person(1, 0), messy, *twice])
    result = workspace.cli("--json", "push", str(export))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["export"]
    assert summary["problems"] == [] and summary["skipped_other_nis"] == 3
    assert [r["Naam"] for r in workspace.rows(SPL)] == ["Naamx0001q"]


def test_a_dossier_number_shared_with_a_skipped_row_is_rejected(workspace: Workspace) -> None:
    """The person may live in the other municipality: sharing them here could be wrong."""
    elsewhere = person(1, 0, nis_code="11002", postcode="2000", gemeente="Antwerpen")
    result = workspace.cli("--json", "push", str(workspace.export([person(1, 0), elsewhere])))
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["export"]["problems"]
    assert [(p["line"], p["code"]) for p in problems] == [
        (2, "duplicate_dossier"),
        (3, "duplicate_dossier"),
    ]
    assert workspace.rows(SPL) == []


def test_columns_outside_the_workbook_layout_never_reach_a_workbook(workspace: Workspace) -> None:
    row = person(1, 0) | {"rijksregisternummer": "85073003328", "opmerking_intern": "Geheimx"}
    result = workspace.cli("--json", "push", str(workspace.export([row])))
    assert result.exit_code == 0
    assert json.loads(result.stdout)["export"]["unknown_columns"] == [
        "rijksregisternummer",  # close to a column of ours: shown
        "(column 18)",  # not: a header cell may hold anything (docs/safety.md)
    ]
    content = workspace.workbook_bytes(SPL)
    text = json.dumps(workspace.rows(SPL), default=str)
    assert "85073003328" not in text and "Geheimx" not in text
    assert b"Geheimx" not in content


def test_formula_like_text_is_stored_as_text(workspace: Workspace) -> None:
    evil = person(1, 0, naam='=HYPERLINK("http://x","klik")', voornaam="@SUM(1)")
    result = workspace.cli("push", str(workspace.export([evil])))
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(SPL)))
    cells = book["Inburgeraars"][2]
    assert cells[1].value == '=HYPERLINK("http://x","klik")' and cells[1].data_type == "s"
    assert cells[2].data_type == "s" and cells[6].data_type == "s"  # +32 phone is text too
    assert workspace.cli("check").exit_code == 0


def test_max_delete_stops_a_push_that_removes_too_much(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 9)]
    workspace.cli("push", str(workspace.export(people)))
    before = workspace.site(SPL).read()
    result = workspace.cli("push", str(workspace.export(people[:4])), "--site", SPL)
    assert result.exit_code == 5
    assert "max_delete" in result.output
    assert workspace.site(SPL).read() == before
    dry = workspace.cli("--json", "push", str(workspace.export(people[:4])), "--dry-run")
    site = next(s for s in json.loads(dry.stdout)["sites"] if s["site"] == SPL)
    assert site["exit_code"] == 5  # and it says who would have gone:
    assert [c["reason"] for c in site["changes"]] == ["moved_away"] * 4
    assert (
        workspace.cli(
            "push", str(workspace.export(people[:4])), "--site", SPL, "--max-delete", "4"
        ).exit_code
        == 0
    )
    assert len(workspace.rows(SPL)) == 4


def test_dry_run_prints_the_plan_and_writes_nothing(workspace: Workspace) -> None:
    workspace.cli("push", str(workspace.export([person(1, 0), person(2, 0)])))
    before = workspace.site(SPL).read()
    export = workspace.export([person(1, 0, straat="Anderex"), person(2, 0), person(3, 0)])
    result = workspace.cli("push", str(export), "--dry-run", "--site", SPL)
    assert result.exit_code == 0
    assert "updated (Adres)" in result.stdout and "added" in result.stdout
    assert "would change" in result.stdout  # not "unchanged"
    assert workspace.site(SPL).read() == before


def test_strict_writes_nothing_anywhere_if_a_row_is_rejected(workspace: Workspace) -> None:
    export = workspace.export([person(1, 0), person(2, 1, email="geen-adres")])
    result = workspace.cli("push", str(export), "--strict")
    assert result.exit_code == 1
    assert all(workspace.workbook_bytes(m["id"]) is None for m in MUNICIPALITIES)


def test_push_outside_the_protocol_window_is_refused(workspace: Workspace) -> None:
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    workspace.protocol[GENK] = {"start": "2024-01-01", "end": yesterday}
    result = workspace.cli("push", str(workspace.export([person(1, 0), person(2, 2)])))
    assert result.exit_code == 5
    assert "purge" in result.output
    assert workspace.workbook_bytes(GENK) is None
    assert len(workspace.rows(SPL)) == 1  # the other sites still went through


def test_people_past_retention_are_not_shared_and_are_removed(workspace: Workspace) -> None:
    long_ago = (date.today() - timedelta(days=400)).isoformat()
    workspace.cli("push", str(workspace.export([person(n, 0) for n in range(1, 6)])))
    people = [person(n, 0) for n in range(1, 6)] + [person(6, 0, attest_datum=long_ago)]
    people[0]["attest_datum"] = long_ago
    result = workspace.cli("--json", "push", str(workspace.export(people)))
    site = next(s for s in json.loads(result.stdout)["sites"] if s["site"] == SPL)
    assert [c["reason"] for c in site["changes"]] == ["retention"]
    assert site["past_retention_not_added"] == 2
    assert len(workspace.rows(SPL)) == 4


def test_the_toelichting_tells_the_configured_retention_and_the_columns(
    workspace: Workspace,
) -> None:
    workspace.agii["retention_months"] = 3
    workspace.cli("push", str(workspace.export([person(1, 0)])))
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(SPL)))
    text = " ".join(str(v) for row in book["Toelichting"].iter_rows(values_only=True) for v in row)
    assert "(3 maanden na het behalen" in text and "6 maanden" not in text
    assert "; ".join(COLUMNS) in text


def test_the_toelichting_names_the_legal_basis_and_the_protocol(workspace: Workspace) -> None:
    """The processing rests on GDPR (AVG) art. 6.1(e); the protocol carries it out."""
    workspace.cli("init")
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(SPL)))
    basis = {row[0]: row[1] for row in book["Toelichting"].iter_rows(values_only=True)}
    assert "art. 6.1.e van de AVG" in basis["Rechtsgrond"]
    assert "e-governmentdecreet" in basis["Rechtsgrond"]


def test_a_changed_header_stops_that_site_and_says_which(workspace: Workspace) -> None:
    export = workspace.export([person(1, 0), person(2, 1)])
    workspace.cli("push", str(export))

    def rename_header(book):  # type: ignore[no-untyped-def]
        book["Inburgeraars"]["H1"] = "Mail"

    workspace.edit_workbook(MECHELEN, rename_header)
    result = workspace.cli("push", str(export))
    assert result.exit_code == 5
    assert f"error: {MECHELEN}: header cell H1 is changed" in result.stderr


def key_mark(workspace: Workspace, site: str) -> str | None:
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(site)), read_only=True)
    found = [p.value for p in book.custom_doc_props if p.name == "agii-sync row-key check"]
    return found[0] if found else None


def test_a_push_with_another_row_key_secret_is_refused(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = workspace.export([person(1, 0), person(2, 0)])
    workspace.cli("push", str(export))
    row_id = workspace.rows(SPL)[0]["Rij-ID"]
    workspace.cli("status-update", "--site", SPL, row_id, "Gecontacteerd")
    mark = key_mark(workspace, SPL)
    assert mark is not None and len(mark) == 11
    before = workspace.site(SPL).read()

    monkeypatch.setenv("AGII_SYNC_ROWKEY_SECRET", "een-heel-ander-geheim-0123456789")
    result = workspace.cli("push", str(export), "--max-delete", "100%")

    assert result.exit_code == 5 and "row-key secret differs" in result.output
    assert workspace.site(SPL).read() == before
    assert key_mark(workspace, SPL) == mark  # status-update kept the mark


def test_a_workbook_without_the_key_mark_is_adopted(workspace: Workspace) -> None:
    export = workspace.export([person(1, 0)])
    workspace.cli("push", str(export))

    def drop_mark(book):  # type: ignore[no-untyped-def]
        book.custom_doc_props.props = []

    workspace.edit_workbook(SPL, drop_mark)
    assert key_mark(workspace, SPL) is None
    assert workspace.cli("push", str(workspace.export([person(1, 0), person(2, 0)]))).exit_code == 0
    assert key_mark(workspace, SPL) is not None


def test_init_creates_the_template_and_never_overwrites(workspace: Workspace) -> None:
    assert workspace.cli("init").exit_code == 0
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(SPL)))
    assert book.sheetnames == ["Inburgeraars", "Toelichting"]
    sheet = book["Inburgeraars"]
    assert sheet.protection.sheet
    (validation,) = sheet.data_validations.dataValidation
    assert "Toegeleid naar activiteit" in validation.formula1
    assert str(validation.sqref).startswith("N2")
    workspace.cli("push", str(workspace.export([person(1, 0)])))
    before = workspace.site(SPL).read()
    assert workspace.cli("init").exit_code == 0
    assert workspace.site(SPL).read() == before


def test_other_sheets_are_left_exactly_as_they_are(workspace: Workspace) -> None:
    workspace.cli("push", str(workspace.export([person(1, 0), person(2, 0)])))

    def add_sheet(book):  # type: ignore[no-untyped-def]
        notes = book.create_sheet("Notities gemeente")
        notes["A1"] = "eigen planning"
        notes["B2"] = 42

    workspace.edit_workbook(SPL, add_sheet)
    workspace.cli("push", str(workspace.export([person(1, 0), person(2, 0), person(3, 0)])))
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(SPL)))
    assert book.sheetnames == ["Inburgeraars", "Toelichting", "Notities gemeente"]
    assert (book["Notities gemeente"]["A1"].value, book["Notities gemeente"]["B2"].value) == (
        "eigen planning",
        42,
    )


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (lambda book: book["Inburgeraars"].cell(1, 2, "Familienaam"), 5),
        (lambda book: book["Inburgeraars"].append(["", "Handx", "Toegevoegd"]), 5),
        (lambda book: setattr(book["Inburgeraars"].cell(2, 2), "value", "=1+1"), 5),
        (lambda book: book["Inburgeraars"].cell(1, 15, "Opmerking"), 5),
    ],
    ids=["renamed-header", "hand-added-row", "formula", "extra-column"],
)
def test_unexpected_layout_stops_push_and_leaves_the_workbook(
    workspace: Workspace, edit, code
) -> None:  # type: ignore[no-untyped-def]
    workspace.cli("push", str(workspace.export([person(1, 0)])))
    workspace.edit_workbook(SPL, edit)
    before = workspace.site(SPL).read()
    result = workspace.cli(
        "push", str(workspace.export([person(1, 0), person(2, 0)])), "--site", SPL
    )
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert workspace.site(SPL).read() == before
    assert workspace.cli("check", "--site", SPL).exit_code in (1, 5)


def test_check_reports_hand_typed_status_and_keeps_it(workspace: Workspace) -> None:
    workspace.cli("push", str(workspace.export([person(1, 0), person(2, 0)])))
    target = row_ids(workspace, SPL)[0]
    workspace.set_status_by_hand(SPL, target, "gebeld, komt langs")
    result = workspace.cli("--json", "check", "--site", SPL)
    assert result.exit_code == 1
    (site,) = json.loads(result.stdout)["sites"]
    assert [(f["row"], f["code"]) for f in site["findings"]] == [(2, "unknown_status")]
    assert "gebeld" not in result.stdout
    workspace.cli("push", str(workspace.export([person(1, 0), person(2, 0), person(3, 0)])))
    assert workspace.rows(SPL)[0]["Status activiteit"] == "gebeld, komt langs"


def test_json_output_is_one_document(workspace: Workspace) -> None:
    result = workspace.cli("--json", "push", str(workspace.export([person(1, 0)])))
    doc = json.loads(result.stdout)
    assert doc["command"] == "push" and doc["exit_code"] == 0
    assert {s["site"] for s in doc["sites"]} == {SPL, MECHELEN, GENK}
