"""The rules for one export row (docs/export.md), and the row it becomes in the workbook."""

from __future__ import annotations

from datetime import date, datetime

import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agii_sync.cli.render import problem_doc
from agii_sync.domain.codes import DUTCH_UNKNOWN, LANGUAGE_ALIASES, LANGUAGE_NAMES_NL, StatusMO
from agii_sync.domain.export import (
    EXPORT_COLUMNS,
    ExportRecord,
    Rejected,
    language_code,
    parse_dossier,
    row_identity,
    to_shared_row,
    validate_row,
)
from agii_sync.domain.problems import (
    DESCRIPTIONS,
    Problem,
    ProblemCode,
    Severity,
    message_for,
)
from agii_sync.domain.retention import add_months, keep_until
from agii_sync.domain.row import COLUMNS, SharedRow


def valid_row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "dossiernummer": "A1234567",
        "nis_code": "23077",
        "naam": "Peeters",
        "voornaam": "Jan",
        "straat": "Kerkstraat",
        "huisnummer": "12",
        "bus": "",
        "postcode": "1600",
        "gemeente": "Sint-Pieters-Leeuw",
        "telefoon": "0470 12 34 56",
        "email": "jan.peeters@example.com",
        "contacttaal": "ARA",
        "niveau_nederlands": "B1",
        "status_mo": "lopend",
        "interesses": "1;6",
        "attest_datum": "2024-08-31",
    }
    row.update(changes)
    return row


def record_of(**changes: object) -> ExportRecord:
    record, problems = validate_row(2, valid_row(**changes))
    assert record is not None, problems
    return record


def codes_of(**changes: object) -> dict[str | None, ProblemCode]:
    record, problems = validate_row(2, valid_row(**changes))
    assert record is None
    return {p.column: p.code for p in problems if p.is_error}


def test_a_valid_row_is_normalised() -> None:
    record, problems = validate_row(7, valid_row(dossiernummer=" a1234567 ", naam=" Peeters "))
    assert problems == []
    assert record is not None
    assert record.line == 7
    assert record.dossiernummer == "A1234567"
    assert record.naam == "Peeters"
    assert record.telefoon == "+32 470 12 34 56"
    assert record.contacttaal == "ara"
    assert record.status_mo is StatusMO.LOPEND
    assert record.interesses == (1, 6)
    assert record.attest_datum == date(2024, 8, 31)


@pytest.mark.parametrize(
    "column",
    [
        "dossiernummer",
        "nis_code",
        "naam",
        "voornaam",
        "straat",
        "huisnummer",
        "postcode",
        "gemeente",
        "contacttaal",
        "status_mo",
    ],
)
@pytest.mark.parametrize("empty", ["", "   ", None])
def test_required_values(column: str, empty: object) -> None:
    assert codes_of(**{column: empty}) == {column: ProblemCode.MISSING_VALUE}


def test_a_required_column_absent_from_the_row_is_missing() -> None:
    row = valid_row()
    del row["naam"]
    _, problems = validate_row(2, row)
    assert [(p.column, p.code) for p in problems] == [("naam", ProblemCode.MISSING_VALUE)]


@pytest.mark.parametrize(
    "column", ["bus", "telefoon", "email", "niveau_nederlands", "interesses", "attest_datum"]
)
def test_optional_values_may_be_empty(column: str) -> None:
    record_of(**{column: ""})


def test_optional_defaults() -> None:
    record = record_of(bus="", telefoon="", email="", niveau_nederlands="", interesses="")
    assert (record.bus, record.telefoon, record.email) == ("", "", "")
    assert record.niveau_nederlands == DUTCH_UNKNOWN
    assert record.interesses == ()
    assert record_of(attest_datum=None).attest_datum is None


