"""Routing that cannot be fooled (docs/safety.md, "Key fields are exact").

Key fields (dossier number, NIS code, postcode) are read exactly: no separator of any Unicode
kind is normalised away. NIS codes and postcodes must be on the official lists, and a row whose
postcode is a configured municipality's while its NIS code names another is rejected: in every
case the person's existing row stays, status and all.
"""

from __future__ import annotations

import json

import pytest

from agii_sync.domain import refnis
from agii_sync.domain.export import validate_row
from agii_sync.domain.problems import ProblemCode
from fixtures.workspace import Workspace, person
from test_rejected_rows import shared_with_status, statuses

SEPARATORS = {
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "next line": "\u0085",
    "ideographic space": "\u3000",
    "no-break space": "\u00a0",
    "narrow no-break space": "\u202f",
    "zero-width space": "\u200b",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "vertical tab": "\x0b",
}
KEYS = {"dossiernummer": "A7000001", "nis_code": "23077", "postcode": "1600"}
CODES = {
    "dossiernummer": ProblemCode.INVALID_DOSSIER,
    "nis_code": ProblemCode.INVALID_NIS,
    "postcode": ProblemCode.INVALID_POSTCODE,
}


@pytest.mark.parametrize("where", ["before", "inside", "after"])
@pytest.mark.parametrize("separator", SEPARATORS.values(), ids=SEPARATORS.keys())
@pytest.mark.parametrize("column", KEYS)
def test_no_separator_of_any_kind_is_normalised_out_of_a_key(
    column: str, separator: str, where: str
) -> None:
    value = KEYS[column]
    damaged = {
        "before": separator + value,
        "inside": value[:2] + separator + value[2:],
        "after": value + separator,
    }[where]
    record, problems = validate_row(2, {**person(1, 0), column: damaged})
    assert record is None
    assert (column, CODES[column]) in {(p.column, p.code) for p in problems}


def test_ascii_padding_around_a_key_is_still_read() -> None:
    padded = {column: f" {value}\t" for column, value in KEYS.items()}
    record, problems = validate_row(2, {**person(1, 0), **padded})
    assert record is not None and not problems
    assert (record.dossiernummer, record.nis_code, record.postcode) == tuple(KEYS.values())


@pytest.mark.parametrize("separator", ["\u2028", "\u2029"], ids=["U+2028", "U+2029"])
@pytest.mark.parametrize("column", KEYS)
def test_a_key_with_a_line_separator_is_not_routed_and_keeps_its_person(
    workspace: Workspace, column: str, separator: str
) -> None:
    people, target = shared_with_status(workspace)
    people[0][column] = people[0][column] + separator
    result = workspace.cli("--json", "push", str(workspace.export(people)))
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["export"]["problems"]
    assert {"line": 2, "column": column} in [
        {"line": p["line"], "column": p["column"]} for p in problems
    ]
    assert statuses(workspace)[target] == "Activiteit gestart"


@pytest.mark.parametrize(
    ("nis", "code"),
    [("23078", "invalid_nis"), ("23088", "nis_postcode_conflict")],
    ids=["on-no-list", "another-municipality"],
)
def test_a_nis_typo_never_moves_a_person_away(workspace: Workspace, nis: str, code: str) -> None:
    """23078 is no municipality's code; 23088 is Vilvoorde's, but the postcode stays 1600."""
    people, target = shared_with_status(workspace)
    people[0]["nis_code"] = nis
    result = workspace.cli("--json", "push", str(workspace.export(people)))
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert code in {p["code"] for p in doc["export"]["problems"]}
    assert statuses(workspace)[target] == "Activiteit gestart"
    removals = [a for line in workspace.audit_lines() for a in line.get("affected", [])]
    assert not any(a.get("reason") == "moved_away" for a in removals)


def test_a_row_of_another_municipality_with_its_own_postcode_is_skipped(
    workspace: Workspace,
) -> None:
    people = [person(1, 0), person(2, 0, nis_code="23088", postcode="1800")]
    result = workspace.cli("--json", "validate", str(workspace.export(people)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped_other_nis"] == 1


@pytest.mark.parametrize("postcode", ["1234", "9999"])
def test_a_postcode_on_no_list_is_rejected(postcode: str) -> None:
    record, problems = validate_row(2, {**person(1, 0), "postcode": postcode})
    assert record is None and [p.code for p in problems] == [ProblemCode.INVALID_POSTCODE]


def test_the_official_lists_load_with_the_2025_mergers() -> None:
    names = refnis.municipality_names()
    assert len(names) == 565  # 581 before 1 January 2025
    assert names["44088"] == "Merelbeke-Melle" and "44043" not in names  # Melle merged
    assert names["23077"] == "Sint-Pieters-Leeuw"
    assert refnis.postcode_municipalities()["1600"] == {"23077"}
    assert refnis.postcode_municipalities()["1040"] == {"21004", "21005"}  # shared in Brussels
    assert refnis.postcode_belongs_to("9090", "44088") and not refnis.is_postcode("9999")
    assert "2025-01-01" in refnis.lists_source()


@pytest.mark.parametrize(
    ("mutation", "fragment"),
    [
        (lambda text: text.replace('nis = "71016"', 'nis = "71099"'), "municipality[id=genk].nis"),
        (
            lambda text: text.replace('postal_codes = ["3600"]', 'postal_codes = ["3500"]'),
            "postal code 3500 is not one of NIS 71016",
        ),
        (
            lambda text: text.replace('postal_codes = ["3600"]', 'postal_codes = ["3699"]'),
            "postal code 3699",
        ),
    ],
    ids=["nis-on-no-list", "postcode-of-another", "postcode-on-no-list"],
)
def test_config_keys_must_be_on_the_official_lists(
    workspace: Workspace, mutation, fragment: str
) -> None:  # type: ignore[no-untyped-def]
    path = workspace.write_config()
    path.write_text(mutation(path.read_text()), encoding="utf-8")
    from typer.testing import CliRunner

    from agii_sync.cli import app

    result = CliRunner().invoke(app, ["--config", str(path), "check"])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and path.name in result.output
