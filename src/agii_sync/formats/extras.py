"""What a municipality may have added to the workbook beyond the protocol: notes (comments)
and sheets of its own. Counted from the file's parts, never read out: a note or a sheet can
hold anything about a person (docs/protocol.md, art. 1)."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from .toelichting import TOELICHTING_SHEET

# Legacy notes (e.g. xl/comments1.xml) and threaded comments (xl/threadedComments/*.xml); part
# names vary by writer. Excel writes a legacy placeholder for every threaded comment, so the
# larger of the two counts is the number of notes.
THREADED_PART = re.compile(r"^xl/.*threadedcomment[^/]*\.xml$", re.I)
LEGACY_PART = re.compile(r"^xl/(?:.*/)?comments?\d*\.xml$", re.I)
NOTE_TAGS = {
    "legacy": re.compile(rb"<(?:\w+:)?comment[\s>]"),
    "threaded": re.compile(rb"<(?:\w+:)?threadedComment[\s>]"),
}


@dataclass(frozen=True)
class Extras:
    sheets: int  # sheets other than the data sheet and the Toelichting
    notes: int

    @property
    def none(self) -> bool:
        return not self.sheets and not self.notes


def extras(content: bytes, sheet_names: list[str], data_sheet: str) -> Extras:
    """The workbook's own additions. ``content`` has passed the zip-bomb check of ``load``."""
    ours = {data_sheet, TOELICHTING_SHEET}
    sheets = sum(1 for name in sheet_names if name not in ours)
    found = dict.fromkeys(NOTE_TAGS, 0)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for part in archive.namelist():
            kind = _note_kind(part)
            if kind is not None:
                found[kind] += len(NOTE_TAGS[kind].findall(archive.read(part)))
    return Extras(sheets, max(found.values()))


def _note_kind(part: str) -> str | None:
    if THREADED_PART.match(part):
        return "threaded"
    return "legacy" if LEGACY_PART.match(part) else None
