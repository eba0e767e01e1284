"""One row of the AgII export (docs/export.md): validated, normalised, made a SharedRow.

``validate_row`` is pure and total: any cell content gives a record and/or Problems, never an
exception, and a Problem never carries the value it is about.
"""

from __future__ import annotations

import gettext
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from . import refnis
from .codes import (
    CEFR_LEVELS,
    DUTCH_UNKNOWN,
    INTEREST_SEPARATORS,
    INTERESTS,
    LANGUAGE_ALIASES,
    LANGUAGE_NAMES_NL,
    NO_INTEREST,
    StatusMO,
    is_formula_like,
)
from .problems import Problem, ProblemCode, has_errors
from .rejections import RejectedRow, guess_dossier
from .retention import keep_until
from .row import SharedRow, shares_fields_set

EXPORT_COLUMNS: tuple[str, ...] = (
    "dossiernummer",
    "nis_code",
    "naam",
    "voornaam",
    "straat",
    "huisnummer",
    "bus",
    "postcode",
    "gemeente",
    "telefoon",
    "email",
    "contacttaal",
    "niveau_nederlands",
    "status_mo",
    "interesses",
    "attest_datum",
)
REQUIRED_COLUMNS: frozenset[str] = frozenset(EXPORT_COLUMNS) - {
    "bus",
    "telefoon",
    "email",
    "niveau_nederlands",
    "interesses",
    "attest_datum",
}
# Free text that reaches the workbook as typed: the only values that can look like a formula.
FREE_TEXT_COLUMNS: tuple[str, ...] = (
    "naam",
    "voornaam",
    "straat",
    "huisnummer",
    "bus",
    "gemeente",
    "email",
)

MAX_TEXT_LENGTH = 500  # bounds garbage well below Excel's 32,767 characters per cell
MAX_DOSSIER_LENGTH = 32
EARLIEST_ATTEST = date(2000, 1, 1)  # the Flemish inburgering programme started in 2004
LATEST_ATTEST = date(2099, 12, 31)
EXCEL_EPOCH = date(1899, 12, 30)  # serial 61 = 1900-03-01; Excel's fake 1900-02-29 is older
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d %H:%M:%S")

RawRow = Mapping[str, object]
"""Canonical column name → cell value: ``str`` from CSV; str/int/float/date/None from XLSX."""


class Rejected(ValueError):
    """A cell value that breaks a rule; carries only the code."""

    def __init__(self, code: ProblemCode) -> None:
        super().__init__(code.value)
        self.code = code


class ExportRecord(BaseModel):
    """A valid export row, normalised. Personal fields are left out of repr() so that a stray
    log line or traceback does not print them."""

    model_config = ConfigDict(frozen=True)

    line: int
    nis_code: str
    dossiernummer: str = Field(repr=False)
    naam: str = Field(repr=False)
    voornaam: str = Field(repr=False)
    straat: str = Field(repr=False)
    huisnummer: str = Field(repr=False)
    bus: str = Field(default="", repr=False)
    postcode: str = Field(repr=False)
    gemeente: str = Field(repr=False)
    telefoon: str = Field(default="", repr=False)
    email: str = Field(default="", repr=False)
    contacttaal: str = Field(repr=False)  # ISO 639-3, lower case as pycountry has it
    niveau_nederlands: str = Field(default=DUTCH_UNKNOWN, repr=False)
    status_mo: StatusMO = Field(repr=False)
    interesses: tuple[int, ...] = Field(default=(), repr=False)
    attest_datum: date | None = Field(default=None, repr=False)

    @property
    def adres(self) -> str:
        street = f"{self.straat} {self.huisnummer}"
        return f"{street} bus {self.bus}" if self.bus else street

    @property
    def contacttaal_display(self) -> str:
        return language_display(self.contacttaal)

    @property
    def interesses_display(self) -> str:
        return interests_display(self.interesses)


