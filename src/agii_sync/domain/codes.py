"""The protocol's code lists (docs/export.md, docs/workbook.md): the only values a workbook may
hold."""

from __future__ import annotations

from enum import StrEnum

# Art. 3 of the protocol: the exhaustive list of interests and needs, by code.
INTERESTS: dict[int, str] = {
    1: "buddy",
    2: "Nederlands oefenen",
    3: "iets leren/cursus",
    4: "informeel participeren",
    5: "cultuur/kunst/creativiteit",
    6: "sport en beweging",
    7: "stage/voorbereiden op werk",
    8: "vrijwilligerswerk",
    9: "nood aan kinderopvang",
    10: "nood aan gezinsactiviteit",
    11: "nood aan gratis activiteit",
}
NO_INTEREST = "geen"

CEFR_LEVELS: tuple[str, ...] = ("A1", "A2", "B1", "B2", "C1", "C2")
DUTCH_UNKNOWN = "onbekend"


class StatusMO(StrEnum):
    NIET_GESTART = "niet gestart"
    INGESCHREVEN = "ingeschreven"
    LOPEND = "lopend"
    GESLAAGD = "geslaagd"
    VRIJGESTELD = "vrijgesteld"
    STOPGEZET = "stopgezet"


class ActivityStatus(StrEnum):
    """``Status activiteit``: the only column the municipality writes. Empty = not followed up."""

    GECONTACTEERD = "Gecontacteerd"
    NIET_BEREIKBAAR = "Niet bereikbaar"
    GEEN_INTERESSE = "Geen interesse"
    TOEGELEID = "Toegeleid naar activiteit"
    GESTART = "Activiteit gestart"
    AFGEROND = "Activiteit afgerond"
    STOPGEZET = "Activiteit stopgezet"


ACTIVITY_STATUSES: tuple[str, ...] = tuple(s.value for s in ActivityStatus)
_LISTED = {status.casefold(): status for status in ACTIVITY_STATUSES}


def listed_status(text: str) -> str | None:
    """The list value ``text`` is, in any letter case, or None. Excel's own list validation
    accepts a status typed in another case (``gecontacteerd``), so it is the list value, not
    free text: passed on as the list spells it (docs/workbook.md)."""
    return _LISTED.get(" ".join(text.split()).casefold())


# A text cell starting with one of these would be read as a formula by a spreadsheet
# (docs/workbook.md): always stored as text, and an export value like that is warned about.
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


# Separators between interests in the export (docs/export.md).
INTEREST_SEPARATORS: tuple[str, ...] = (";", ",", "|")

# Contact languages (docs/export.md, docs/workbook.md): the Dutch name and the ISO 639 code.
# pycountry's Dutch names cover the common languages; these fill its gaps and replace awkward
# ones (English names, several names in one, "(macrolanguage)") for languages newcomers in
# Flanders often speak. Each name is also accepted in the export.
LANGUAGE_NAMES_NL: dict[str, str] = {
    "acm": "Iraaks Arabisch",
    "aeb": "Tunesisch Arabisch",
    "aii": "Assyrisch",
    "apc": "Levantijns Arabisch",
    "apd": "Soedanees Arabisch",
    "arq": "Algerijns Arabisch",
    "ber": "Berbers",  # ISO 639-2 collective code: what many exports use for Amazigh
    "bel": "Wit-Russisch",
    "ckb": "Sorani",
    "cmn": "Mandarijn",
    "ell": "Grieks",
    "est": "Estisch",
    "ful": "Fula",
    "fry": "Fries",
    "kab": "Kabylisch",
    "kmr": "Kurmanji",
    "lug": "Luganda",
    "ltz": "Luxemburgs",
    "msa": "Maleis",
    "nep": "Nepalees",
    "pan": "Punjabi",
    "pbu": "Pasjtoe",
    "pes": "Perzisch",
    "pus": "Pasjtoe",
    "rif": "Tarifit",
    "run": "Kirundi",
    "shi": "Tashelhit",
    "sin": "Singalees",
    "slk": "Slowaaks",
    "som": "Somalisch",
    "swa": "Swahili",
    "swh": "Swahili",
    "tzm": "Tamazight",
    "uig": "Oeigoers",
    "uzn": "Oezbeeks",
    "yue": "Kantonees",
    "zgh": "Standaard-Marokkaans Tamazight",
}

# Other names people write for a language (casefolded), accepted in the export only; where
# a name fits a macrolanguage and one of its members, it means the macrolanguage.
LANGUAGE_ALIASES: dict[str, str] = {
    "amazigh": "ber",
    "belarussisch": "bel",
    "bengali": "ben",
    "farsi": "fas",
    "fulfulde": "ful",
    "koerdisch": "kur",
    "pashto": "pus",
    "pasjto": "pus",
    "pasjtoe": "pus",
    "perzisch": "fas",
    "riffijns": "rif",
    "swahili": "swa",
}
