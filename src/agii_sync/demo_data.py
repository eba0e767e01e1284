"""Synthetic AgII exports for the demo and the tests: realistic in shape, fake in content.

Names and streets come from Faker (``nl_BE``, some ``fr_FR``), seeded, so one seed gives one
file. Values are written the way real exports vary: language codes and Dutch names, sub-levels,
Belgian phone notations, interests as codes or labels. E-mail addresses use the reserved
``example.*`` domains. With ``extra_columns`` the file also has AgII-internal columns that the
tool must never copy.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import openpyxl
import phonenumbers

from .config import Municipality
from .domain.codes import INTERESTS, NO_INTEREST, StatusMO
from .errors import UsageError

ExportFormat = Literal["csv", "xlsx"]
Row = dict[str, object]

INTERNAL_COLUMNS = ("rijksregisternummer", "opmerking_intern")  # AgII-only, never copied
LANGUAGES = (
    "ARA", "fre", "Tigrinya", "Dari", "Oekraïens", "prs", "Arabisch", "tir", "som",
    "Perzisch", "ukr", "Engels", "rus", "Turks", "pus", "Somali", "dut", "spa",
)  # fmt: skip
DUTCH_LEVELS = ("A1", "A1", "A2", "a2", "B1", "B1/2", "B1.2", "B2", "C1", "", "")
MO_STATUSES = (*(s.value for s in StatusMO), "Lopend", "GESLAAGD", "Niet gestart")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
OTHER_NIS_CANDIDATES = ("11002", "44021", "71016", "21004", "62063")
NOT_CONFIGURED_POSTCODE = "9000"  # Gent's: real, but none of the sites' own


def write_synthetic_export(
    path: Path,
    municipalities: list[Municipality],
    per_site: int,
    *,
    seed: int = 1,
    fmt: ExportFormat = "csv",
    extra_columns: bool = True,
    today: date | None = None,
    bad_rows: int = 0,
    other_nis_rows: int = 0,
) -> list[Row]:
    """Write ``per_site`` people for each municipality (plus ``bad_rows`` rows that break one
    rule each, and ``other_nis_rows`` for municipalities not configured) and return the rows.

    Attest dates are relative to ``today`` (default: the real today): most people have none,
    some got it recently, some long enough ago to be past a 6-month retention."""
    maker = _RowMaker(seed, today or date.today(), extra_columns)
    rows = [
        maker.person(m.nis, m.name, m.postal_codes) for m in municipalities for _ in range(per_site)
    ]
    other_nis = [n for n in OTHER_NIS_CANDIDATES if n not in {m.nis for m in municipalities}]
    rows += [maker.person(other_nis[0], "Elders", ["2000"]) for _ in range(other_nis_rows)]
    rows += [maker.broken(municipalities[i % len(municipalities)], i) for i in range(bad_rows)]
    write_export(path, rows, fmt)
    return rows


def write_export(
    path: Path,
    rows: list[Row],
    fmt: ExportFormat = "csv",
    *,
    delimiter: str = ";",
    encoding: str = "utf-8-sig",
    columns: list[str] | None = None,
) -> None:
    """Write rows as an export. CSV cells are text (dates as ISO); XLSX dates are real date
    cells and text is always text, even when it starts with '='."""
    header = columns or list(dict.fromkeys(key for row in rows for key in row))
    if fmt == "csv":
        _write_csv(path, header, rows, delimiter=delimiter, encoding=encoding)
    else:
        _write_xlsx(path, header, rows)


def _write_csv(
    path: Path, header: list[str], rows: list[Row], *, delimiter: str, encoding: str
) -> None:
    with path.open("w", encoding=encoding, newline="") as file:
        writer = csv.writer(file, delimiter=delimiter)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_csv_text(row.get(column)) for column in header])


def _csv_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _write_xlsx(path: Path, header: list[str], rows: list[Row]) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Export"
    sheet.append(header)
    for row_number, row in enumerate(rows, start=2):
        for column_number, column in enumerate(header, start=1):
            value = row.get(column)
            cell = sheet.cell(row=row_number, column=column_number, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # never let openpyxl turn '=...' into a formula
            elif isinstance(value, date):
                cell.number_format = "dd/mm/yyyy"
    workbook.save(path)


def _fakers() -> list[Any]:
    """Faker is in the ``demo`` extra (14 MB that a production install does not need)."""
    try:
        from faker import Faker
    except ImportError:
        raise UsageError(
            "synthetic data needs the 'demo' extra (Faker)",
            hint="run `uv run --extra demo agii-sync demo`, or `pip install 'agii-sync[demo]'`",
        ) from None
    return [Faker("nl_BE"), Faker("fr_FR")]


class _RowMaker:
    def __init__(self, seed: int, today: date, extra_columns: bool) -> None:
        self.random = random.Random(seed)
        self.fakers = _fakers()
        for offset, faker in enumerate(self.fakers):
            faker.seed_instance(seed * 31 + offset)
        self.today = today
        self.extra_columns = extra_columns
        self.dossiers: set[str] = set()

    def person(self, nis: str, place: str, postal_codes: list[str]) -> Row:
        pick = self.random.choice
        faker = self.fakers[0] if self.random.random() < 0.7 else self.fakers[1]
        first, last = faker.first_name(), faker.last_name()
        row: Row = {"dossiernummer": self._dossier()}
        if self.extra_columns:
            row["rijksregisternummer"] = self.fakers[0].ssn()
        row |= {
            "nis_code": nis,
            "naam": last,
            "voornaam": first,
            "straat": self.fakers[0].street_name(),
            "huisnummer": str(self.random.randint(1, 250)),
            "bus": pick(("", "", "", "", "1", "2", "B", "bus 3")),
            "postcode": pick(postal_codes),
            "gemeente": place,
            "telefoon": self._phone(),
            "email": self._email(first, last),
            "contacttaal": pick(LANGUAGES),
            "niveau_nederlands": pick(DUTCH_LEVELS),
            "status_mo": pick(MO_STATUSES),
            "interesses": self._interests(),
            "attest_datum": self._attest(),
        }
        if self.extra_columns:
            row["opmerking_intern"] = self.fakers[0].sentence()
        return row

    def broken(self, municipality: Municipality, index: int) -> Row:
        """A person whose row breaks exactly one rule (which one cycles with ``index``)."""
        row = self.person(municipality.nis, municipality.name, municipality.postal_codes)
        breakers: list[Callable[[Row], None]] = [
            lambda r: r.update(telefoon="12345"),
            lambda r: r.update(postcode=NOT_CONFIGURED_POSTCODE),
            lambda r: r.update(interesses=f"{NO_INTEREST}; 2"),
            lambda r: r.update(contacttaal="Marsiaans"),
            lambda r: r.update(status_mo="bezig"),
            lambda r: r.update(email="niet-geldig@"),
        ]
        breakers[index % len(breakers)](row)
        return row

    def _dossier(self) -> str:
        while True:
            dossier = f"A{self.random.randint(1_000_000, 9_999_999)}"
            if dossier not in self.dossiers:
                self.dossiers.add(dossier)
                return dossier

    def _phone(self) -> str:
        if self.random.random() < 0.15:
            return ""
        if self.random.random() < 0.15:
            return self._landline()
        prefix = self.random.choice(("470", "472", "475", "477", "479", "484", "486", "494", "497"))
        rest = f"{self.random.randint(0, 999_999):06d}"
        a, b, c = rest[:2], rest[2:4], rest[4:]
        notations = (
            f"0{prefix} {a} {b} {c}",
            f"+32 {prefix} {a} {b} {c}",
            f"0032 {prefix} {rest}",
            f"0{prefix}/{a}.{b}.{c}",
            f"+32{prefix}{rest}",
        )
        return self.random.choice(notations)

    def _landline(self) -> str:
        while True:
            area = self.random.choice(("2", "3", "9"))
            digits = f"{self.random.randint(2, 8)}{self.random.randint(0, 999_999):06d}"
            number = f"0{area} {digits[:3]} {digits[3:5]} {digits[5:]}"
            if phonenumbers.is_valid_number(phonenumbers.parse(number, "BE")):
                return number

    def _email(self, first: str, last: str) -> str:
        if self.random.random() < 0.2:
            return ""
        local = f"{_ascii(first)}.{_ascii(last)}{self.random.randint(1, 99)}"
        address = f"{local}@{self.random.choice(EMAIL_DOMAINS)}"
        return address if self.random.random() < 0.8 else address.title()

    def _interests(self) -> str:
        roll = self.random.random()
        if roll < 0.15:
            return ""
        if roll < 0.25:
            return self.random.choice((NO_INTEREST, "Geen"))
        codes = self.random.sample(sorted(INTERESTS), self.random.randint(1, 4))
        parts = [str(code) if self.random.random() < 0.6 else INTERESTS[code] for code in codes]
        return self.random.choice(("; ", ";", ", ", "|")).join(parts)

    def _attest(self) -> object:
        roll = self.random.random()
        if roll < 0.55:
            return ""
        days_ago = self.random.randint(10, 150) if roll < 0.85 else self.random.randint(200, 700)
        day = self.today - timedelta(days=days_ago)
        return self.random.choice((day, day.isoformat(), day.strftime("%d/%m/%Y")))


def _ascii(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower() or "x"
