"""The synthetic export: deterministic, varied like a real one, valid, and a leak detector."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from agii_sync.config import Municipality
from agii_sync.demo_data import INTERNAL_COLUMNS, write_synthetic_export
from agii_sync.domain.export import EXPORT_COLUMNS, to_shared_row
from agii_sync.domain.problems import ProblemCode
from agii_sync.domain.retention import add_months
from agii_sync.domain.routing import route
from agii_sync.formats.export_reader import read_export

TODAY = date(2024, 10, 1)


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


SITES = [
    municipality("sint-pieters-leeuw", "23077", ["1600", "1601", "1602"]),
    municipality("mechelen", "12025", ["2800", "2801"]),
    municipality("genk", "71016", ["3600"]),
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]]]:
    path = tmp_path_factory.mktemp("demo") / "export.csv"
    return path, write_synthetic_export(path, SITES, 40, today=TODAY)


def test_same_seed_same_file(tmp_path: Path, demo: tuple[Path, list[dict[str, object]]]) -> None:
    path, rows = demo
    again = write_synthetic_export(tmp_path / "again.csv", SITES, 40, today=TODAY)
    assert again == rows
    assert (tmp_path / "again.csv").read_bytes() == path.read_bytes()
    other = write_synthetic_export(tmp_path / "other.csv", SITES, 40, seed=2, today=TODAY)
    assert other != rows


def test_every_row_is_valid_and_routed_home(demo: tuple[Path, list[dict[str, object]]]) -> None:
    path, rows = demo
    result = read_export(path)
    assert [p for p in result.problems if p.is_error] == []
    assert result.rows_read == len(rows) == 120
    routing = route(result.records, SITES)
    assert {site: len(records) for site, records in routing.by_site.items()} == {
        "sint-pieters-leeuw": 40,
        "mechelen": 40,
        "genk": 40,
    }
    assert routing.problems == []


def test_rows_vary_like_a_real_export(demo: tuple[Path, list[dict[str, object]]]) -> None:
    _, rows = demo
    languages = {str(r["contacttaal"]) for r in rows}
    assert {"ARA", "fre", "Tigrinya", "Dari", "Oekraïens"} & languages
    assert any(code.islower() for code in languages) and any(code.isupper() for code in languages)
    levels = Counter(str(r["niveau_nederlands"]) for r in rows)
    assert levels[""] and (levels["B1/2"] or levels["B1.2"])
    phones = [str(r["telefoon"]) for r in rows]
    assert any(p.startswith("0032") for p in phones) and any(p.startswith("+32") for p in phones)
    assert any(p.startswith("04") for p in phones) and "" in phones
    interests = [str(r["interesses"]) for r in rows]
    assert {"", "geen"} & set(interests) and any(any(c.isalpha() for c in i) for i in interests)
    assert len({r["status_mo"] for r in rows}) >= 4
    emails = [str(r["email"]).lower() for r in rows if r["email"]]
    assert emails and all(
        e.endswith(("@example.com", "@example.org", "@example.net")) for e in emails
    )


def test_attest_dates_include_some_past_retention(
    demo: tuple[Path, list[dict[str, object]]],
) -> None:
    path, _ = demo
    dates = [r.attest_datum for r in read_export(path).records]
    with_attest = [d for d in dates if d is not None]
    assert len(with_attest) < len(dates)
    past = [d for d in with_attest if add_months(d, 6) < TODAY]
    assert past and len(past) < len(with_attest)


def test_internal_columns_never_reach_a_record_or_row(
    demo: tuple[Path, list[dict[str, object]]],
) -> None:
    path, rows = demo
    result = read_export(path)
    # named when close to a column of ours, else by position (docs/safety.md)
    assert len(result.unknown_columns) == len(INTERNAL_COLUMNS)
    assert result.unknown_columns[0] == INTERNAL_COLUMNS[0]
    assert result.unknown_columns[1].startswith("(column ")
    copied = " ".join(
        str(to_shared_row(r, row_id="ABCDE-12345", retention_months=6).cells())
        + str(r.model_dump())
        for r in result.records
    )
    for row in rows:
        for column in INTERNAL_COLUMNS:
            assert str(row[column]) not in copied


def test_without_extra_columns(tmp_path: Path) -> None:
    rows = write_synthetic_export(tmp_path / "e.csv", SITES[:1], 3, extra_columns=False)
    assert all(set(r) == set(EXPORT_COLUMNS) for r in rows)


def test_xlsx_reads_like_csv(tmp_path: Path) -> None:
    write_synthetic_export(tmp_path / "e.csv", SITES, 10, today=TODAY)
    write_synthetic_export(tmp_path / "e.xlsx", SITES, 10, today=TODAY, fmt="xlsx")
    assert read_export(tmp_path / "e.csv").records == read_export(tmp_path / "e.xlsx").records


def test_bad_and_foreign_rows(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    rows = write_synthetic_export(path, SITES, 5, today=TODAY, bad_rows=6, other_nis_rows=2)
    result = read_export(path)
    routing = route(result.records, SITES)
    codes = {p.code for p in [*result.problems, *routing.problems] if p.is_error}
    assert codes == {
        ProblemCode.INVALID_PHONE,
        ProblemCode.POSTCODE_MISMATCH,
        ProblemCode.GEEN_WITH_OTHERS,
        ProblemCode.UNKNOWN_LANGUAGE,
        ProblemCode.INVALID_STATUS_MO,
        ProblemCode.INVALID_EMAIL,
    }
    assert routing.skipped_other_nis == 2
    assert len(result.rejected) + len(routing.rejected) == 6
    messages = " ".join(p.message for p in [*result.problems, *routing.problems])
    for row in rows:
        for column in ("dossiernummer", "naam", "voornaam", "straat", "telefoon", "email"):
            if row[column]:
                assert str(row[column]) not in messages
