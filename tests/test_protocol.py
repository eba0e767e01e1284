"""The data-sharing protocol, article by article, through the CLI (docs/protocol.md links each
obligation to its test here, or in test_purge.py / test_access_check.py where noted there).

The clock is set in-process with time-machine; the CLI reads it through ``date.today()``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.comments import Comment

from fixtures.emulator import RunningEmulator
from fixtures.leaks import assert_no_personal_data
from fixtures.workspace import AGII_ENTRY, AGII_USER, MUNICIPALITIES, Workspace, on, person

SPL, MECHELEN, GENK = (m["id"] for m in MUNICIPALITIES)
both_kinds = pytest.mark.parametrize("site_kind", ["file", "emulator"], indirect=True)
emulator_only = pytest.mark.parametrize("site_kind", ["emulator"], indirect=True)


def doc_of(result: Any) -> dict[str, Any]:
    return json.loads(result.stdout)


def site_doc(result: Any, site: str) -> dict[str, Any]:
    return next(s for s in doc_of(result)["sites"] if s["site"] == site)


def ids_by_name(ws: Workspace, site: str) -> dict[str, str]:
    return {r["Naam"]: r["Rij-ID"] for r in ws.rows(site)}


def push(ws: Workspace, people: list[dict[str, str]], *args: str, code: int = 0) -> Any:
    result = ws.cli("--json", "push", str(ws.export(people)), *args)
    assert result.exit_code == code, result.output
    return result


def stored_versions(ws: Workspace, request: pytest.FixtureRequest, site: str) -> list[bytes]:
    """The bytes of every older version the emulator keeps for the site (its own storage)."""
    emulator: RunningEmulator = request.getfixturevalue("emulator")
    folder = emulator.site_folder(site) / ".emulator" / "versions"
    return [p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()]


# -- art. 1 and 3: one-way flow; only the status comes back ----------------------------------


def test_the_status_drop_down_stops_other_values(workspace: Workspace) -> None:
    push(workspace, [person(1, 0)])
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(SPL)))
    (validation,) = book["Inburgeraars"].data_validations.dataValidation
    assert (validation.type, validation.errorStyle, validation.showErrorMessage) == (
        "list",
        "stop",
        True,
    )


def drop_down_of_version_0_1_0(book: openpyxl.Workbook) -> None:
    """The status drop-down as agii-sync 0.1.0 wrote it: other text is kept after a warning."""
    from openpyxl.worksheet.datavalidation import DataValidation

    sheet = book["Inburgeraars"]
    old = DataValidation(
        type="list",
        formula1='"Gecontacteerd,Niet bereikbaar,Geen interesse,Toegeleid naar activiteit,'
        'Activiteit gestart,Activiteit afgerond,Activiteit stopgezet"',
        allow_blank=True,
        showErrorMessage=True,
        errorStyle="warning",
        errorTitle="Status activiteit",
        error="Deze waarde staat niet in de lijst. Toch bewaren?",
    )
    old.add("N2:N1048576")
    sheet.data_validations.dataValidation = [old]


@both_kinds
def test_a_drop_down_that_only_warns_is_flagged_and_made_to_stop(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 3)]
    push(workspace, people)
    workspace.edit_workbook(SPL, drop_down_of_version_0_1_0)

    checked = workspace.cli("--json", "check", "--site", SPL)
    assert checked.exit_code == 1, checked.output
    (finding,) = site_doc(checked, SPL)["findings"]
    assert finding["code"] == "status_drop_down" and "(warning)" in finding["message"]

    pushed = push(workspace, people)  # nothing else to change: written for the drop-down alone
    assert site_doc(pushed, SPL)["written"]
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(SPL)))
    (validation,) = book["Inburgeraars"].data_validations.dataValidation
    assert (validation.errorStyle, str(validation.sqref)) == ("stop", "N2:N1048576")
    assert "Toch bewaren" not in (validation.error or "")
    assert "Activiteit gestart" in validation.formula1
    assert workspace.cli("check", "--site", SPL).exit_code == 0


@both_kinds
def test_free_text_in_the_status_never_flows_back(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 4)]
    push(workspace, people)
    target = ids_by_name(workspace, SPL)["Naamx0002q"]
    remark = "diabetes, belt terug via Naamx0002q"  # a health remark: art. 9 data
    workspace.set_status_by_hand(SPL, target, remark)
    out = workspace.root / "terug.csv"

    pulled = workspace.cli(
        "--json", "pull-status", str(workspace.export(people)), "--out", str(out)
    )
    assert pulled.exit_code == 1, pulled.output
    assert site_doc(pulled, SPL)["not_in_list_rows"] == [target]
    lines = {r["dossiernummer"]: r["status_activiteit"] for r in csv.DictReader(out.open())}
    assert lines == {"A7000001": "", "A7000002": "", "A7000003": ""}
    assert "diabetes" not in out.read_text() and "diabetes" not in pulled.output

    pushed = push(workspace, people, code=1)  # push flags it too (and keeps the cell)
    assert site_doc(pushed, SPL)["not_in_list_rows"] == [target]
    checked = workspace.cli("--json", "check", "--site", SPL)
    assert checked.exit_code == 1
    assert [(f["code"], f["row"]) for f in site_doc(checked, SPL)["findings"]] == [
        ("unknown_status", 3)
    ]
    assert "diabetes" not in pushed.output + checked.output


def test_check_flags_sheets_and_notes_the_municipality_added(workspace: Workspace) -> None:
    push(workspace, [person(n, 0) for n in range(1, 3)])
    assert workspace.cli("check", "--site", SPL).exit_code == 0

    def additions(book):  # type: ignore[no-untyped-def]
        book.create_sheet("Opvolging")["A1"] = "Naamx0001q: depressie"
        book["Inburgeraars"]["B2"].comment = Comment("zwanger, Naamx0002q", "gemeente")
        book["Inburgeraars"]["C3"].comment = Comment("tweede notitie", "gemeente")

    workspace.edit_workbook(SPL, additions)
    result = workspace.cli("--json", "check", "--site", SPL)
    assert result.exit_code == 1
    findings = {f["code"]: f["message"] for f in site_doc(result, SPL)["findings"]}
    assert set(findings) == {"extra_sheet", "notes"}
    assert findings["extra_sheet"].startswith("1 sheet(s) outside the protocol")
    assert findings["notes"].startswith("2 note(s)")
    assert "Opvolging" not in result.output and "zwanger" not in result.output


# -- art. 3: special categories through a code ------------------------------------------------


def test_a_sign_language_is_refused_unless_the_dpos_agreed(workspace: Workspace) -> None:
    people = [person(1, 0), person(2, 0, contacttaal="vgt"), person(3, 0, contacttaal="BFI")]
    workspace.agii["allow_sign_languages"] = True  # first as agreed, then the agreement ends
    push(workspace, people)
    shared = {r["Naam"]: r["Contacttaal"] for r in workspace.rows(SPL)}
    assert shared["Naamx0002q"] == "Vlaamse Gebarentaal (VGT)"
    ids = ids_by_name(workspace, SPL)

    del workspace.agii["allow_sign_languages"]  # the default: refused
    checked = workspace.cli("--json", "check", "--site", SPL)
    assert {(f["code"], f["row"]) for f in site_doc(checked, SPL)["findings"]} == {
        ("sign_language", 3),
        ("sign_language", 4),
    }
    result = push(workspace, people, code=1)
    problems = [(p["line"], p["column"], p["code"]) for p in doc_of(result)["export"]["problems"]]
    assert problems == [(3, "contacttaal", "sign_language"), (4, "contacttaal", "sign_language")]
    assert [r["Naam"] for r in workspace.rows(SPL)] == ["Naamx0001q"]
    changes = {c["row_id"]: c["reason"] for c in site_doc(result, SPL)["changes"]}
    assert changes == {ids["Naamx0002q"]: "special_category", ids["Naamx0003q"]: "special_category"}
    assert "allow_sign_languages" in workspace.cli("validate", str(workspace.export(people))).output


# -- art. 3: retention --------------------------------------------------------------------------


def test_retention_is_at_most_six_months_and_may_be_shorter_per_municipality(
    workspace: Workspace,
) -> None:
    workspace.agii["retention_months"] = 7
    refused = workspace.cli("check")
    assert refused.exit_code == 2 and "retention_months" in refused.output
    workspace.agii["retention_months"] = 6
    workspace.municipality_extra[MECHELEN] = {"retention_months": 3}
    with on(date(2025, 3, 1)):
        push(
            workspace,
            [person(1, 0, attest_datum="2025-01-15"), person(2, 1, attest_datum="2025-01-15")],
        )
    assert workspace.rows(SPL)[0]["Bewaren tot"].date() == date(2025, 7, 15)
    assert workspace.rows(MECHELEN)[0]["Bewaren tot"].date() == date(2025, 4, 15)
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(MECHELEN)))
    assert any("3 maanden" in str(v) for row in book["Toelichting"].values for v in row)


@both_kinds
def test_without_an_attest_or_with_a_rejected_row_a_limit_still_applies(
    workspace: Workspace,
) -> None:
    workspace.agii["max_keep_without_attest_months"] = 2
    workspace.agii["max_delete"] = "100%"
    workspace.protocol[GENK] = {"start": "2024-01-01", "end": "2025-04-20"}
    people = [person(1, 0), person(2, 0), person(3, 2, attest_datum="2025-02-01")]
    with on(date(2025, 3, 10)):
        push(workspace, people)
    kept = {r["Naam"]: r["Bewaren tot"].date() for r in workspace.rows(SPL)}
    assert kept == {"Naamx0001q": date(2025, 5, 31), "Naamx0002q": date(2025, 5, 31)}
    # never past the protocol's end, attest or not
    assert workspace.rows(GENK)[0]["Bewaren tot"].date() == date(2025, 4, 20)

    with on(date(2025, 4, 2)):  # still shared: the limit moves on once a month
        people[1]["email"] = "not an address"  # rejected: the row stays as it was
        push(workspace, people, "--site", SPL, code=1)
    kept = {r["Naam"]: r["Bewaren tot"].date() for r in workspace.rows(SPL)}
    assert kept == {"Naamx0001q": date(2025, 6, 30), "Naamx0002q": date(2025, 5, 31)}

    with on(date(2025, 6, 1)):
        result = workspace.cli("--json", "purge", "--site", SPL)
    assert result.exit_code == 0, result.output
    assert [c["reason"] for c in site_doc(result, SPL)["changes"]] == ["retention"]
    assert [r["Naam"] for r in workspace.rows(SPL)] == ["Naamx0001q"]


# -- art. 5, 8, 12: the end (the full run: test_purge.py::test_protocol_end_*) ----------------


@emulator_only
def test_an_early_end_is_recorded_and_purge_leaves_no_version(
    workspace: Workspace, request: pytest.FixtureRequest
) -> None:
    people = [person(n, 2) for n in range(1, 4)]
    with on(date(2025, 3, 1)):
        push(workspace, people)
        push(workspace, people[:2], "--max-delete", "1")  # an older version holds the third
    assert stored_versions(workspace, request, GENK)
    workspace.municipality_extra[GENK] = {"ended_on": "2025-05-31", "end_reason": "notice"}
    workspace.allowed[GENK] = f'["staff@{GENK}.be", {AGII_ENTRY}]'
    with on(date(2025, 6, 1)):
        refused = workspace.cli("push", str(workspace.export(people)), "--site", GENK)
        assert refused.exit_code == 5
        assert "ended early on 2025-05-31 (notice)" in refused.output
        stopped = workspace.cli("--json", "purge", "--site", GENK)
        assert stopped.exit_code == 5  # the staff can still reach the site
        assert workspace.rows(GENK) == [] and stored_versions(workspace, request, GENK) == []
        workspace.grant_access(
            GENK,
            overwrite=True,
            role_assignments=[{"principal": AGII_USER, "roles": ["Full Control"]}],
        )
        assert workspace.cli("purge", "--site", GENK).exit_code == 0
    end = [
        c
        for line in workspace.audit_lines()
        if line["command"] == "config"
        for c in line["changes"]
        if c["key"].startswith(f"municipality[{GENK}].end")
    ]
    assert {(c["key"], c["new"]) for c in end} == {
        (f"municipality[{GENK}].ended_on", "2025-05-31"),
        (f"municipality[{GENK}].end_reason", "notice"),
    }


@both_kinds
def test_after_the_end_pull_status_runs_once_more_and_then_refuses(workspace: Workspace) -> None:
    people = [person(1, 0, attest_datum="2025-06-01"), person(2, 0), person(3, 1)]
    with on(date(2025, 3, 1)):
        push(workspace, people)
        workspace.set_status_by_hand(
            SPL, ids_by_name(workspace, SPL)["Naamx0001q"], "Gecontacteerd"
        )
    workspace.protocol[SPL] = {"start": "2024-01-01", "end": "2025-06-30"}
    first, second, third = (workspace.root / f"terug-{n}.csv" for n in (1, 2, 3))
    mechelen = workspace.site(MECHELEN)
    good = mechelen.read()
    mechelen.write(b"not a workbook", good.etag)

    with on(date(2025, 7, 1)):  # another site fails: no file, so this was not the last pull
        failed = workspace.cli("pull-status", str(workspace.export(people)), "--out", str(first))
    assert failed.exit_code == 5 and not first.exists(), failed.output
    mechelen.write(good.content, mechelen.read().etag)
    with on(date(2025, 7, 2)):
        last = workspace.cli(
            "--json", "pull-status", str(workspace.export(people)), "--out", str(first)
        )
    assert last.exit_code == 0, last.output
    statuses = {r["dossiernummer"]: r["status_activiteit"] for r in csv.DictReader(first.open())}
    assert statuses == {"A7000001": "Gecontacteerd", "A7000002": "", "A7000003": ""}
    (marked,) = [line for line in workspace.audit_lines() if line.get("last_pull")]
    assert (marked["site"], marked["counts"]) == (SPL, {"pulled": 2})

    with on(date(2025, 7, 9)):
        again = workspace.cli(
            "--json", "pull-status", str(workspace.export(people)), "--out", str(second)
        )
        alone = workspace.cli(
            "pull-status", str(workspace.export(people)), "--out", str(third), "--site", SPL
        )
    assert again.exit_code == 5, again.output
    message = site_doc(again, SPL)["error"]["message"]
    assert "already pulled on 2025-07-02" in message and "runs once after the end" in message
    assert "purge --site" in site_doc(again, SPL)["error"]["hint"]
    assert site_doc(again, MECHELEN)["error"] is None
    # the other sites' statuses still reach AgII; the ended site's were delivered before
    assert [r["nis_code"] for r in csv.DictReader(second.open())] == [MUNICIPALITIES[1]["nis"]]
    assert alone.exit_code == 5 and "no site left to pull" in alone.output and not third.exists()
    assert len([line for line in workspace.audit_lines() if line.get("last_pull")]) == 1
    assert_no_personal_data({"again": again.output, "alone": alone.output}, people)


# -- art. 4, 6: recipients ---------------------------------------------------------------------


def test_allowed_may_not_be_empty(workspace: Workspace) -> None:
    workspace.allowed[SPL] = "[]"
    result = workspace.cli("check")
    assert result.exit_code == 2
    assert "municipality[id=sint-pieters-leeuw].allowed" in result.output


def test_a_principal_above_its_level_is_reported_and_blocks_push(workspace: Workspace) -> None:
    workspace.allowed[SPL] = (
        f'[{{principal = "staff@{SPL}.be", profile = "trajectbegeleider", level = "read"}}]'
    )
    result = workspace.cli("--json", "access-check", "--site", SPL)
    assert result.exit_code == 1
    assert [(f["code"], f["kind"]) for f in site_doc(result, SPL)["findings"]] == [
        ("above_level", "unexpected")
    ]
    assert push(workspace, [person(1, 0)], "--site", SPL, code=5)
    assert workspace.workbook_bytes(SPL) is None
    workspace.allowed[SPL] = f'[{{principal = "staff@{SPL}.be", level = "edit"}}]'
    assert workspace.cli("access-check", "--site", SPL).exit_code == 0


# -- GDPR 15-21: forget, and every event about a person ----------------------------------------


@both_kinds
def test_forget_then_push_shares_nothing_of_the_person(
    workspace: Workspace, request: pytest.FixtureRequest
) -> None:
    people = [person(n, 0) for n in range(1, 5)] + [person(9, 1)]
    push(workspace, people)
    push(workspace, people[:3] + people[4:] + [people[3] | {"straat": "Anderestraatx"}])
    target = ids_by_name(workspace, SPL)["Naamx0002q"]
    workspace.set_status_by_hand(SPL, target, "Gecontacteerd")

    result = workspace.cli("--json", "forget", people[1]["dossiernummer"], "--reason", "objection")
    assert result.exit_code == 0, result.output
    assert doc_of(result)["newly_listed"] is True
    again = workspace.cli("forget", people[1]["dossiernummer"].lower(), "--reason", "erasure")
    assert again.exit_code == 0 and "already on the list" in again.output
    out = workspace.root / "terug.csv"  # before the next push: their status stays on the site
    pulled = workspace.cli(
        "--json", "pull-status", str(workspace.export(people)), "--out", str(out)
    )
    assert pulled.exit_code == 0 and site_doc(pulled, SPL)["suppressed"] == 1
    assert people[1]["dossiernummer"] not in out.read_text()

    pushed = push(workspace, people)  # the export still holds the person
    assert doc_of(pushed)["export"]["suppressed"] == 1
    assert target not in ids_by_name(workspace, SPL).values()
    assert "Naamx0002q" not in {
        r["Naam"] for s in (SPL, MECHELEN, GENK) for r in _rows(workspace, s)
    }
    changes = {c["row_id"]: c["reason"] for c in site_doc(pushed, SPL)["changes"]}
    assert changes[target] == "suppressed"
    assert sorted(changes.values()) == ["suppressed", "updated"]  # person 4's street, back
    if workspace.kind == "emulator":
        assert site_doc(pushed, SPL)["versions_deleted"] >= 1
        assert not any(b"Naamx0002q" in v for v in _unzipped_versions(workspace, request, SPL))
    assert push(workspace, people).exit_code == 0  # and never again
    assert target not in ids_by_name(workspace, SPL).values()

    listed = workspace.config_path.parent / "var" / "suppressed.jsonl"
    assert_no_personal_data(
        {"suppression list": listed.read_text(), "audit": json.dumps(workspace.audit_lines())},
        [people[1]],
    )

    events = doc_of(workspace.cli("--json", "audit", "person", people[1]["dossiernummer"]))
    seen = [(e["command"], e["site"], e["row_id"], e["reasons"]) for e in events["events"]]
    assert seen == [
        ("push", SPL, target, ["added"]),
        ("forget", None, None, ["objection"]),
        ("forget", None, None, ["erasure"]),
        ("push", SPL, target, ["suppressed"]),
    ]
    table = workspace.cli("audit", "person", people[1]["dossiernummer"])
    assert table.exit_code == 0 and target in table.output
    assert people[1]["dossiernummer"] not in table.output


def test_forget_reaches_a_site_through_purge_without_an_export(workspace: Workspace) -> None:
    people = [person(n, 1) for n in range(1, 4)]
    push(workspace, people)
    target = ids_by_name(workspace, MECHELEN)["Naamx0003q"]
    assert workspace.cli("forget", people[2]["dossiernummer"], "--reason", "erasure").exit_code == 0
    result = workspace.cli("--json", "purge")
    assert result.exit_code == 0, result.output
    assert [(c["row_id"], c["reason"]) for c in site_doc(result, MECHELEN)["changes"]] == [
        (target, "suppressed")
    ]
    assert workspace.cli("forget", "not a dossier!", "--reason", "erasure").exit_code == 2
    assert workspace.cli("forget", "A1", "--reason", "because").exit_code == 2


def _rows(ws: Workspace, site: str) -> list[dict[str, Any]]:
    return ws.rows(site) if ws.workbook_bytes(site) else []


def _unzipped_versions(ws: Workspace, request: pytest.FixtureRequest, site: str) -> list[bytes]:
    import zipfile

    found = []
    for content in stored_versions(ws, request, site):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            found.append(b"".join(archive.read(n) for n in archive.namelist()))
    return found


# -- art. 6: breach duty -----------------------------------------------------------------------


STAFF = {
    "principal": {
        "type": "user",
        "title": "Staff",
        "email": f"staff@{SPL}.be",
        "login": f"i:0#.f|membership|staff@{SPL}.be",
    },
    "roles": ["Edit"],
}
EVERYONE = {
    "principal": {
        "type": "security_group",
        "title": "Everyone except external users",
        "login": "c:0-.f|rolemanager|spo-grid-all-users/tenant",
    },
    "roles": ["Read"],
}
ANONYMOUS = {"kind": "anonymous", "roles": ["Read"]}


@both_kinds
def test_critical_access_is_an_incident_with_a_deadline_and_the_dpos(
    workspace: Workspace,
) -> None:
    workspace.agii["dpo"] = "dpo@agii.example"
    workspace.municipality_extra[SPL] = {"dpo": "dpo@spl.example"}
    workspace.grant_access(SPL, overwrite=True, role_assignments=[STAFF], sharing_links=[ANONYMOUS])
    with on(date(2025, 3, 1)):
        result = workspace.cli("--json", "access-check")
    assert result.exit_code == 5, result.output
    (incident,) = site_doc(result, SPL)["incidents"]
    assert incident["detected"].startswith("2025-03-01") and incident["report_by"].startswith(
        "2025-03-03"
    )
    assert incident["opened_by"] is None and not incident["overdue"]
    assert "dpo@spl.example" in result.stderr and "dpo@agii.example" in result.stderr
    assert "48 hours" in result.stderr
    assert site_doc(result, MECHELEN)["incidents"] == []
    (line,) = [a for a in workspace.audit_lines() if a.get("event") == "incident"]
    assert (line["site"], line["codes"]) == (SPL, ["anonymous_link"])
    assert datetime.fromisoformat(line["report_by"]) - datetime.fromisoformat(line["detected"]) == (
        datetime(2025, 3, 3) - datetime(2025, 3, 1)
    )
    assert "dpo@" not in json.dumps(line)


def access_check_on(ws: Workspace, day: date, assignments: list[Any], links: list[Any]) -> Any:
    ws.grant_access(SPL, overwrite=True, role_assignments=assignments, sharing_links=links)
    with on(day):
        result = ws.cli("--json", "access-check", "--site", SPL)
    return result, site_doc(result, SPL)["incidents"]


@both_kinds
def test_a_critical_finding_that_persists_keeps_its_incident_and_deadline(
    workspace: Workspace,
) -> None:
    first, (opened,) = access_check_on(workspace, date(2025, 3, 1), [STAFF], [ANONYMOUS])
    assert first.exit_code == 5 and opened["opened_by"] is None
    (opening,) = [a for a in workspace.audit_lines() if a.get("event") == "incident"]

    again, (same,) = access_check_on(workspace, date(2025, 3, 2), [STAFF], [ANONYMOUS])
    assert again.exit_code == 5, again.output  # still a safety stop: it is not over
    assert (same["detected"], same["report_by"]) == (opened["detected"], opened["report_by"])
    assert same["opened_by"] == opening["seq"] and not same["overdue"]
    assert f"still open since {opened['detected'][:16]}" in again.stderr
    assert f"(audit line {opening['seq']})" in again.stderr
    assert f"report it by {opened['report_by'][:16]}" in again.stderr

    # two nights later: the deadline has passed; a second kind opens an incident of its own
    later, incidents = access_check_on(workspace, date(2025, 3, 4), [STAFF, EVERYONE], [ANONYMOUS])
    new, old = incidents
    assert (new["codes"], new["opened_by"]) == (["everyone"], None)
    assert new["report_by"].startswith("2025-03-06")
    assert (old["codes"], old["opened_by"], old["overdue"]) == (
        ["anonymous_link"],
        opening["seq"],
        True,
    )
    assert f"the 48 hours ran out at {opened['report_by'][:16]}" in later.stderr

    # fixed, then back: a new incident with a new deadline
    fixed, none = access_check_on(workspace, date(2025, 3, 5), [STAFF], [])
    assert fixed.exit_code == 0 and none == []
    back, (reopened,) = access_check_on(workspace, date(2025, 3, 9), [STAFF], [ANONYMOUS])
    assert reopened["opened_by"] is None and reopened["report_by"].startswith("2025-03-11")

    lines = workspace.audit_lines()
    events = [(a["event"], a["codes"]) for a in lines if "event" in a]
    assert events == [
        ("incident", ["anonymous_link"]),
        ("incident_persists", ["anonymous_link"]),
        ("incident", ["everyone"]),
        ("incident_persists", ["anonymous_link"]),
        ("incident", ["anonymous_link"]),
    ]
    persists = [a for a in lines if a.get("event") == "incident_persists"]
    assert {(a["incident"], a["report_by"]) for a in persists} == {
        (opening["seq"], opening["report_by"])
    }


# -- art. 6: proof of the configuration --------------------------------------------------------


def test_every_audit_line_carries_the_config_hash_and_a_change_is_recorded(
    workspace: Workspace,
) -> None:
    push(workspace, [person(1, 0)])
    workspace.cli("check")
    workspace.agii["retention_months"] = 4
    workspace.allowed[MECHELEN] = '["staff@mechelen.be", "nieuw.lid@mechelen.be"]'
    workspace.protocol[GENK] = {"start": "2024-01-01", "end": "2030-12-31"}
    workspace.cli("check")
    lines = workspace.audit_lines()
    assert all(len(line["config"]) == 64 for line in lines)
    first, second = (line for line in lines if line["command"] == "config")
    assert first["previous_config"] is None
    assert lines[0] == first  # the first run records the configuration it ran under
    assert second["previous_config"] == first["config"] != second["config"]
    assert second["changes"] == [
        {"key": "agii.retention_months", "old": 6, "new": 4},
        {"key": f"municipality[{GENK}].protocol_end", "old": "2099-12-31", "new": "2030-12-31"},
        {"key": f"municipality[{MECHELEN}].allowed"},  # names staff: the key only
    ]
    assert "nieuw.lid" not in json.dumps(lines)
    assert len({line["config"] for line in lines}) == 2
    assert workspace.cli("audit", "verify").exit_code == 0


# -- art. 7: data quality -----------------------------------------------------------------------


def test_check_and_the_toelichting_say_how_to_report_wrong_data(workspace: Workspace) -> None:
    workspace.agii["data_errors_contact"] = "gegevens@agii.example"
    push(workspace, [person(1, 0)])
    result = workspace.cli("check", "--site", SPL)
    assert result.exit_code == 0
    assert "Report it to gegevens@agii.example" in result.stdout
    assert "within two weeks" in result.stdout and "Rij-ID" in result.stdout
    doc = doc_of(workspace.cli("--json", "check", "--site", SPL))
    assert "gegevens@agii.example" in doc["data_errors"]
    book = openpyxl.load_workbook(io.BytesIO(workspace.workbook_bytes(SPL)))
    text = " ".join(str(v) for row in book["Toelichting"].values for v in row if v)
    assert "binnen twee weken" in text and "Rij-ID" in text and "art. 7" in text


def test_protocol_doc_links_every_test_it_names() -> None:
    """docs/protocol.md names its tests as path::name; each must exist."""
    import re

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "protocol.md").read_text(encoding="utf-8")
    named = re.findall(r"(tests/test_\w+\.py)::(test_\w+)", text)
    assert len(named) >= 9
    for path, name in named:
        assert f"def {name}(" in (root / path).read_text(encoding="utf-8"), (path, name)


@both_kinds
def test_a_list_status_in_another_case_flows_back_as_the_list_spells_it(
    workspace: Workspace,
) -> None:
    """Excel's list validation accepts 'gecontacteerd' for 'Gecontacteerd': it is a list
    value, not free text, so pull-status passes it on and neither push nor check flags it."""
    people = [person(n, 0) for n in range(1, 3)]
    push(workspace, people)
    target = ids_by_name(workspace, SPL)["Naamx0002q"]
    workspace.set_status_by_hand(SPL, target, "gecontacteerd")
    out = workspace.root / "terug.csv"

    pulled = workspace.cli(
        "--json", "pull-status", str(workspace.export(people)), "--out", str(out)
    )
    assert pulled.exit_code == 0, pulled.output
    assert site_doc(pulled, SPL)["not_in_list"] == 0
    lines = {r["dossiernummer"]: r["status_activiteit"] for r in csv.DictReader(out.open())}
    assert lines == {"A7000001": "", "A7000002": "Gecontacteerd"}

    pushed = push(workspace, people)
    assert "not_in_list_rows" not in site_doc(pushed, SPL)
    assert {r["Rij-ID"]: r["Status activiteit"] for r in workspace.rows(SPL)}[target] == (
        "gecontacteerd"  # kept as typed
    )
    checked = workspace.cli("--json", "check", "--site", SPL)
    assert checked.exit_code == 0, checked.output

    same = workspace.cli("--json", "status-update", "--site", SPL, target, "GECONTACTEERD")
    assert same.exit_code == 0, same.output
    assert site_doc(same, SPL)["lines_unchanged"] == 1
    assert site_doc(same, SPL)["written"] is False