INVALID = [
    ("dossiernummer", "A 123", ProblemCode.INVALID_DOSSIER),
    ("dossiernummer", "-A123", ProblemCode.INVALID_DOSSIER),
    ("dossiernummer", "A" * 40, ProblemCode.INVALID_DOSSIER),
    ("dossiernummer", "Ä123", ProblemCode.INVALID_DOSSIER),
    ("nis_code", "2307", ProblemCode.INVALID_NIS),
    ("nis_code", "230777", ProblemCode.INVALID_NIS),
    ("nis_code", "2307x", ProblemCode.INVALID_NIS),
    ("nis_code", "２３０７７", ProblemCode.INVALID_NIS),  # full-width digits
    ("postcode", "160", ProblemCode.INVALID_POSTCODE),
    ("postcode", "B-1600", ProblemCode.INVALID_POSTCODE),
    ("postcode", "16OO", ProblemCode.INVALID_POSTCODE),
    ("telefoon", "12345", ProblemCode.INVALID_PHONE),
    ("telefoon", "bel me", ProblemCode.INVALID_PHONE),
    ("telefoon", "0470 12 34", ProblemCode.INVALID_PHONE),
    ("email", "jan.peeters", ProblemCode.INVALID_EMAIL),
    ("email", "jan@peeters", ProblemCode.INVALID_EMAIL),
    ("email", "jan @example.com", ProblemCode.INVALID_EMAIL),
    ("contacttaal", "Marsiaans", ProblemCode.UNKNOWN_LANGUAGE),
    ("contacttaal", "xqz", ProblemCode.UNKNOWN_LANGUAGE),
    ("contacttaal", "ar", ProblemCode.UNKNOWN_LANGUAGE),
    ("niveau_nederlands", "D1", ProblemCode.INVALID_DUTCH_LEVEL),
    ("niveau_nederlands", "B3", ProblemCode.INVALID_DUTCH_LEVEL),
    ("niveau_nederlands", "B1/22", ProblemCode.INVALID_DUTCH_LEVEL),
    ("niveau_nederlands", "goed", ProblemCode.INVALID_DUTCH_LEVEL),
    ("status_mo", "bezig", ProblemCode.INVALID_STATUS_MO),
    ("interesses", "12", ProblemCode.UNKNOWN_INTEREST),
    ("interesses", "0", ProblemCode.UNKNOWN_INTEREST),
    ("interesses", "1;voetbal", ProblemCode.UNKNOWN_INTEREST),
    ("interesses", "geen;1", ProblemCode.GEEN_WITH_OTHERS),
    ("interesses", "buddy | GEEN", ProblemCode.GEEN_WITH_OTHERS),
    ("attest_datum", "31/02/2024", ProblemCode.INVALID_DATE),
    ("attest_datum", "2024-13-01", ProblemCode.INVALID_DATE),
    ("attest_datum", "gisteren", ProblemCode.INVALID_DATE),
    ("attest_datum", "01/01/1900", ProblemCode.INVALID_DATE),
    ("attest_datum", "12", ProblemCode.INVALID_DATE),
    ("attest_datum", "1e5", ProblemCode.INVALID_DATE),
    ("attest_datum", date(1985, 1, 1), ProblemCode.INVALID_DATE),
    ("attest_datum", float("nan"), ProblemCode.INVALID_DATE),
    ("attest_datum", -5, ProblemCode.INVALID_DATE),
    ("naam", "Pee\x00ters", ProblemCode.CONTROL_CHARACTER),
    ("straat", "Kerk\x07straat", ProblemCode.CONTROL_CHARACTER),
    ("gemeente", "x" * 501, ProblemCode.VALUE_TOO_LONG),
]


@pytest.mark.parametrize(("column", "value", "code"), INVALID)
def test_invalid_values_reject_the_row(column: str, value: object, code: ProblemCode) -> None:
    record, problems = validate_row(5, valid_row(**{column: value}))
    assert record is None
    assert [(p.line, p.column, p.code, p.severity) for p in problems] == [
        (5, column, code, Severity.ERROR)
    ]


@pytest.mark.parametrize(("column", "value", "code"), INVALID)
def test_messages_never_hold_the_value(column: str, value: object, code: ProblemCode) -> None:
    _, problems = validate_row(5, valid_row(**{column: value}))
    for problem in problems:
        assert problem.message == message_for(problem.code, problem.column)
        if isinstance(value, str) and len(value) > 2:
            assert value not in problem.message
            assert value not in repr(problem)


