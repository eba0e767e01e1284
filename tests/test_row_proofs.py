"""Row proofs (docs/workbook.md, "Row proofs"): a push does not validate again an export row
that the last push validated and wrote, and whose row the workbook still holds as written;
anything else is validated as on a first push, with the same result.

Each test counts the rows validated (``validate_row`` in the export reader; the exports here
are small, so they are read in this process) and compares the workbook with what a push
without any proof makes.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from agii_sync.demo_data import write_export
from agii_sync.domain import proof
from agii_sync.formats import export_reader
from agii_sync.runs import proven
from fixtures.workspace import MUNICIPALITIES, Workspace, on, person

SPL = MUNICIPALITIES[0]["id"]
PEOPLE = [person(n) for n in range(1, 13)]


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The export lines validated in full, in order, for each push: when the export is read,
    and when a push finds that a row it carried is not proven in the workbook."""
    lines: list[int] = []
    real = export_reader.validate_row

    def counting(line: int, raw: Any) -> Any:
        lines.append(line)
        return real(line, raw)

    monkeypatch.setattr(export_reader, "validate_row", counting)
    monkeypatch.setattr(proven, "validate_row", counting)
    return lines


def proofs_file(ws: Workspace, site: str = SPL) -> Path:
    return ws.root / "var" / "audit.jsonl.proofs" / f"{site}.json"


def push(ws: Workspace, rows: list[dict[str, str]], validated: list[int]) -> list[int]:
    """Push ``rows``; the lines validated in full."""
    validated.clear()
    result = ws.cli("--json", "push", str(ws.export(rows)))
    assert result.exit_code in (0, 1), result.output
    return list(validated)


def without_proofs(ws: Workspace, rows: list[dict[str, str]], tmp_path: Path) -> list[dict]:
    """The rows a push of ``rows`` makes from the same workbook with no proof at all."""
    twin = Workspace(tmp_path / "twin", ws.kind)
    shutil.copytree(ws.root, twin.root)
    shutil.rmtree(twin.root / "var" / "audit.jsonl.proofs", ignore_errors=True)
    assert twin.cli("push", str(twin.export(rows))).exit_code in (0, 1)
    return twin.rows(SPL)


def test_an_unchanged_export_is_not_validated_again(
    workspace: Workspace, validated: list[int]
) -> None:
    assert push(workspace, PEOPLE, validated) == list(range(2, 14))  # every line, first time
    before = workspace.workbook_bytes(SPL)
    assert push(workspace, PEOPLE, validated) == []
    assert workspace.workbook_bytes(SPL) == before  # nothing to write: nothing written
    stored = json.loads(proofs_file(workspace).read_text())
    assert sorted(stored) == sorted(r["Rij-ID"] for r in workspace.rows(SPL))


def test_only_the_changed_rows_are_validated_and_the_result_is_a_full_push(
    workspace: Workspace, validated: list[int], tmp_path: Path
) -> None:
    push(workspace, PEOPLE, validated)
    workspace.set_status_by_hand(SPL, workspace.rows(SPL)[3]["Rij-ID"], "Gecontacteerd")
    night = [dict(p) for p in PEOPLE[:-1]] + [person(40)]  # one gone, one new
    night[2]["straat"] = "Anderestraatx"
    night[5]["telefoon"] = "0470 99 88 77"
    expected = without_proofs(workspace, night, tmp_path)
    # Lines 4 and 7 changed, line 13 is new: only those are validated.
    assert push(workspace, night, validated) == [4, 7, 13]
    assert workspace.rows(SPL) == expected
    assert workspace.rows(SPL)[3]["Status activiteit"] == "Gecontacteerd"


def test_a_changed_row_that_is_now_invalid_is_rejected_as_on_a_first_push(
    workspace: Workspace, validated: list[int]
) -> None:
    push(workspace, PEOPLE, validated)
    night = [dict(p) for p in PEOPLE]
    night[4]["telefoon"] = "12"
    assert push(workspace, night, validated) == [6]
    result = workspace.cli("--json", "push", str(workspace.export(night)))
    problems = json.loads(result.stdout)["export"]["problems"]
    assert [(p["line"], p["code"]) for p in problems] == [(6, "invalid_phone")]
    assert len(workspace.rows(SPL)) == len(PEOPLE)  # the rejected person is kept as they were


def test_a_row_edited_or_deleted_by_hand_is_validated_and_made_again(
    workspace: Workspace, validated: list[int], tmp_path: Path
) -> None:
    push(workspace, PEOPLE, validated)
    rows = workspace.rows(SPL)
    workspace.set_status_by_hand(SPL, rows[7]["Rij-ID"], "Activiteit gestart")
    assert push(workspace, PEOPLE, validated) == []  # and the status memory has it

    def edit(book: Any) -> None:
        sheet = book["Inburgeraars"]
        sheet.cell(row=3, column=7).value = "+32 470 00 00 00"  # an AgII cell typed over
        sheet.delete_rows(9)  # the person of line 9 of the export (8th row)

    workspace.edit_workbook(SPL, edit)
    expected = without_proofs(workspace, PEOPLE, tmp_path)
    assert push(workspace, PEOPLE, validated) == [3, 9]
    after = workspace.rows(SPL)
    assert after == expected
    assert after[1]["Telefoon"] == rows[1]["Telefoon"]  # the export's value, back
    (restored,) = [r for r in after if r["Rij-ID"] == rows[7]["Rij-ID"]]
    assert restored["Status activiteit"] == "Activiteit gestart"  # restored with its status