class CarriedRecord(NamedTuple):
    """An export row whose raw cells are those of a row the last push validated and wrote
    (domain/proof.py): only its keys, contact language and attest date are read again; its
    row is taken from the workbook once it is proven unchanged there, else its line is read
    again and validated after all. Its cells are not kept (memory). A tuple: it crosses from
    the worker that reads the export at a tenth of a model's cost. ``repr`` shows the line
    only."""

    line: int
    nis_code: str
    dossiernummer: str
    postcode: str
    contacttaal: str
    attest_datum: date | None

    def __repr__(self) -> str:
        return f"CarriedRecord(line={self.line})"


Record = ExportRecord | CarriedRecord


def carried_record(identity: RejectedRow, raw: RawRow) -> CarriedRecord | None:
    """The carried form of a row known to be valid (its keys as ``row_identity`` read them);
    None if they cannot be read after all."""
    nis, dossier, postcode = identity.nis, identity.dossier, identity.postcode
    if nis is None or dossier is None or postcode is None:
        return None
    try:
        language = parse_cell("contacttaal", raw.get("contacttaal"))
        attest = parse_cell("attest_datum", raw.get("attest_datum"))
    except Rejected:
        return None
    assert isinstance(language, str) and (attest is None or isinstance(attest, date))
    return CarriedRecord(identity.line, nis, dossier, postcode, language, attest)


def bewaren_tot(
    attest: date | None,
    *,
    retention_months: int,
    last_day: date | None = None,
    without_attest: date | None = None,
) -> date | None:
    """The attest date plus ``retention_months``, at most ``last_day`` (the protocol's);
    ``without_attest`` when there is no attest (docs/protocol.md, art. 3)."""
    keep = keep_until(attest, retention_months)
    if keep is None:
        return without_attest
    return keep if last_day is None else min(keep, last_day)


def to_shared_row(
    record: ExportRecord,
    *,
    row_id: str,
    retention_months: int,
    last_day: date | None = None,
    without_attest: date | None = None,
) -> SharedRow:
    """The workbook row of ``record``, with its ``bewaren_tot``."""
    keep = bewaren_tot(
        record.attest_datum,
        retention_months=retention_months,
        last_day=last_day,
        without_attest=without_attest,
    )
    row = SharedRow(
        rij_id=row_id,
        naam=record.naam,
        voornaam=record.voornaam,
        adres=record.adres,
        postcode=record.postcode,
        gemeente=record.gemeente,
        telefoon=record.telefoon,
        email=record.email,
        contacttaal=record.contacttaal_display,
        niveau_nederlands=record.niveau_nederlands,
        status_mo=record.status_mo.value,
        interesses=record.interesses_display,
        bewaren_tot=keep,
        status_activiteit="",
    )
    return shares_fields_set(row)


def validate_row(line: int, raw: RawRow) -> tuple[ExportRecord | None, list[Problem]]:
    """Every problem of the row (one per column at most), and the record if none is an error."""
    values: dict[str, object] = {}
    problems: list[Problem] = []
    for column in EXPORT_COLUMNS:
        try:
            values[column] = parse_cell(column, raw.get(column))
        except Rejected as rejected:
            problems.append(Problem.of(rejected.code, line=line, column=column))
    problems.extend(_formula_warnings(line, values))
    if has_errors(problems):
        return None, problems
    return shares_fields_set(ExportRecord(line=line, **values)), problems


def row_identity(line: int, raw: RawRow) -> RejectedRow:
    """What can be read of a row's keys (each None when unreadable): lets a caller keep a
    person whose row is rejected, whatever the reason."""
    dossier = _readable("dossiernummer", raw)
    return RejectedRow(
        line=line,
        nis=_readable("nis_code", raw),
        dossier=dossier,
        dossier_guess=None if dossier else guess_dossier(raw.get("dossiernummer")),
        postcode=_readable("postcode", raw),
    )


def parse_cell(column: str, value: object) -> object:
    """The normalised value of one cell, or :class:`Rejected`."""
    if column == "attest_datum" and _is_cell_date_or_number(value):
        return parse_attest_cell(value)
    text = key_text(value) if column in KEY_COLUMNS else clean_text(value)
    if not text:
        if column in REQUIRED_COLUMNS:
            raise Rejected(ProblemCode.MISSING_VALUE)
        return EMPTY_VALUES.get(column, "")
    return PARSERS.get(column, _as_is)(text)