def test_all_problems_of_a_row_are_collected() -> None:
    record, problems = validate_row(
        3,
        valid_row(naam="", telefoon="abc", email="x@", contacttaal="??", interesses="geen;1"),
    )
    assert record is None
    assert [(p.column, p.code) for p in problems] == [
        ("naam", ProblemCode.MISSING_VALUE),
        ("telefoon", ProblemCode.INVALID_PHONE),
        ("email", ProblemCode.INVALID_EMAIL),
        ("contacttaal", ProblemCode.UNKNOWN_LANGUAGE),
        ("interesses", ProblemCode.GEEN_WITH_OTHERS),
    ]


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x")', "+32 iets", "-min", "@sum", "\t=1"])
def test_formula_like_text_is_kept_with_a_warning(text: str) -> None:
    record, problems = validate_row(4, valid_row(straat=text))
    assert record is not None
    assert record.straat == text.strip()
    assert [(p.column, p.code, p.severity) for p in problems] == [
        ("straat", ProblemCode.FORMULA_LIKE_TEXT, Severity.WARNING)
    ]
    assert text.strip() not in problems[0].message


def test_whitespace_is_collapsed_and_text_nfc() -> None:
    record = record_of(naam="  Van\tden\r\nBroeck ", voornaam="Hele\u0301ne")
    assert record.naam == "Van den Broeck"
    assert record.voornaam == "Hel\u00e9ne"  # NFC: one code point for é


@pytest.mark.parametrize(
    "phone",
    ["0470 12 34 56", "+32 470 12 34 56", "0032 470 123456", "0470/12.34.56", "+32470123456"],
)
def test_phone_notations_become_e164_display(phone: str) -> None:
    assert record_of(telefoon=phone).telefoon == "+32 470 12 34 56"


def test_landline_and_foreign_numbers() -> None:
    assert record_of(telefoon="02 511 22 33").telefoon == "+32 2 511 22 33"
    assert record_of(telefoon="0031 6 12345678").telefoon == "+31 6 12345678"


def test_xlsx_number_cells_are_read_as_text() -> None:
    record = record_of(nis_code=23077, postcode=1600.0, huisnummer=12, telefoon=470123456)
    assert (record.nis_code, record.postcode, record.huisnummer) == ("23077", "1600", "12")
    assert record.telefoon == "+32 470 12 34 56"


def test_email_is_normalised() -> None:
    assert record_of(email=" Jan.Peeters@EXAMPLE.com ").email == "Jan.Peeters@example.com"


@pytest.mark.parametrize(
    ("text", "code", "display"),
    [
        ("ARA", "ara", "Arabisch (ARA)"),
        ("ara", "ara", "Arabisch (ARA)"),
        ("fre", "fra", "Frans (FRA)"),
        ("FRA", "fra", "Frans (FRA)"),
        ("dut", "nld", "Nederlands (NLD)"),
        ("per", "fas", "Perzisch (FAS)"),
        ("Arabisch", "ara", "Arabisch (ARA)"),
        ("arabisch", "ara", "Arabisch (ARA)"),
        ("Oekraïens", "ukr", "Oekraïens (UKR)"),
        ("Tigrinya", "tir", "Tigrinya (TIR)"),
        ("Dari", "prs", "Dari (PRS)"),
        ("prs", "prs", "Dari (PRS)"),
        ("Arabic", "ara", "Arabisch (ARA)"),
        # pycountry has no Dutch name, or an awkward one: ours
        ("gre", "ell", "Grieks (ELL)"),
        ("Grieks", "ell", "Grieks (ELL)"),
        ("som", "som", "Somalisch (SOM)"),
        ("Somalisch", "som", "Somalisch (SOM)"),
        ("slk", "slk", "Slowaaks (SLK)"),
        ("Slovaaks", "slk", "Slowaaks (SLK)"),
        ("Wit-Russisch", "bel", "Wit-Russisch (BEL)"),
        ("Belarussisch", "bel", "Wit-Russisch (BEL)"),
        ("kmr", "kmr", "Kurmanji (KMR)"),
        ("apc", "apc", "Levantijns Arabisch (APC)"),
        ("swa", "swa", "Swahili (SWA)"),
        ("Swahili", "swa", "Swahili (SWA)"),
        ("nep", "nep", "Nepalees (NEP)"),
        ("Farsi", "fas", "Perzisch (FAS)"),
        ("Pasjtoe", "pus", "Pasjtoe (PUS)"),
        ("ber", "ber", "Berbers (BER)"),
        ("Berbers", "ber", "Berbers (BER)"),
        ("Tamazight", "tzm", "Tamazight (TZM)"),
        ("rif", "rif", "Tarifit (RIF)"),
        ("Luxemburgs", "ltz", "Luxemburgs (LTZ)"),
        ("Punjabi", "pan", "Punjabi (PAN)"),
        ("Bengali", "ben", "Bengaals (BEN)"),
    ],
)
def test_contact_language(text: str, code: str, display: str) -> None:
    record = record_of(contacttaal=text)
    assert record.contacttaal == code
    assert record.contacttaal_display == display


