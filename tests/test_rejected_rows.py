"""A rejected export row never removes its person (docs/safety.md).

Each case: three people are shared and one has a status; in the next export that person's row
is damaged in one key field. Whatever the damage, the person keeps their row and status: either
the row is recognised (exit 1, the others applied), or the site stops (exit 5) because push
cannot tell whom the row means. ``max_delete`` is lifted so that it cannot be what saves them.
"""

from __future__ import annotations

import json

import pytest

from agii_sync.domain.rejections import RejectedRow, for_site
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL, MECHELEN, GENK = (m["id"] for m in MUNICIPALITIES)
DOSSIER = "A7000001"

RECOGNISED = {  # the person can still be told: exit 1, the row kept
    "dossier with a zero-width space": ("dossiernummer", "A7000\u200b001"),
    "dossier with a non-breaking space": ("dossiernummer", "A7000\u00a0001"),
    "dossier with a trailing star": ("dossiernummer", DOSSIER + "*"),
    "NIS with a zero-width space": ("nis_code", "230\u200b77"),
    "NIS with a non-breaking space": ("nis_code", "230\u00a077"),
    "NIS with a trailing star": ("nis_code", "23077*"),
    "NIS of four digits": ("nis_code", "2307"),
    "NIS empty": ("nis_code", ""),
    "NIS of 33 characters": ("nis_code", "2" * 33),
}
UNRECOGNISED = {  # no one it names is on the site: the site stops, nothing written
    "dossier of 33 characters": ("dossiernummer", "A" + "7" * 32),
    "dossier empty": ("dossiernummer", ""),
}


def shared_with_status(workspace: Workspace) -> tuple[list[dict[str, str]], str]:
    workspace.agii["max_delete"] = "100%"
    people = [person(n, 0) for n in range(1, 4)]
    assert workspace.cli("push", str(workspace.export(people))).exit_code == 0
    target = next(r["Rij-ID"] for r in workspace.rows(SPL) if r["Naam"] == "Naamx0001q")
    workspace.set_status_by_hand(SPL, target, "Activiteit gestart")
    return people, target


def statuses(workspace: Workspace) -> dict[str, str]:
    return {r["Rij-ID"]: r["Status activiteit"] for r in workspace.rows(SPL)}


@pytest.mark.parametrize("column,value", RECOGNISED.values(), ids=RECOGNISED.keys())
def test_a_recognisable_rejected_row_keeps_its_person(
    workspace: Workspace, column: str, value: str
) -> None:
    people, target = shared_with_status(workspace)
    people[0][column] = value
    result = workspace.cli("--json", "push", str(workspace.export(people)))
    assert result.exit_code == 1, result.output
    assert statuses(workspace)[target] == "Activiteit gestart"
    assert len(workspace.rows(SPL)) == 3
    removals = [a for line in workspace.audit_lines() for a in line.get("affected", [])]
    assert not any(a.get("reason") == "moved_away" for a in removals)


@pytest.mark.parametrize("column,value", UNRECOGNISED.values(), ids=UNRECOGNISED.keys())
def test_an_unrecognisable_rejected_row_stops_a_site_that_would_remove_someone(
    workspace: Workspace, column: str, value: str
) -> None:
    people, target = shared_with_status(workspace)
    before = workspace.workbook_bytes(SPL)
    people[0][column] = value
    result = workspace.cli("--json", "push", str(workspace.export(people)))
    assert result.exit_code == 5, result.output
    assert workspace.workbook_bytes(SPL) == before
    assert statuses(workspace)[target] == "Activiteit gestart"
    (site,) = [s for s in json.loads(result.stdout)["sites"] if s["site"] == SPL]
    assert "line(s) 2" in site["error"]["message"]


def test_an_unrecognisable_row_does_not_stop_a_push_that_removes_no_one(
    workspace: Workspace,
) -> None:
    people, target = shared_with_status(workspace)
    people.append(person(4, 0, dossiernummer=""))  # a new person whose row is broken
    result = workspace.cli("push", str(workspace.export(people)))
    assert result.exit_code == 1, result.output
    assert statuses(workspace)[target] == "Activiteit gestart"


def test_people_positively_absent_are_still_removed(workspace: Workspace) -> None:
    people, target = shared_with_status(workspace)
    result = workspace.cli("push", str(workspace.export(people[:2])))
    assert result.exit_code == 0, result.output
    assert len(workspace.rows(SPL)) == 2 and target in statuses(workspace)


def test_an_unrecognisable_row_of_another_municipality_stops_only_its_site(
    workspace: Workspace,
) -> None:
    workspace.agii["max_delete"] = "100%"
    people = [person(1, 0), person(2, 0), person(3, 1), person(4, 1)]
    assert workspace.cli("push", str(workspace.export(people))).exit_code == 0
    people[2]["dossiernummer"] = ""  # Mechelen's row broken; it names Mechelen by NIS
    result = workspace.cli("--json", "push", str(workspace.export(people[:1] + people[2:])))
    assert result.exit_code == 5
    outcomes = {s["site"]: s for s in json.loads(result.stdout)["sites"]}
    assert outcomes[SPL].get("error") is None and len(workspace.rows(SPL)) == 1
    assert outcomes[MECHELEN]["error"] is not None and len(workspace.rows(MECHELEN)) == 2


def key(nis: str, dossier: str) -> str:
    return f"{nis}:{dossier}"


def test_an_exact_dossier_is_kept_on_every_site_whatever_its_nis() -> None:
    rows = [RejectedRow(7, None, "A1")]
    for nis in ("23077", "12025"):
        seen = for_site(rows, nis=nis, postal_codes=["1600"], key=key)
        assert seen.keep == {f"{nis}:A1"} and seen.unsure == ()


def test_a_row_with_no_dossier_concerns_the_site_of_its_nis_else_its_postcode_else_all() -> None:
    by_nis = RejectedRow(3, "12025", None, postcode="1600")
    by_postcode = RejectedRow(4, None, None, postcode="1600")
    anywhere = RejectedRow(5, None, None)
    seen = for_site([by_nis, by_postcode, anywhere], nis="23077", postal_codes=["1600"], key=key)
    assert seen.unaccounted_lines([]) == [4, 5]
    guessed = RejectedRow(6, None, None, dossier_guess="A1")
    seen = for_site([guessed], nis="23077", postal_codes=["1600"], key=key)
    assert seen.unaccounted_lines(["23077:A1"]) == [] and seen.unaccounted_lines([]) == [6]