def cell_text(value: object) -> str:
    """What a cell shows, as text (an XLSX number 1600 or 1600.0 → ``1600``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# Unicode categories Cc (C0, DEL, C1) and Cs (lone surrogates), as one regex for speed.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(value: object) -> str:
    """NFC, surrounding whitespace stripped and inner runs of whitespace (tab, CR, LF, ...)
    collapsed to one space; control characters and overlong values are rejected."""
    text = " ".join(unicodedata.normalize("NFC", cell_text(value)).split())
    if len(text) > MAX_TEXT_LENGTH:
        raise Rejected(ProblemCode.VALUE_TOO_LONG)
    if CONTROL_CHARACTERS.search(text):
        raise Rejected(ProblemCode.CONTROL_CHARACTER)
    return text


KEY_COLUMNS = frozenset({"dossiernummer", "nis_code", "postcode"})
KEY_PADDING = " \t"  # the only characters a key may be padded with (fixed-width exports)


def key_text(value: object) -> str:
    """A key cell (dossier number, NIS code, postcode) as typed, only ASCII spaces and tabs
    around it stripped: nothing is normalised away (a line separator, no-break or zero-width
    space inside or around a key makes it unreadable), so a key routes only when it is exact."""
    text = cell_text(value).strip(KEY_PADDING)
    if len(text) > MAX_TEXT_LENGTH:
        raise Rejected(ProblemCode.VALUE_TOO_LONG)
    return text


# --- one parser per column: normalised text in, value out (or Rejected) ---


# ASCII letters and digits, then the separators too (the text is upper-cased first).
DOSSIER_SHAPE = re.compile(r"[0-9A-Z][0-9A-Z./-]*")


def parse_dossier(text: str) -> str:
    dossier = text.upper()
    if len(dossier) > MAX_DOSSIER_LENGTH or DOSSIER_SHAPE.fullmatch(dossier) is None:
        raise Rejected(ProblemCode.INVALID_DOSSIER)
    return dossier


def parse_nis(text: str) -> str:
    nis = _digits(text, 5, ProblemCode.INVALID_NIS)
    if not refnis.is_municipality(nis):
        raise Rejected(ProblemCode.INVALID_NIS)
    return nis


def parse_postcode(text: str) -> str:
    postcode = _digits(text, 4, ProblemCode.INVALID_POSTCODE)
    if not refnis.is_postcode(postcode):
        raise Rejected(ProblemCode.INVALID_POSTCODE)
    return postcode


def parse_bus(text: str) -> str:
    """``bus 3`` in the bus column is just ``3`` (the address adds the word itself)."""
    head, _, rest = text.partition(" ")
    return rest if head.casefold() == "bus" and rest else text


def parse_phone(text: str) -> str:
    import phonenumbers  # the validators' libraries load when an export is read, not at start

    try:
        number = phonenumbers.parse(text, "BE")
    except phonenumbers.NumberParseException:
        raise Rejected(ProblemCode.INVALID_PHONE) from None
    if not phonenumbers.is_valid_number(number):
        raise Rejected(ProblemCode.INVALID_PHONE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def parse_email(text: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(text, check_deliverability=False).normalized
    except (EmailNotValidError, UnicodeError, ValueError):
        raise Rejected(ProblemCode.INVALID_EMAIL) from None


def parse_language(text: str) -> str:
    code = language_code(text)
    if code is None:
        raise Rejected(ProblemCode.UNKNOWN_LANGUAGE)
    return code


def parse_dutch_level(text: str) -> str:
    compact = "".join(text.split()).upper()
    if compact == DUTCH_UNKNOWN.upper():
        return DUTCH_UNKNOWN
    level, sub_level = compact[:2], compact[2:]
    if level not in CEFR_LEVELS or not _is_sub_level(sub_level):
        raise Rejected(ProblemCode.INVALID_DUTCH_LEVEL)
    return level


def parse_status_mo(text: str) -> StatusMO:
    status = _STATUS_BY_KEY.get(_loose_key(text))
    if status is None:
        raise Rejected(ProblemCode.INVALID_STATUS_MO)
    return status


def parse_interests(text: str) -> tuple[int, ...]:
    for separator in INTEREST_SEPARATORS[1:]:
        text = text.replace(separator, INTEREST_SEPARATORS[0])
    tokens = [token.strip() for token in text.split(INTEREST_SEPARATORS[0]) if token.strip()]
    nones = [token for token in tokens if token.casefold() == NO_INTEREST]
    if nones:
        if len(nones) < len(tokens):
            raise Rejected(ProblemCode.GEEN_WITH_OTHERS)
        return ()
    codes = {interest_code(token) for token in tokens}
    if None in codes:
        raise Rejected(ProblemCode.UNKNOWN_INTEREST)
    return tuple(sorted(code for code in codes if code is not None))


def parse_attest_text(text: str) -> date:
    for fmt in DATE_FORMATS:
        try:
            return _plausible(datetime.strptime(text, fmt).date())
        except ValueError:
            continue
    serial = _excel_serial(text)
    if serial is None:
        raise Rejected(ProblemCode.INVALID_DATE)
    return _from_excel_serial(serial)


def parse_attest_cell(value: object) -> date:
    """An XLSX cell: a real date cell, or a number that is an Excel date serial."""
    if isinstance(value, datetime):
        return _plausible(value.date())
    if isinstance(value, date):
        return _plausible(value)
    assert isinstance(value, int | float)
    if not math.isfinite(value):
        raise Rejected(ProblemCode.INVALID_DATE)
    return _from_excel_serial(int(value))


def _repeated(parser: Callable[[str], object]) -> Callable[[str], object]:
    """A parser of a column whose values repeat from row to row (codes, dates): each distinct
    text is parsed once. A rejected text raises again each time (exceptions are not kept)."""
    return lru_cache(maxsize=4096)(parser)


PARSERS: dict[str, Callable[[str], object]] = {
    "dossiernummer": parse_dossier,
    "nis_code": _repeated(parse_nis),
    "postcode": _repeated(parse_postcode),
    "bus": parse_bus,
    "telefoon": parse_phone,
    "email": parse_email,
    "contacttaal": _repeated(parse_language),
    "niveau_nederlands": _repeated(parse_dutch_level),
    "status_mo": _repeated(parse_status_mo),
    "interesses": _repeated(parse_interests),
    "attest_datum": _repeated(parse_attest_text),
}
EMPTY_VALUES: dict[str, object] = {
    "niveau_nederlands": DUTCH_UNKNOWN,
    "interesses": (),
    "attest_datum": None,
}


# --- code lists ---


def language_code(text: str) -> str | None:
    """ISO 639-3 code (lower case) for a 639-2/B, 639-2/T or 639-3 code or a Dutch (else
    English) language name, case-insensitively; None when unknown or ambiguous."""
    import pycountry

    key = " ".join(text.split()).casefold()
    if len(key) == 3 and key.isascii() and key.isalpha():
        if key in LANGUAGE_NAMES_NL:
            return key
        language = pycountry.languages.get(alpha_3=key) or pycountry.languages.get(
            bibliographic=key
        )
        if language is not None:
            return str(language.alpha_3)
    return _codes_by_name(dutch=True).get(key) or _codes_by_name(dutch=False).get(key)


@lru_cache(maxsize=1024)  # a few dozen languages over thousands of rows
def language_display(code: str) -> str:
    """``Arabisch (ARA)``: the Dutch name (English when there is no Dutch one) and code."""
    return f"{_dutch_name(code)} ({code.upper()})"


def _dutch_name(code: str) -> str:
    import pycountry

    if code in LANGUAGE_NAMES_NL:
        return LANGUAGE_NAMES_NL[code]
    language = pycountry.languages.get(alpha_3=code)
    if language is None:
        return code
    return _one_name(_dutch().gettext(language.name))


def _one_name(names: str) -> str:
    """The first of ``Slovaaks, Slowaaks`` or ``Wit-Russisch; Belarussisch``, without a
    ``(macrolanguage)`` note."""
    first = re.split(r"[;,] ", names, maxsplit=1)[0]
    return first.removesuffix(" (macrolanguage)")


def interest_code(token: str) -> int | None:
    """1..11 from a code (``3``, ``03``) or a label (case-insensitive)."""
    if token.isascii() and token.isdigit() and len(token) <= 3:
        code = int(token)
        return code if code in INTERESTS else None
    return _INTEREST_BY_LABEL.get(" ".join(token.split()).casefold())


@lru_cache(maxsize=1024)  # a few hundred combinations over thousands of rows
def interests_display(codes: tuple[int, ...]) -> str:
    if not codes:
        return NO_INTEREST
    return "; ".join(INTERESTS[code] for code in sorted(codes))


@cache
def _dutch() -> gettext.NullTranslations:
    import pycountry

    return gettext.translation("iso639-3", pycountry.LOCALES_DIR, languages=["nl"], fallback=True)


@cache
def _codes_by_name(*, dutch: bool) -> dict[str, str]:
    """Name (casefolded) → 639-3 code, from every name a language goes by in that language
    list; a name shared by several languages is left out."""
    import pycountry

    found: dict[str, set[str]] = {}
    for language in pycountry.languages:
        names = _dutch().gettext(language.name) if dutch else language.name
        for name in {names, *re.split(r"[;,] ", names)}:
            found.setdefault(name.casefold(), set()).add(language.alpha_3)
    if dutch:
        for code, name in LANGUAGE_NAMES_NL.items():
            found[name.casefold()] = {code}
        for alias, code in LANGUAGE_ALIASES.items():
            found[alias] = {code}
    return {name: codes.pop() for name, codes in found.items() if len(codes) == 1}


_INTEREST_BY_LABEL: dict[str, int] = {label.casefold(): code for code, label in INTERESTS.items()}


def _loose_key(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").split()).casefold()


_STATUS_BY_KEY: dict[str, StatusMO] = {_loose_key(status.value): status for status in StatusMO}


# --- helpers ---


def _as_is(text: str) -> str:
    return text


def _digits(text: str, length: int, code: ProblemCode) -> str:
    if len(text) != length or not (text.isascii() and text.isdigit()):
        raise Rejected(code)
    return text


def _is_sub_level(rest: str) -> bool:
    """``B1/2``, ``B1.2``, ``A2+`` all count as their level."""
    if rest in ("", "+"):
        return True
    return len(rest) == 2 and rest[0] in "./" and rest[1].isascii() and rest[1].isdigit()


def _is_cell_date_or_number(value: object) -> bool:
    return isinstance(value, date | int | float) and not isinstance(value, bool)


def _excel_serial(text: str) -> int | None:
    """``45500`` or ``45500.0`` as CSV has it after a spreadsheet lost the date format."""
    whole, _, fraction = text.partition(".")
    if not (whole.isascii() and whole.isdigit() and len(whole) <= 7):
        return None
    if fraction and not (fraction.isascii() and fraction.isdigit()):
        return None
    return int(whole)


def _from_excel_serial(serial: int) -> date:
    if not 61 <= serial <= (LATEST_ATTEST - EXCEL_EPOCH).days:
        raise Rejected(ProblemCode.INVALID_DATE)
    return _plausible(EXCEL_EPOCH + timedelta(days=serial))


def _plausible(day: date) -> date:
    if not EARLIEST_ATTEST <= day <= LATEST_ATTEST:
        raise Rejected(ProblemCode.INVALID_DATE)
    return day


def _readable(column: str, raw: RawRow) -> str | None:
    try:
        value = parse_cell(column, raw.get(column))
    except Rejected:
        return None
    return value if isinstance(value, str) and value else None


def _formula_warnings(line: int, values: dict[str, object]) -> list[Problem]:
    return [
        Problem.of(ProblemCode.FORMULA_LIKE_TEXT, line=line, column=column)
        for column in FREE_TEXT_COLUMNS
        if is_formula_like(values.get(column))
    ]
