"""The protocol's code lists (CONTRACT §3 and §4): the only values the workbook may hold."""

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

# A text cell starting with one of these would be read as a formula by a spreadsheet
# (CONTRACT §4): it is always stored as text, and an export value like that is warned about.
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")

# Separators between interests in the export (CONTRACT §3).
INTEREST_SEPARATORS: tuple[str, ...] = (";", ",", "|")
