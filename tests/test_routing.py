"""Routing (docs/export.md, docs/safety.md): a person reaches only their own municipality."""

from __future__ import annotations

from datetime import date

from agii_sync.config import Municipality
from agii_sync.domain.export import ExportRecord, validate_row
from agii_sync.domain.problems import ProblemCode
from agii_sync.domain.routing import route


def municipality(site_id: str, nis: str, postal_codes: list[str]) -> Municipality:
    return Municipality(
        id=site_id,
        name=site_id.title(),
        nis=nis,
        postal_codes=postal_codes,
        site=f"file:sites/{site_id}",
        protocol_start=date(2024, 1, 1),
        protocol_end=date(2099, 12, 31),
        allowed=[f"staff@{site_id}.be"],
    )


SPL = municipality("sint-pieters-leeuw", "23077", ["1600", "1601", "1602"])
MECHELEN = municipality("mechelen", "12025", ["2800", "2801"])
GENK = municipality("genk", "71016", ["3600"])


def record(line: int, nis: str, postcode: str, dossier: str | None = None) -> ExportRecord:
    raw = {
        "dossiernummer": dossier or f"A{line:07d}",
        "nis_code": nis,
        "naam": "N",
        "voornaam": "V",
        "straat": "S",
        "huisnummer": "1",
        "postcode": postcode,
        "gemeente": "G",
        "contacttaal": "ara",
        "status_mo": "lopend",
    }
    result, problems = validate_row(line, raw)
    assert result is not None, problems
    return result


def test_rows_go_to_the_municipality_of_their_nis_code() -> None:
    records = [record(2, "23077", "1600"), record(3, "12025", "2801"), record(4, "23077", "1602")]
    routing = route(records, [SPL, MECHELEN, GENK])
    assert {site: [r.line for r in rows] for site, rows in routing.by_site.items()} == {
        "sint-pieters-leeuw": [2, 4],
        "mechelen": [3],
        "genk": [],
    }
    assert routing.problems == [] and routing.rejected == [] and routing.skipped_other_nis == 0


def test_rows_for_other_municipalities_are_counted_not_errors() -> None:
    routing = route([record(2, "11002", "2000"), record(3, "44021", "9000")], [SPL])
    assert routing.skipped_other_nis == 2
    assert routing.by_site == {"sint-pieters-leeuw": []}
    assert routing.problems == []


def test_postcode_mismatch_goes_nowhere() -> None:
    records = [record(2, "23077", "2800", dossier="A9"), record(3, "23077", "1601")]
    routing = route(records, [SPL, MECHELEN])
    assert [r.line for r in routing.by_site["sint-pieters-leeuw"]] == [3]
    assert routing.by_site["mechelen"] == []
    assert [(p.line, p.column, p.code) for p in routing.problems] == [
        (2, "postcode", ProblemCode.POSTCODE_MISMATCH)
    ]
    assert [(r.line, r.nis, r.dossier) for r in routing.rejected] == [(2, "23077", "A9")]
    assert "2800" not in routing.problems[0].message


def test_only_configured_municipalities_are_routed_when_a_subset_is_given() -> None:
    routing = route([record(2, "23077", "1600"), record(3, "12025", "2800")], [MECHELEN])
    assert [r.line for r in routing.by_site["mechelen"]] == [3]
    assert routing.skipped_other_nis == 1