def test_language_without_dutch_name_shows_english() -> None:
    assert language_code("Northern Kurdish") == "kmr"  # English names are accepted too
    assert record_of(contacttaal="sme").contacttaal_display == "Northern Sami (SME)"


def test_every_dutch_name_of_ours_is_one_name_and_reads_back() -> None:
    for code, name in LANGUAGE_NAMES_NL.items():
        assert "," not in name and ";" not in name and "macrolanguage" not in name
        assert code == "ber" or pycountry.languages.get(alpha_3=code) is not None, code
        assert language_code(name) in {code, *LANGUAGE_ALIASES.values()}, name


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("A1", "A1"),
        ("c2", "C2"),
        ("b1", "B1"),
        ("B1/2", "B1"),
        ("B1.2", "B1"),
        ("A2+", "A2"),
        (" B2 ", "B2"),
        ("", DUTCH_UNKNOWN),
        ("onbekend", DUTCH_UNKNOWN),
    ],
)
def test_dutch_level(text: str, level: str) -> None:
    assert record_of(niveau_nederlands=text).niveau_nederlands == level


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Niet gestart", StatusMO.NIET_GESTART),
        ("NIET  GESTART", StatusMO.NIET_GESTART),
        ("niet_gestart", StatusMO.NIET_GESTART),
        ("Geslaagd", StatusMO.GESLAAGD),
        ("vrijgesteld", StatusMO.VRIJGESTELD),
    ],
)
def test_status_mo_case_insensitive(text: str, status: StatusMO) -> None:
    assert record_of(status_mo=text).status_mo is status


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("1;2", (1, 2)),
        ("11, 3", (3, 11)),
        ("buddy|Sport en beweging", (1, 6)),
        ("iets leren/cursus; 03", (3,)),
        ("1;;1;buddy", (1,)),
        ("NOOD AAN GRATIS ACTIVITEIT", (11,)),
        ("geen", ()),
        ("Geen", ()),
        ("", ()),
    ],
)
def test_interests(text: str, codes: tuple[int, ...]) -> None:
    assert record_of(interesses=text).interesses == codes


def test_interest_display() -> None:
    assert record_of(interesses="6;1").interesses_display == "buddy; sport en beweging"
    assert record_of(interesses="geen").interesses_display == "geen"
    assert record_of(interesses=3).interesses == (3,)  # an XLSX number cell


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-08-31", date(2024, 8, 31)),
        ("31/08/2024", date(2024, 8, 31)),
        ("1/8/2024", date(2024, 8, 1)),
        ("31-08-2024", date(2024, 8, 31)),
        ("2024-08-31 00:00:00", date(2024, 8, 31)),
        ("45535", date(2024, 8, 31)),
        ("45535.0", date(2024, 8, 31)),
        (45535, date(2024, 8, 31)),
        (45535.75, date(2024, 8, 31)),
        (date(2024, 8, 31), date(2024, 8, 31)),
        (datetime(2024, 8, 31, 13, 5), date(2024, 8, 31)),
    ],
)
def test_attest_dates(value: object, expected: date) -> None:
    assert record_of(attest_datum=value).attest_datum == expected


def test_address() -> None:
    assert record_of(bus="").adres == "Kerkstraat 12"
    assert record_of(bus="3").adres == "Kerkstraat 12 bus 3"
    assert record_of(bus="bus 3").adres == "Kerkstraat 12 bus 3"