def test_proofs_of_other_rules_are_never_used(
    workspace: Workspace, validated: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    push(workspace, PEOPLE, validated)
    assert push(workspace, PEOPLE, validated) == []
    # Any change to the validation code, a library it uses or Unicode's version: a new
    # fingerprint, and every row is validated again.
    monkeypatch.setattr(proof, "rules_fingerprint", lambda: b"other rules")
    assert push(workspace, PEOPLE, validated) == list(range(2, 14))
    assert push(workspace, PEOPLE, validated) == []


def test_a_damaged_proofs_file_is_as_good_as_none(
    workspace: Workspace, validated: list[int]
) -> None:
    push(workspace, PEOPLE, validated)
    stored = json.loads(proofs_file(workspace).read_text())
    first, second, *_ = sorted(stored)
    stored[first] = "not hex"
    stored[second] = stored[second][:-2]
    proofs_file(workspace).write_text(json.dumps(stored))
    assert len(push(workspace, PEOPLE, validated)) == 2  # the two rows whose proof is damaged
    proofs_file(workspace).write_text("{broken")
    assert push(workspace, PEOPLE, validated) == list(range(2, 14))
    assert push(workspace, PEOPLE, validated) == []


def test_proofs_hold_no_value_and_leave_with_the_person(
    workspace: Workspace, validated: list[int]
) -> None:
    push(workspace, PEOPLE, validated)
    text = proofs_file(workspace).read_text()
    for p in PEOPLE:
        for value in (p["dossiernummer"], p["naam"], p["email"], p["telefoon"]):
            assert value not in text
    gone = workspace.rows(SPL)[0]["Rij-ID"]
    push(workspace, PEOPLE[1:], validated)  # moved away
    assert gone not in json.loads(proofs_file(workspace).read_text())
    assert workspace.cli("forget", PEOPLE[1]["dossiernummer"], "--reason", "erasure").exit_code == 0
    forgotten = workspace.rows(SPL)[0]["Rij-ID"]
    push(workspace, PEOPLE[1:], validated)
    assert forgotten not in json.loads(proofs_file(workspace).read_text())


def test_the_end_of_the_protocol_removes_every_proof(
    workspace: Workspace, validated: list[int]
) -> None:
    workspace.protocol[SPL] = {"start": "2024-01-01", "end": "2030-06-30"}
    with on(date(2030, 1, 2)):
        push(workspace, PEOPLE, validated)
    assert proofs_file(workspace).exists()
    with on(date(2030, 7, 1)):
        assert workspace.cli("purge").exit_code in (0, 5)
    assert not proofs_file(workspace).exists()


def test_people_past_retention_are_proven_without_a_row(
    workspace: Workspace, validated: list[int], tmp_path: Path
) -> None:
    old = [person(n, attest_datum="2020-01-15") for n in range(50, 54)]
    with on(date(2030, 1, 2)):
        push(workspace, PEOPLE + old, validated)
        assert len(workspace.rows(SPL)) == len(PEOPLE)  # past retention: never written
        assert push(workspace, PEOPLE + old, validated) == []
        stored = json.loads(proofs_file(workspace).read_text())
        assert len(stored) == len(PEOPLE) + len(old)
        assert sum(len(v) == 2 * proof.PROOF_BYTES for v in stored.values()) == len(old)
        push(workspace, PEOPLE, validated)  # they left the export
        assert len(json.loads(proofs_file(workspace).read_text())) == len(PEOPLE)


def test_a_dry_run_keeps_no_proof(workspace: Workspace, validated: list[int]) -> None:
    result = workspace.cli("push", "--dry-run", str(workspace.export(PEOPLE)))
    assert result.exit_code == 0, result.output
    assert not proofs_file(workspace).exists()


def test_a_line_read_again_must_be_the_line_read_first(tmp_path: Path) -> None:
    """A carried row that must be validated after all is read from the export again; if the
    file changed meanwhile, the push of that site stops (exit 2) rather than use other data."""
    from agii_sync.errors import InputError

    path = tmp_path / "export.csv"
    write_export(path, PEOPLE)
    proofs = proof.Proofs(proof.proof_key(b"secret"))
    first = export_reader.read_export(path, proofs=proofs)
    wanted = {3: first.proofs[3], 7: first.proofs[7]}
    again = export_reader.read_again(path, proofs, wanted)
    assert sorted(again) == [3, 7] and again[3]["naam"] == PEOPLE[1]["naam"]
    changed = [dict(p) for p in PEOPLE]
    changed[5]["email"] = "iemand.anders@voorbeeld.be"  # line 7
    write_export(path, changed)
    with pytest.raises(InputError, match="changed while push read it"):
        export_reader.read_again(path, proofs, wanted)


def test_purge_takes_the_proofs_of_the_rows_it_removes(
    workspace: Workspace, validated: list[int]
) -> None:
    leaving = [person(n, attest_datum="2030-01-15") for n in range(60, 63)]  # kept to 2030-07-15
    with on(date(2030, 2, 1)):
        push(workspace, PEOPLE + leaving, validated)
        assert len(json.loads(proofs_file(workspace).read_text())) == len(PEOPLE) + 3
        ids = {r["Rij-ID"] for r in workspace.rows(SPL)}
    with on(date(2030, 7, 16)):
        assert workspace.cli("purge").exit_code == 0
        kept = {r["Rij-ID"] for r in workspace.rows(SPL)}
    assert len(ids - kept) == 3
    assert set(json.loads(proofs_file(workspace).read_text())) == kept
