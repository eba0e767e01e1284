"""The round trip staff do: `list --format csv|xlsx` → fill in a few statuses → `status-update
--from FILE`. Blank statuses change nothing, only changed lines are applied, the report counts
changed/unchanged/problems, and Rij-IDs are read as Crockford base32 is meant to be read."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import pytest

from agii_sync.domain.row import read_row_id
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL = MUNICIPALITIES[0]["id"]


@pytest.fixture
def pushed(workspace: Workspace) -> list[str]:
    """Four people; the first followed up already, the second with a status typed by hand
    (outside the list, starting like a formula)."""
    export = workspace.export([person(n, 0, attest_datum="2099-01-31") for n in range(1, 5)])
    assert workspace.cli("push", str(export)).exit_code == 0
    ids = [r["Rij-ID"] for r in workspace.rows(SPL)]
    assert workspace.cli("status-update", "--site", SPL, ids[0], "Gecontacteerd").exit_code == 0
    workspace.set_status_by_hand(SPL, ids[1], "@bellen in mei")
    return ids


def as_typed(row_id: str) -> str:
    """How a person may copy a Rij-ID: lower case, no dash, O for 0, L for 1, I for 1."""
    return row_id.replace("-", "").replace("0", "O").replace("1", "l").lower()


def status_lines(workspace: Workspace) -> list[dict]:  # type: ignore[type-arg]
    return [line for line in workspace.audit_lines() if line["command"] == "status-update"]


@pytest.mark.parametrize("site_kind", ["file", "emulator"], indirect=True)
def test_csv_round_trip_applies_only_the_changed_line(
    workspace: Workspace, pushed: list[str]
) -> None:
    listed = workspace.cli("list", "--site", SPL, "--format", "csv")
    assert listed.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(listed.stdout)))
    assert [r["Status activiteit"] for r in rows] == ["Gecontacteerd", "'@bellen in mei", "", ""]
    rows[2]["Status activiteit"] = "activiteit gestart"
    rows[2]["Rij-ID"] = as_typed(rows[2]["Rij-ID"])
    edited = workspace.root / "lijst.csv"
    with edited.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    audited = len(status_lines(workspace))

    result = workspace.cli("--json", "status-update", "--site", SPL, "--from", str(edited))

    assert result.exit_code == 0, result.output
    (site,) = json.loads(result.stdout)["sites"]
    assert (site["lines_changed"], site["lines_unchanged"], site["lines_with_problems"]) == (
        1,
        3,
        0,
    )
    assert [c["row_id"] for c in site["changes"]] == [pushed[2]]
    statuses = [r["Status activiteit"] for r in workspace.rows(SPL)]
    assert statuses == ["Gecontacteerd", "@bellen in mei", "Activiteit gestart", None]
    (line,) = status_lines(workspace)[audited:]
    assert line["rows"] == [{"row_id": pushed[2], "reason": "status_set"}]
    again = workspace.cli("status-update", "--site", SPL, "--from", str(edited))
    assert again.exit_code == 0
    assert "0 line(s) changed a status, 4 unchanged, 0 with problems" in again.stderr


@pytest.mark.parametrize("site_kind", ["file", "emulator"], indirect=True)
def test_xlsx_round_trip_keeps_the_workbook_layout(workspace: Workspace, pushed: list[str]) -> None:
    listed_file = workspace.root / "lijst.xlsx"
    listed = workspace.cli("list", "--site", SPL, "--format", "xlsx", "--out", str(listed_file))
    assert listed.exit_code == 0 and "wrote 4 people" in listed.stderr
    book = openpyxl.load_workbook(listed_file)
    sheet = book["Inburgeraars"]
    assert sheet.protection.sheet and sheet.data_validations.dataValidation  # the drop-down
    sheet["N4"] = "Niet bereikbaar"
    sheet["N5"] = "Geen interesse"
    sheet["A5"] = as_typed(pushed[3])
    book.save(listed_file)

    result = workspace.cli("status-update", "--site", SPL, "--from", str(listed_file))

    assert result.exit_code == 0, result.output
    assert "2 line(s) changed a status, 2 unchanged, 0 with problems" in result.stderr
    statuses = [r["Status activiteit"] for r in workspace.rows(SPL)]
    assert statuses == ["Gecontacteerd", "@bellen in mei", "Niet bereikbaar", "Geen interesse"]


def test_a_hand_typed_status_from_the_list_can_be_replaced(
    workspace: Workspace, pushed: list[str]
) -> None:
    listed = workspace.cli("list", "--site", SPL, "--format", "csv")
    lines = listed.stdout.replace("'@bellen in mei", "Geen interesse")  # my edit of row 2
    edited = workspace.root / "lijst.csv"
    edited.write_text(lines, encoding="utf-8")
    result = workspace.cli("--json", "status-update", "--site", SPL, "--from", str(edited))
    assert result.exit_code == 0
    (site,) = json.loads(result.stdout)["sites"]
    assert (site["lines_changed"], site["lines_unchanged"]) == (1, 3)


def test_problems_are_counted_and_nothing_is_written(
    workspace: Workspace, pushed: list[str]
) -> None:
    edited = workspace.root / "lijst.csv"
    edited.write_text(
        "Rij-ID,Naam,Status activiteit\n"
        f"{pushed[2]},x,Gecontacteerd\n"
        "Sofie De Smet,x,Gecontacteerd\n"  # not a Rij-ID: never repeated
        f"{pushed[3]},x,bellen\n"  # not in the list and not the workbook's own
        f"{pushed[1]},x,'@bellen in mei\n",  # the workbook's own hand-typed status: unchanged
        encoding="utf-8",
    )
    before = workspace.workbook_bytes(SPL)
    result = workspace.cli("--json", "status-update", "--site", SPL, "--from", str(edited))
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [(p["line"], p["code"]) for p in doc["problems"]] == [
        (3, "invalid_row_id"),
        (4, "unknown_status"),
    ]
    assert "2 problem(s)" in doc["error"]["message"]
    assert "sofie" not in result.output.casefold()
    assert workspace.workbook_bytes(SPL) == before


def test_xlsx_list_is_never_dumped_on_a_terminal_or_next_to_json(workspace: Workspace) -> None:
    workspace.cli("push", str(workspace.export([person(1, 0)])))
    result = workspace.cli("--json", "list", "--site", SPL, "--format", "xlsx")
    assert result.exit_code == 2 and "--out" in result.output
    piped = workspace.cli("list", "--site", SPL, "--format", "xlsx")  # stdout is not a terminal
    assert piped.exit_code == 0 and piped.stdout_bytes.startswith(b"PK")


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("7K3QZ-M9X2A", "7K3QZ-M9X2A"),
        ("7k3qzm9x2a", "7K3QZ-M9X2A"),
        (" 7K3QZ-M9X2A ", "7K3QZ-M9X2A"),
        ("OOOOO-IIIII", "00000-11111"),
        ("lLlLl-oOoOo", "11111-00000"),
        ("7K3-QZM9-X2A", "7K3QZ-M9X2A"),  # Crockford: hyphens anywhere are ignored
        ("7K3QZ-M9X2U", None),  # U is not a symbol
        ("7K3QZ-M9X2", None),
        ("7K3QZ M9X2A", None),
        ("Sofie De Smet", None),
        ("", None),
    ],
)
def test_rij_ids_are_read_as_crockford_base32(typed: str, meant: str | None) -> None:
    assert read_row_id(typed) == meant