def test_to_shared_row() -> None:
    record = record_of(bus="3", interesses="6;1", niveau_nederlands="B1/2")
    row = to_shared_row(record, row_id="ABCDE-12345", retention_months=6)
    assert isinstance(row, SharedRow)
    assert row.cells() == (
        "ABCDE-12345",
        "Peeters",
        "Jan",
        "Kerkstraat 12 bus 3",
        "1600",
        "Sint-Pieters-Leeuw",
        "+32 470 12 34 56",
        "jan.peeters@example.com",
        "Arabisch (ARA)",
        "B1",
        "lopend",
        "buddy; sport en beweging",
        date(2025, 2, 28),
        "",
    )
    assert len(row.cells()) == len(COLUMNS)


def test_no_attest_means_no_retention_date() -> None:
    row = to_shared_row(record_of(attest_datum=""), row_id="ABCDE-12345", retention_months=6)
    assert row.bewaren_tot is None


def test_shared_row_never_holds_the_dossier_number() -> None:
    row = to_shared_row(record_of(), row_id="ABCDE-12345", retention_months=6)
    assert not any("A1234567" in str(cell) for cell in row.cells())


def test_repr_hides_personal_data() -> None:
    record = record_of()
    for text in (repr(record), str(record)):
        for value in ("A1234567", "Peeters", "Jan", "Kerkstraat", "470", "example.com"):
            assert value not in text


def test_row_identity_of_a_rejected_row() -> None:
    def keys(raw: dict[str, object]) -> tuple[str | None, str | None, str | None]:
        identity = row_identity(2, raw)
        return identity.nis, identity.dossier, identity.dossier_guess

    assert keys(valid_row(dossiernummer=" a12 ", telefoon="x")) == ("23077", "A12", None)
    assert keys(valid_row(nis_code="x")) == (None, "A1234567", None)
    assert keys(valid_row(dossiernummer="a12\u200b*")) == ("23077", None, "A12")
    assert keys({}) == (None, None, None)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 8, 31), 6, date(2025, 2, 28)),
        (date(2023, 8, 31), 6, date(2024, 2, 29)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2024, 3, 15), 0, date(2024, 3, 15)),
        (date(2024, 12, 1), 12, date(2025, 12, 1)),
        (date(2024, 11, 30), 3, date(2025, 2, 28)),
        (date(2025, 3, 31), -1, date(2025, 2, 28)),
    ],
)
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_keep_until() -> None:
    assert keep_until(None, 6) is None
    assert keep_until(date(2024, 8, 31), 6) == date(2025, 2, 28)


def test_every_problem_code_is_described() -> None:
    assert set(DESCRIPTIONS) == set(ProblemCode)
    assert all(code.value.islower() and " " not in code.value for code in ProblemCode)
    assert ProblemCode.FORMULA_LIKE_TEXT.severity is Severity.WARNING
    problem = Problem.of(ProblemCode.INVALID_PHONE, line=3, column="telefoon")
    assert problem_doc(problem) == {  # the report's (and --json's) form
        "line": 3,
        "column": "telefoon",
        "code": "invalid_phone",
        "severity": "error",
        "message": "telefoon: not a valid phone number",
    }


def test_export_columns_match_the_documented_export() -> None:
    assert len(EXPORT_COLUMNS) == 16


# -- the fast forms of two checks mean what the plain ones say ----------------------------------


def _dossier_by_characters(text: str) -> str | None:
    """The dossier rule spelled out character by character (what DOSSIER_SHAPE compiles)."""
    dossier = text.upper()
    allowed = all(char.isascii() and (char.isalnum() or char in "-/.") for char in dossier)
    if not dossier or not allowed or not dossier[0].isalnum() or len(dossier) > 32:
        return None
    return dossier


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ09-/._ ıſﬀßé\u00a0\u200b*"), max_size=40) | st.text())
def test_dossier_shape_is_the_character_rule(text: str) -> None:
    try:
        parsed: str | None = parse_dossier(text) if text else None
    except Rejected:
        parsed = None
    assert parsed == _dossier_by_characters(text)


def test_each_sign_language_is_found_on_its_own() -> None:
    from agii_sync.domain.screen import is_sign_language, sign_languages

    every = {language.alpha_3 for language in pycountry.languages} | {"sgn"}
    assert {code for code in every if is_sign_language(code)} == sign_languages()
    assert is_sign_language("VGT") and not is_sign_language("ara")
