"""An .xlsx file as a zip package of parts: find the data sheet's part, read parts, and write
the package back with only the parts that changed replaced.

Every part a change does not concern is written back with the same bytes (and the same zip
entry settings), so sheets, drawings, media and styles someone added stay exactly as they are.
The parts we change are plain XML written by Excel-compatible programs; their structure is
documented in ECMA-376 Part 1 (SpreadsheetML) and the package layout in ECMA-376 Part 2 (OPC).
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, LayoutError
from . import zipcopy
from .zipguard import refuse_zip_bomb

REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
CUSTOM_PROPS_TYPE = REL_NS + "/custom-properties"
CUSTOM_PROPS_CONTENT = "application/vnd.openxmlformats-officedocument.custom-properties+xml"

ATTR = re.compile(rb"""([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
ENTITY = re.compile(r"&(lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);")
NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def attributes(tag: bytes) -> dict[str, str]:
    """The attributes of one start tag (bytes between ``<name`` and ``>``), unescaped."""
    return {
        m.group(1).decode(): unescape(m.group(2) if m.group(2) is not None else m.group(3))
        for m in ATTR.finditer(tag)
    }


def unescape(raw: bytes) -> str:
    """XML text as a parser gives it: entities and character references resolved, line ends
    normalised."""
    text = raw.decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" in text:
        text = ENTITY.sub(_entity, text)
    return text


def _entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name[0] != "#":
        return NAMED[name]
    return chr(int(name[2:], 16) if name[1] == "x" else int(name[1:]))


def escape(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", "&#13;")


def escape_attr(text: str) -> str:
    return escape(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


@dataclass(frozen=True)
class SheetEntry:
    name: str
    part: str  # zip name of the worksheet part, e.g. xl/worksheets/sheet1.xml
    state: str  # visible, hidden, veryHidden


@dataclass
class Package:
    """The parts of an .xlsx, read lazily from the zip."""

    content: bytes
    ours: bool = False  # made by this run from a package already inspected: not inspected again
    _zip: zipfile.ZipFile = field(init=False, repr=False)
    _cache: dict[str, bytes] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        try:
            if not self.ours:
                refuse_zip_bomb(Path("the workbook on the site"), self.content)
            self._zip = zipfile.ZipFile(io.BytesIO(self.content))
        except InputError as error:
            raise LayoutError(error.message) from None
        except (zipfile.BadZipFile, ValueError, OSError):
            raise LayoutError(
                "the workbook on the site cannot be read as XLSX (not a zip)"
            ) from None
        self.names = [info.filename for info in self._zip.infolist()]
        self.workbook_part = self._main_part()
        self.workbook_rels = self.relationships(self.workbook_part)

    def has(self, name: str) -> bool:
        return name in self._cache or name in self.names

    def read(self, name: str) -> bytes:
        if name not in self._cache:
            try:
                self._cache[name] = self._zip.read(name)
            except (KeyError, zipfile.BadZipFile, OSError, EOFError):
                raise LayoutError(f"the workbook's part {name} is missing or damaged") from None
        return self._cache[name]

    def same_bytes(self, name: str, other: Package) -> bool:
        """Whether part ``name`` is stored with the same compressed bytes in ``other``
        (proof of the same content without unpacking; False: not proven)."""
        try:
            return zipcopy.same_member(
                self.content, self._zip.getinfo(name), other.content, other._zip.getinfo(name)
            )
        except (KeyError, zipfile.BadZipFile):
            return False

    def _main_part(self) -> str:
        for rel in self.relationships("").values():
            if rel[0].endswith("/officeDocument"):
                return rel[1]
        raise LayoutError("the workbook on the site cannot be read as XLSX (no workbook part)")

    def relationships(self, part: str) -> dict[str, tuple[str, str, str]]:
        """Id → (type, resolved zip name, target mode) of a part's relationships."""
        folder, name = posixpath.split(part)
        rels_name = posixpath.join(folder, "_rels", name + ".rels")
        if not self.has(rels_name):
            return {}
        found = {}
        for match in re.finditer(rb"<Relationship\b([^>]*)>", self.read(rels_name)):
            attrs = attributes(match.group(1))
            target = attrs.get("Target", "")
            mode = attrs.get("TargetMode", "Internal")
            if mode != "External":
                target = _resolve(folder, target)
            found[attrs.get("Id", "")] = (attrs.get("Type", ""), target, mode)
        return found

    def related(self, part: str, type_suffix: str) -> list[str]:
        return [t for kind, t, _ in self.relationships(part).values() if kind.endswith(type_suffix)]

    def sheets(self) -> list[SheetEntry]:
        xml = self.read(self.workbook_part)
        entries = []
        for match in re.finditer(rb"<sheet\b([^>]*)>", xml):
            attrs = attributes(match.group(1))
            rel_id = next((v for k, v in attrs.items() if k.endswith(":id") or k == "id"), "")
            rel = self.workbook_rels.get(rel_id)
            part = rel[1] if rel else ""
            entries.append(SheetEntry(attrs.get("name", ""), part, attrs.get("state", "visible")))
        return entries

    def part_of(self, type_suffix: str) -> str | None:
        found = self.related(self.workbook_part, type_suffix)
        return found[0] if found and self.has(found[0]) else None

    @property
    def date1904(self) -> bool:
        match = re.search(rb"<workbookPr\b([^>]*)>", self.read(self.workbook_part))
        value = attributes(match.group(1)).get("date1904", "0") if match else "0"
        return value in ("1", "true")

    def rebuild(self, replaced: Mapping[str, zipcopy.Part]) -> bytes:
        """The package with the parts in ``replaced`` (new or changed) and every other part
        as it was, in the same order with the same entry settings."""
        try:
            return zipcopy.rebuild(self.content, self._zip, replaced)
        except (zipfile.BadZipFile, OSError, EOFError):
            raise LayoutError("the workbook on the site cannot be read as XLSX (damaged)") from None


def _resolve(folder: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(folder, target))
