"""Row-level findings on an export: where (line, column), what (a stable code), never which value.

A Problem's message is built from its code and column only, so a report can never become a
second copy of personal data (docs/export.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # the row is rejected
    WARNING = "warning"  # the row is kept


class ProblemCode(StrEnum):
    MISSING_VALUE = "missing_value"
    VALUE_TOO_LONG = "value_too_long"
    CONTROL_CHARACTER = "control_character"
    FORMULA_LIKE_TEXT = "formula_like_text"
    EXTRA_FIELDS = "extra_fields"
    INVALID_DOSSIER = "invalid_dossier"
    DUPLICATE_DOSSIER = "duplicate_dossier"
    INVALID_NIS = "invalid_nis"
    INVALID_POSTCODE = "invalid_postcode"
    POSTCODE_MISMATCH = "postcode_mismatch"
    NIS_POSTCODE_CONFLICT = "nis_postcode_conflict"
    INVALID_PHONE = "invalid_phone"
    INVALID_EMAIL = "invalid_email"
    UNKNOWN_LANGUAGE = "unknown_language"
    INVALID_DUTCH_LEVEL = "invalid_dutch_level"
    INVALID_STATUS_MO = "invalid_status_mo"
    UNKNOWN_INTEREST = "unknown_interest"
    GEEN_WITH_OTHERS = "geen_with_others"
    INVALID_DATE = "invalid_date"
    SIGN_LANGUAGE = "sign_language"  # special category (art. 9): docs/protocol.md, art. 3
    UNKNOWN_STATUS = "unknown_status"  # status-update --from
    DUPLICATE_ROW_ID = "duplicate_row_id"  # status-update --from
    INVALID_ROW_ID = "invalid_row_id"  # status-update --from
    UNKNOWN_ROW_ID = "unknown_row_id"  # status-update --from

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self in WARNINGS else Severity.ERROR


DESCRIPTIONS: dict[ProblemCode, str] = {
    ProblemCode.MISSING_VALUE: "a required value is empty",
    ProblemCode.VALUE_TOO_LONG: "the value is longer than a workbook cell may hold for it",
    ProblemCode.CONTROL_CHARACTER: "the value contains a control character (e.g. NUL)",
    ProblemCode.FORMULA_LIKE_TEXT: (
        "the value starts like a spreadsheet formula; it is kept and stored as plain text"
    ),
    ProblemCode.EXTRA_FIELDS: "the line has more fields than the header (a stray delimiter?)",
    ProblemCode.INVALID_DOSSIER: "not a dossier number (letters, digits, '-', '/' or '.')",
    ProblemCode.DUPLICATE_DOSSIER: (
        "the dossier number occurs on more than one line; every occurrence is rejected"
    ),
    ProblemCode.INVALID_NIS: "not the NIS code of a Belgian municipality (REFNIS, 2025)",
    ProblemCode.INVALID_POSTCODE: "not a Belgian postcode (on the official list)",
    ProblemCode.POSTCODE_MISMATCH: "the postcode is not one of the municipality's postcodes",
    ProblemCode.NIS_POSTCODE_CONFLICT: (
        "the postcode belongs to a configured municipality but the NIS code to another one"
    ),
    ProblemCode.INVALID_PHONE: "not a valid phone number",
    ProblemCode.INVALID_EMAIL: "not a valid e-mail address",
    ProblemCode.UNKNOWN_LANGUAGE: (
        "not an ISO 639-2/639-3 language code or Dutch language name (or ambiguous)"
    ),
    ProblemCode.INVALID_DUTCH_LEVEL: "not a CEFR level A1..C2",
    ProblemCode.INVALID_STATUS_MO: "not one of the MO statuses",
    ProblemCode.UNKNOWN_INTEREST: "an interest that is not one of the 11 codes or labels",
    ProblemCode.GEEN_WITH_OTHERS: "'geen' together with other interests",
    ProblemCode.INVALID_DATE: "not a date (YYYY-MM-DD, DD/MM/YYYY or an Excel date)",
    ProblemCode.SIGN_LANGUAGE: (
        "a sign language reveals a disability (special category): not shared unless "
        "[agii] allow_sign_languages = true, with the DPOs' agreement"
    ),
    ProblemCode.UNKNOWN_STATUS: "not one of the values of the Status activiteit list",
    ProblemCode.DUPLICATE_ROW_ID: "the Rij-ID occurs on more than one line",
    ProblemCode.INVALID_ROW_ID: "not a Rij-ID (five and five letters/digits)",
    ProblemCode.UNKNOWN_ROW_ID: "no row of the site has this Rij-ID",
}
WARNINGS: frozenset[ProblemCode] = frozenset({ProblemCode.FORMULA_LIKE_TEXT})

assert set(DESCRIPTIONS) == set(ProblemCode)


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding. ``line`` counts as a person does (header = line 1); ``column`` is the
    canonical export column name. Build it with :meth:`of` so the message holds no value."""

    line: int | None
    column: str | None
    code: ProblemCode
    message: str
    severity: Severity

    @classmethod
    def of(cls, code: ProblemCode, *, line: int | None, column: str | None) -> Problem:
        return cls(
            line=line,
            column=column,
            code=code,
            message=message_for(code, column),
            severity=code.severity,
        )

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


def message_for(code: ProblemCode, column: str | None) -> str:
    return f"{column}: {code.description}" if column else code.description


def has_errors(problems: list[Problem]) -> bool:
    return any(p.is_error for p in problems)
