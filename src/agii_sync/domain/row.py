"""The shared row: one person as the municipality sees them (docs/workbook.md)."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

# Header of the data sheet, in this order. The last one is the municipality's.
COLUMNS: tuple[str, ...] = (
    "Rij-ID",
    "Naam",
    "Voornaam",
    "Adres",
    "Postcode",
    "Gemeente",
    "Telefoon",
    "E-mail",
    "Contacttaal",
    "Niveau Nederlands",
    "Status MO",
    "Interesses en noden",
    "Bewaren tot",
    "Status activiteit",
)
STATUS_COLUMN = "Status activiteit"

ROW_ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$"
_ROW_ID = re.compile(ROW_ID_PATTERN)  # compiled once: a write checks every row's key


def is_row_id(text: str) -> bool:
    """Shaped like a Rij-ID agii-sync makes (``XXXXX-XXXXX``, Crockford base32)."""
    return _ROW_ID.fullmatch(text) is not None


# Crockford base32 as it is meant to be read (https://www.crockford.com/base32.html): any case,
# O for 0, I and L for 1, hyphens anywhere ignored.
_TYPED_FOR = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None})


def read_row_id(text: str) -> str | None:
    """The Rij-ID a person meant by ``text``, as ``XXXXX-XXXXX``, or None when it is not one:
    ``7k3qzm9x2o`` and ``7K3QZ-M9X20`` both mean ``7K3QZ-M9X20``."""
    symbols = text.strip().upper().translate(_TYPED_FOR)
    canonical = f"{symbols[:5]}-{symbols[5:]}"
    return canonical if len(symbols) == 10 and is_row_id(canonical) else None


class SharedRow(BaseModel):
    """A row of the data sheet. Every field is what the cell shows; AgII owns all fields except
    ``status_activiteit``. Values are plain text (never formulas) except ``bewaren_tot``."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    rij_id: str = Field(alias="Rij-ID", pattern=ROW_ID_PATTERN)
    naam: str = Field(alias="Naam")
    voornaam: str = Field(alias="Voornaam")
    adres: str = Field(alias="Adres")
    postcode: str = Field(alias="Postcode")
    gemeente: str = Field(alias="Gemeente")
    telefoon: str = Field(default="", alias="Telefoon")
    email: str = Field(default="", alias="E-mail")
    contacttaal: str = Field(alias="Contacttaal")
    niveau_nederlands: str = Field(alias="Niveau Nederlands")
    status_mo: str = Field(alias="Status MO")
    interesses: str = Field(alias="Interesses en noden")
    bewaren_tot: date | None = Field(default=None, alias="Bewaren tot")
    status_activiteit: str = Field(default="", alias="Status activiteit")

    @classmethod
    def read_from_sheet(cls, values: dict[str, object]) -> SharedRow:
        """A row as read from a workbook, unvalidated (a hand-typed value stays as typed):
        what ``model_construct`` makes, without its per-field lookups, since a workbook
        read makes thousands. ``values`` holds every field by name."""
        row = cls.__new__(cls)
        object.__setattr__(row, "__dict__", values)
        object.__setattr__(row, "__pydantic_fields_set__", _EVERY_FIELD)  # shares_fields_set
        object.__setattr__(row, "__pydantic_extra__", None)
        object.__setattr__(row, "__pydantic_private__", None)
        return row

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its values (a workbook's rows cross from the worker that read them):
        a fifth of a model's pickle, read back without validation, as they were read."""
        return (_from_values, (self.cells(),))

    def cells(self) -> tuple[object, ...]:
        """The values in COLUMNS order."""
        return _values_of(self)

    def agii_cells(self) -> dict[str, object]:
        """The columns AgII owns, by header: what a push compares."""
        return {column: getattr(self, name) for name, column in AGII_FIELDS}


def _from_values(values: tuple[object, ...]) -> SharedRow:
    return SharedRow.read_from_sheet(dict(zip(FIELD_NAMES, values, strict=True)))


Model = TypeVar("Model", bound=BaseModel)
_FIELD_SETS: dict[type, set[str]] = {}


def shares_fields_set(model: Model) -> Model:
    """``model`` (every field given) with the one fields set all its kind shares: pydantic
    keeps a set per instance, a third of a row's memory over tens of thousands of rows, and
    only ever updates a copy of it (``model_copy``; the models are frozen)."""
    shared = _FIELD_SETS.setdefault(type(model), set(type(model).model_fields))
    assert model.__pydantic_fields_set__ == shared
    object.__setattr__(model, "__pydantic_fields_set__", shared)
    return model


@dataclass(frozen=True)
class SheetRow:
    """A data row as found in a workbook: where it is, its cell values (unvalidated: a
    hand-typed value stays as typed), and which managed cells hold a formula."""

    sheet_row: int
    row: SharedRow
    formula_columns: tuple[str, ...] = ()
    status_typed: str = ""  # "number", "date", "boolean" or "padded": kept as typed, flagged

    def packed(self) -> tuple[object, ...]:
        """Plain values only, for a list of rows to cross between processes in one piece."""
        return (self.sheet_row, *self.row.cells(), self.formula_columns, self.status_typed)

    @classmethod
    def unpacked(cls, values: tuple[object, ...]) -> SheetRow:
        sheet_row, *fields, formula_columns, status_typed = values
        return cls(sheet_row, _from_values(tuple(fields)), formula_columns, status_typed)  # type: ignore[arg-type]


FIELD_NAMES: tuple[str, ...] = tuple(SharedRow.model_fields)
_EVERY_FIELD = _FIELD_SETS.setdefault(SharedRow, set(FIELD_NAMES))
_values_of = operator.attrgetter(*FIELD_NAMES)
AGII_FIELDS: tuple[tuple[str, str], ...] = tuple(
    (name, column)
    for name, column in zip(FIELD_NAMES, COLUMNS, strict=True)
    if column != STATUS_COLUMN
)
assert tuple(f.alias for f in SharedRow.model_fields.values()) == COLUMNS
