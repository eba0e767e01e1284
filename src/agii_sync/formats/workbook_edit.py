"""Write rows into a workbook read from a site, in place, at the level of its zip parts.

Rows whose values did not change keep their bytes; changed cells are rewritten where they are
(keeping the cell's format); people who left are dropped and the rows below move up together
with everything anchored to them (comments, hyperlinks, merged cells, conditional formats,
data validations, the filter, tables); new people are appended below the last one. Every other
part of the package keeps its bytes. What cannot move with its row (a comment on a removed row)
is named in ``not_carried`` by cell and Rij-ID, never by content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from ..domain.codes import ACTIVITY_STATUSES
from ..domain.row import COLUMNS, FIELD_NAMES, STATUS_COLUMN, SharedRow
from ..errors import LayoutError
from .sheet_xml import (
    RowMap,
    SheetScan,
    attr_value,
    column_letters,
    date_cell,
    renumber_row,
    set_attr,
    shared_strings,
    shift_ref,
    shift_sqref,
    text_cell,
)
from .workbook_styles import WriteStyles, ensure_write_styles, read_styles
from .xlsx_package import CUSTOM_PROPS_CONTENT, REL_NS, Package, escape, escape_attr

STATUS_NUMBER = COLUMNS.index(STATUS_COLUMN) + 1
DATE_NUMBER = COLUMNS.index("Bewaren tot") + 1
KEY_CHECK_PROPERTY = "agii-sync row-key check"
CUSTOM_FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"
VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
PROPERTIES_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
MOVABLE = (
    "/comments",
    "/vmlDrawing",
    "/table",
    "/hyperlink",
    "/printerSettings",
    "/threadedComment",
)


@dataclass
class EditResult:
    content: bytes
    not_carried: list[str] = field(default_factory=list)  # "comment B7 (Rij-ID …)"


class Renumbered(NamedTuple):
    """A row of the sheet as read that moves to another row number: renumbered as it is
    packed, so that the rows of a sheet are never all copied at once (memory)."""

    row: bytes | memoryview
    number: int


Piece = bytes | memoryview | Renumbered  # a stretch of the new sheet, in order
Part = bytes | list[Piece]  # a part written whole, or the data sheet in pieces


def _packed(part: Part) -> bytes | Iterator[bytes | memoryview]:
    if isinstance(part, bytes):
        return part
    return (
        renumber_row(bytes(piece.row), piece.number) if isinstance(piece, Renumbered) else piece
        for piece in part
    )


@dataclass
class _Edit:
    package: Package
    sheet_part: str
    sheet_index: int
    scan: SheetScan
    styles_part: str
    removed_ids: dict[int, str] = field(default_factory=dict)  # old row number → Rij-ID
    last_row: int = 1  # the last row element of the sheet as read
    not_carried: list[str] = field(default_factory=list)
    parts: dict[str, Part] = field(default_factory=dict)

    _write: WriteStyles | None = None

    @property
    def write(self) -> WriteStyles:
        """The formats new cells are written with, added to the stylesheet only when a new
        cell needs one that is not there."""
        if self._write is None:
            old = self.package.read(self.styles_part)
            new, self._write = ensure_write_styles(old)
            if new != old:
                self.parts[self.styles_part] = new
        return self._write

    def lose(self, what: str, ref: str, row: int) -> None:
        self.not_carried.append(f"{what} {ref} (Rij-ID {self.removed_ids.get(row, '?')})")


def apply_rows(
    content: bytes,
    sheet_name: str,
    current: dict[int, SharedRow],
    rows: Iterable[SharedRow],
    *,
    key_check: str | None = None,
) -> EditResult:
    """The workbook ``content`` with the data sheet holding ``rows``. ``current`` maps the
    sheet rows read from it (by row number) to their values."""
    edited = _apply(content, sheet_name, current, list(rows), key_check, in_place_only=False)
    assert edited is not None  # only an in-place-only edit gives up
    return edited


def apply_named_rows(
    content: bytes,
    sheet_name: str,
    current: dict[int, SharedRow],
    rows: Iterable[SharedRow],
    *,
    key_check: str | None = None,
) -> EditResult | None:
    """``apply_rows`` when ``current`` is only some rows of the sheet (those a status-update
    named) and ``rows`` the same people in the same order: those rows edited where they are,
    the others never looked at; None when they cannot be edited in place."""
    return _apply(content, sheet_name, current, list(rows), key_check, in_place_only=True)


def _apply(
    content: bytes,
    sheet_name: str,
    current: dict[int, SharedRow],
    rows: list[SharedRow],
    key_check: str | None,
    *,
    in_place_only: bool,
) -> EditResult | None:
    package = Package(content)
    edit = _open(package, sheet_name)
    edited = _edit_sheet(edit, current, rows, in_place_only=in_place_only)
    if edited is None:
        return None
    sheet, rows_moved = edited
    edit.parts[edit.sheet_part] = sheet
    if rows_moved is not None:
        _move_anchored_parts(edit, rows_moved)
        _update_filter_name(edit, rows_moved)
    _blank_unused_strings(edit)
    if key_check is not None:
        _set_key_check(edit, key_check)
    parts = {name: _packed(part) for name, part in edit.parts.items()}
    return EditResult(package.rebuild(parts), edit.not_carried)


def _open(package: Package, sheet_name: str) -> _Edit:
    sheets = package.sheets()
    index = next((i for i, s in enumerate(sheets) if s.name == sheet_name), None)
    if index is None:
        raise LayoutError(f"the workbook has no sheet {sheet_name!r}")
    styles_part = package.part_of("/styles")
    if styles_part is None:
        raise LayoutError(
            "the workbook has no stylesheet", hint="open it in Excel and save it again"
        )
    strings_part = package.part_of("/sharedStrings")
    strings = shared_strings(package.read(strings_part) if strings_part else None)
    part = sheets[index].part
    styles = read_styles(package.read(styles_part))
    scan = SheetScan(package.read(part), strings, styles, package.date1904)
    return _Edit(package, part, index, scan, styles_part)


# -- the data sheet ----------------------------------------------------------------------


def _edit_sheet(
    edit: _Edit, current: dict[int, SharedRow], rows: list[SharedRow], *, in_place_only: bool
) -> tuple[list[Piece], RowMap | None] | None:
    in_place = _edit_in_place(edit, current, rows)
    if in_place is not None:
        return in_place, None
    if in_place_only:
        return None
    scan = edit.scan
    xml = scan.xml
    wanted = {row.rij_id: row for row in rows}
    placed: set[str] = set()
    elements = list(scan.rows())
    edit.last_row = max([1, *(e.number for e in elements)])
    removed = []
    for element in elements:
        old = current.get(element.number)
        if old is None or element.number == 1:
            continue
        if old.rij_id in wanted and old.rij_id not in placed:
            placed.add(old.rij_id)
        else:
            removed.append(element.number)
            edit.removed_ids[element.number] = old.rij_id
    appended = [row for row in rows if row.rij_id not in placed]
    last_data = max([1, *current])
    rows_map = RowMap(removed, last_data, len(appended))
    first_new = rows_map.first_inserted
    view = memoryview(xml)
    out: list[Piece] = [b""]  # the part before <sheetData>: its dimension is known at the end
    cursor = scan.data_start
    biggest = 0
    inserted = False
    placed.clear()
    for element in elements:
        out.append(view[cursor : element.start])
        cursor = element.end
        if not inserted and element.number > last_data:
            out += _new_rows(edit, appended, first_new)
            inserted = True
        if rows_map.is_removed(element.number):
            continue
        new_number = rows_map.position(element.number)
        old = current.get(element.number)
        chunk: bytes | memoryview = view[element.start : element.end]
        if old is not None and element.number != 1:
            chunk = _updated_row(edit, element, old, wanted[old.rij_id], new_number)
        out.append(chunk if new_number == element.number else Renumbered(chunk, new_number))
        biggest = max(biggest, new_number)
    if not inserted:
        out += _new_rows(edit, appended, first_new)
    if appended:
        biggest = max(biggest, first_new + len(appended) - 1)
    out.append(view[cursor : scan.data_end])
    tail = _move_sheet_anchors(edit, xml[scan.data_end :], rows_map, rows_map.new_last)
    tail = _keep_protection_and_drop_down(tail)
    out[0] = _dimension(xml[: scan.data_start], biggest)
    out.append(tail)
    return out, None if rows_map.identity else rows_map


def _edit_in_place(
    edit: _Edit, current: dict[int, SharedRow], rows: list[SharedRow]
) -> list[Piece] | None:
    """When the same people stay in the same order (a status-update, a push that only
    updates), only the rows whose values changed are touched: found by their number, no
    walk over the others. None when rows move (or a row is not where its number says)."""
    numbers = sorted(current)
    if [current[n].rij_id for n in numbers] != [row.rij_id for row in rows]:
        return None
    changed = [
        (n, row)
        for n, row in zip(numbers, rows, strict=True)
        if current[n].__dict__ != row.__dict__
    ]
    scan, xml = edit.scan, edit.scan.xml
    view = memoryview(xml)
    out: list[Piece] = []
    cursor = 0
    for number, row in changed:
        element = scan.row_numbered(number, after=cursor)
        if element is None or element.inner is None:
            return None
        out += [
            view[cursor : element.start],
            _updated_row(edit, element, current[number], row, number),
        ]
        cursor = element.end
    end = xml.rfind(b"</sheetData>")
    if end < cursor:
        out.append(view[cursor:])
    else:
        out += [view[cursor:end], _keep_protection_and_drop_down(xml[end:])]
    return out


def _updated_row(edit: _Edit, element, old: SharedRow, new: SharedRow, number: int) -> bytes:  # type: ignore[no-untyped-def]
    xml = edit.scan.xml
    if old.__dict__ == new.__dict__:
        return xml[element.start : element.end]
    changed = [
        i for i, name in enumerate(FIELD_NAMES, start=1) if getattr(old, name) != getattr(new, name)
    ]
    if not changed:
        return xml[element.start : element.end]
    cells = {cell.column: cell for cell in edit.scan.cells(element)}
    pieces: list[tuple[int, bytes]] = [
        (c.column, xml[c.span[0] : c.span[1]]) for c in cells.values()
    ]
    pieces = [p for p in pieces if p[0] not in changed]
    for column in changed:
        existing = cells.get(column)
        style = existing.style if existing is not None else None
        value = getattr(new, FIELD_NAMES[column - 1])
        ref = f"{column_letters(column)}{element.number}"
        pieces.append((column, _cell(edit, ref, column, value, style)))
    pieces.sort(key=lambda p: p[0])
    inner_start, inner_end = element.inner
    return (
        xml[element.start : inner_start]
        + b"".join(p[1] for p in pieces)
        + xml[inner_end : element.end]
    )


def _cell(edit: _Edit, ref: str, column: int, value: object, style: int | None) -> bytes:
    if column == DATE_NUMBER and isinstance(value, date):
        if style is None or style not in edit.scan.styles.date_ids:
            style = edit.write.date
        return date_cell(ref, value, style, edit.package.date1904)
    if column == STATUS_NUMBER and style is None:
        style = edit.write.unlocked
    return text_cell(ref, "" if value is None else str(value), style)


def _new_rows(edit: _Edit, rows: list[SharedRow], first: int) -> list[Piece]:
    out: list[Piece] = []
    for number, row in enumerate(rows, start=first):
        cells = [
            _cell(edit, f"{column_letters(c)}{number}", c, value, None)
            for c, value in enumerate(row.cells(), start=1)
        ]
        out.append(f'<row r="{number}">'.encode() + b"".join(cells) + b"</row>")
    return out


def _dimension(xml: bytes, last: int) -> bytes:
    found = re.search(rb"<dimension\b[^>]*>", xml[: xml.find(b"<sheetData")])
    if found is None:
        return xml
    ref = attr_value(found.group(0), b"ref") or "A1"
    first, _, end = ref.partition(":")
    column = re.match(r"\$?([A-Z]+)", end or first)
    letters = column.group(1) if column else "N"
    new_ref = f"{first}:{letters}{max(last, 1)}" if last > 1 else first
    tag = set_attr(
        found.group(0)[:-2] if found.group(0).endswith(b"/>") else found.group(0)[:-1],
        b"ref",
        new_ref,
    )
    tag += b"/>" if found.group(0).endswith(b"/>") else b">"
    return xml[: found.start()] + tag + xml[found.end() :]


# -- the template's protection and drop-down ----------------------------------------------

PROTECTION = (
    b'<sheetProtection sheet="1" objects="0" scenarios="0" formatColumns="0" autoFilter="0" '
    b'sort="0" selectLockedCells="0" selectUnlockedCells="0" formatCells="1" formatRows="1" '
    b'insertColumns="1" insertRows="1" insertHyperlinks="1" deleteColumns="1" deleteRows="1" '
    b'pivotTables="1"/>'
)
# Elements a worksheet may have after its data validations (ECMA-376 Part 1, CT_Worksheet).
AFTER_VALIDATIONS = re.compile(
    rb"<(hyperlinks|printOptions|pageMargins|pageSetup|headerFooter|rowBreaks|colBreaks|"
    rb"customProperties|cellWatches|ignoredErrors|smartTags|drawing|legacyDrawing|"
    rb"legacyDrawingHF|drawingHF|picture|oleObjects|controls|webPublishItems|tableParts|"
    rb"extLst)\b|</worksheet>"
)


# Only list values may flow back (docs/protocol.md, art. 1): the drop-down refuses other text.
STATUS_ERROR_STYLE = "stop"
STATUS_ERROR = "Kies een waarde uit de lijst. Andere tekst kan hier niet bewaard worden."


STATUS_LETTER = column_letters(STATUS_NUMBER)
# The data validation that covers the first status cell, and its whole element.
STATUS_VALIDATION = re.compile(
    rb"<dataValidation\b[^>]*\ssqref=\"[^\"]*\b" + STATUS_LETTER.encode() + rb"2\b[^>]*>"
)


def _status_validation(sqref: str = f"{STATUS_LETTER}2:{STATUS_LETTER}1048576") -> bytes:
    listed = escape_attr(",".join(ACTIVITY_STATUSES))
    return (
        f'<dataValidation type="list" errorStyle="{STATUS_ERROR_STYLE}" allowBlank="1" '
        f'showInputMessage="1" showErrorMessage="1" errorTitle="Status activiteit" '
        f'error="{escape_attr(STATUS_ERROR)}" '
        f'promptTitle="Status activiteit" prompt="Kies een status uit de lijst." '
        f'sqref="{escape_attr(sqref)}"><formula1>&quot;{listed}&quot;</formula1>'
        "</dataValidation>"
    ).encode()


def status_drop_down(tail: bytes) -> str:
    """What the status drop-down in ``tail`` (the sheet XML after its rows) does with a value
    outside the list: ``stop`` (refused), ``warning`` or ``information`` (kept after a
    question, as version 0.1.0 made it), ``silent`` (no error shown: kept) or ``missing``."""
    found = STATUS_VALIDATION.search(tail)
    if found is None:
        return "missing"
    if attr_value(found.group(0), b"showErrorMessage") not in ("1", "true"):
        return "silent"
    return attr_value(found.group(0), b"errorStyle") or "stop"  # ECMA-376's default


def _stopping(tail: bytes, found: re.Match[bytes]) -> bytes:
    """The status drop-down refusing other values: one that only warns is replaced by the
    template's, over the cells it covered (docs/protocol.md, art. 1)."""
    if status_drop_down(found.group(0)) == "stop":
        return tail
    end = found.end()
    if not found.group(0).endswith(b"/>"):
        end = tail.index(b"</dataValidation>", end) + len(b"</dataValidation>")
    sqref = attr_value(found.group(0), b"sqref") or ""
    return tail[: found.start()] + _status_validation(sqref) + tail[end:]


def _keep_protection_and_drop_down(tail: bytes) -> bytes:
    """Sheet protection and the status drop-down back if someone removed them, so every
    status cell stays writable and every other cell locked, however many rows there are."""
    existing = re.search(rb"<sheetProtection\b[^>]*>", tail)
    if existing and attr_value(existing.group(0), b"sheet") not in ("1", "true"):
        tail = tail[: existing.start()] + tail[existing.end() :]  # off: put ours back
        existing = None
    if existing is None:
        at = tail.index(b"</sheetData>") + len(b"</sheetData>") if b"</sheetData>" in tail else 0
        calc = re.match(rb"\s*<sheetCalcPr\b[^>]*/>", tail[at:])
        at += calc.end() if calc else 0
        tail = tail[:at] + PROTECTION + tail[at:]
    found = STATUS_VALIDATION.search(tail)
    if found is not None:
        return _stopping(tail, found)
    block = re.search(rb"<dataValidations\b[^>]*>", tail)
    if block is not None:
        tail = tail[: block.end()] + _status_validation() + tail[block.end() :]
        return _recount(tail, b"dataValidations")
    after = AFTER_VALIDATIONS.search(tail)
    where = after.start() if after else len(tail)
    element = b'<dataValidations count="1">' + _status_validation() + b"</dataValidations>"
    return tail[:where] + element + tail[where:]


# -- what is anchored to rows inside the sheet part ---------------------------------------


def _move_sheet_anchors(edit: _Edit, tail: bytes, rows: RowMap, new_last: int) -> bytes:
    tail = _move_refs(
        tail, rb"<autoFilter\b[^>]*>", b"ref", lambda r: shift_ref(r, rows, grow_to=new_last)
    )
    tail = _move_refs(
        tail, rb"<sortState\b[^>]*>", b"ref", lambda r: shift_ref(r, rows, grow_to=new_last)
    )
    if rows.identity:
        return tail
    tail = _move_elements(edit, tail, b"mergeCell", b"ref", rows, "merged cells")
    tail = _move_elements(edit, tail, b"hyperlink", b"ref", rows, "hyperlink")
    tail = _move_elements(
        edit, tail, b"conditionalFormatting", b"sqref", rows, "conditional format"
    )
    tail = _move_elements(edit, tail, b"dataValidation", b"sqref", rows, "data validation")
    tail = _move_refs(
        tail, rb"<sortCondition\b[^>]*>", b"ref", lambda r: shift_ref(r, rows, grow_to=new_last)
    )
    for name in (b"mergeCells", b"dataValidations"):
        tail = _recount(tail, name)
    return tail


def _move_refs(xml: bytes, tag_pattern: bytes, attr: bytes, move) -> bytes:  # type: ignore[no-untyped-def]
    def replace(match: re.Match[bytes]) -> bytes:
        tag = match.group(0)
        ref = attr_value(tag, attr)
        if ref is None:
            return tag
        new = move(ref)
        return tag if new is None or new == ref else set_attr_in_tag(tag, attr, new)

    return re.sub(tag_pattern, replace, xml)


def set_attr_in_tag(tag: bytes, attr: bytes, value: str) -> bytes:
    pattern = re.compile(rb"(\s" + attr + rb"""\s*=\s*["'])([^"']*)(["'])""")
    encoded = escape_attr(value).encode()
    return pattern.sub(lambda m: m.group(1) + encoded + m.group(3), tag, count=1)


def _move_elements(
    edit: _Edit, xml: bytes, name: bytes, attr: bytes, rows: RowMap, what: str
) -> bytes:
    """Elements anchored by a ref/sqref: moved, or dropped (and named) when their rows went."""
    pattern = re.compile(rb"<" + name + rb"\b[^>]*?(?:/>|>.*?</" + name + rb">)", re.S)

    def replace(match: re.Match[bytes]) -> bytes:
        element = match.group(0)
        opening = element[: element.index(b">") + 1]
        ref = attr_value(opening, attr)
        if ref is None:
            return element
        new = shift_sqref(ref, rows)
        if new is None:
            first = ref.split()[0].split(":")[0].replace("$", "")
            edit.lose(what, first, int(re.sub(r"[^0-9]", "", first) or 0))
            return b""
        return (
            element if new == ref else set_attr_in_tag(opening, attr, new) + element[len(opening) :]
        )

    return pattern.sub(replace, xml)


def _recount(xml: bytes, name: bytes) -> bytes:
    found = re.search(rb"<" + name + rb"\b[^>]*>(.*?)</" + name + rb">", xml, re.S)
    if found is None:
        return xml
    child = name[:-1]
    count = len(re.findall(rb"<" + child + rb"\b", found.group(1)))
    if count == 0:
        return xml[: found.start()] + xml[found.end() :]
    opening = xml[found.start() : found.start(1)]
    if attr_value(opening, b"count") is None:
        return xml
    return (
        xml[: found.start()]
        + set_attr_in_tag(opening, b"count", str(count))
        + xml[found.start(1) :]
    )


# -- parts anchored to the data sheet's rows ----------------------------------------------


def _move_anchored_parts(edit: _Edit, rows: RowMap) -> None:
    package = edit.package
    for kind, target, mode in package.relationships(edit.sheet_part).values():
        if mode == "External" or not package.has(target):
            continue
        if not kind.endswith(MOVABLE):
            if rows.moves_existing(edit.last_row):
                raise LayoutError(
                    f"the data sheet holds {kind.rsplit('/', 1)[-1]} ({target}) anchored to "
                    "rows that would move; agii-sync cannot move it with them",
                    hint="move it to another sheet, then run again",
                )
            continue
        xml = package.read(target)
        if kind.endswith("/comments"):
            new = _move_elements(edit, xml, b"comment", b"ref", rows, "comment")
        elif kind.endswith("/threadedComment"):
            new = _move_elements(edit, xml, b"threadedComment", b"ref", rows, "threaded comment")
        elif kind.endswith("/vmlDrawing"):
            new = _move_vml(xml, rows)
        elif kind.endswith("/table"):
            new = _move_refs(
                xml,
                rb"<(?:table|autoFilter|sortState)\b[^>]*>",
                b"ref",
                lambda r: shift_ref(r, rows, grow_to=rows.new_last),
            )
        else:
            continue
        if new != xml:
            edit.parts[target] = new


VML_SHAPE = re.compile(rb"<v:shape\b.*?</v:shape>", re.S)


def _move_vml(xml: bytes, rows: RowMap) -> bytes:
    """Comment boxes in the legacy drawing: ``x:Row`` is the anchor cell's row (0-based),
    ``x:Anchor`` the box's corners (rows at places 3 and 7)."""

    def replace(match: re.Match[bytes]) -> bytes:
        shape = match.group(0)
        found = re.search(rb"<x:Row>\s*([0-9]+)\s*</x:Row>", shape)
        if found is None:
            return shape
        row = int(found.group(1)) + 1
        if rows.is_removed(row):
            return b""
        shape = (
            shape[: found.start(1)] + str(rows.position(row) - 1).encode() + shape[found.end(1) :]
        )
        return re.sub(
            rb"<x:Anchor>(.*?)</x:Anchor>",
            lambda m: b"<x:Anchor>" + _move_anchor(m.group(1), rows) + b"</x:Anchor>",
            shape,
            flags=re.S,
        )

    return VML_SHAPE.sub(replace, xml)


def _move_anchor(text: bytes, rows: RowMap) -> bytes:
    parts = [p.strip() for p in text.decode().split(",")]
    if len(parts) != 8 or not all(p.isdigit() for p in parts):
        return text
    for place in (2, 6):
        parts[place] = str(rows.position(int(parts[place]) + 1) - 1)
    return ", ".join(parts).encode()


def _update_filter_name(edit: _Edit, rows: RowMap) -> None:
    part = edit.package.workbook_part
    xml = edit.package.read(part)

    def replace(match: re.Match[bytes]) -> bytes:
        opening, text = match.group(1), match.group(2)
        if attr_value(opening, b"name") != "_xlnm._FilterDatabase":
            return match.group(0)
        if attr_value(opening, b"localSheetId") != str(edit.sheet_index):
            return match.group(0)
        sheet, bang, ref = text.decode().rpartition("!")
        new = shift_ref(ref, rows, grow_to=rows.new_last)
        if not bang or new is None or new == ref:
            return match.group(0)
        return opening + f"{sheet}!{new}".encode() + b"</definedName>"

    new = re.sub(rb"(<definedName\b[^>]*>)(.*?)</definedName>", replace, xml, flags=re.S)
    if new != xml:
        edit.parts[part] = new


# -- shared strings and the row-key mark ---------------------------------------------------

SST_REF = re.compile(rb"<c\b[^>]*?\st\s*=\s*[\"']s[\"'][^>]*>\s*<v>\s*([0-9]+)\s*</v>")
SI = re.compile(rb"<si\b[^>]*?(?:/>|>.*?</si>)", re.S)
EMPTY_SI = b"<si><t/></si>"
SHARED_STRING_CELL = re.compile(rb"t=[\"']s[\"']")


def _blank_unused_strings(edit: _Edit) -> None:
    """Strings no cell uses any more (a removed person's name) are emptied, not left behind;
    their places are kept so other sheets' cells still point at the right ones."""
    package = edit.package
    part = package.part_of("/sharedStrings")
    if part is None:
        return
    used: set[int] = set()
    for entry in package.sheets():
        if not entry.part or not package.has(entry.part):
            continue
        content = edit.parts.get(entry.part) or package.read(entry.part)
        for piece in content if isinstance(content, list) else [content]:
            text = piece.row if isinstance(piece, Renumbered) else piece
            if SHARED_STRING_CELL.search(text):
                used.update(int(m.group(1)) for m in SST_REF.finditer(text))
    xml = package.read(part)
    index = -1

    def replace(match: re.Match[bytes]) -> bytes:
        nonlocal index
        index += 1
        return match.group(0) if index in used else EMPTY_SI

    new = SI.sub(replace, xml)
    if new != xml:
        edit.parts[part] = new


def _set_key_check(edit: _Edit, value: str) -> None:
    package = edit.package
    part = next(
        (t for k, t, _ in package.relationships("").values() if k == REL_NS + "/custom-properties"),
        None,
    )
    element = (
        f'<property fmtid="{CUSTOM_FMTID}" pid="{{pid}}" name="{escape_attr(KEY_CHECK_PROPERTY)}">'
        f'<vt:lpwstr xmlns:vt="{VT_NS}">{escape(value)}</vt:lpwstr></property>'
    )
    if part is not None and package.has(part):
        xml = package.read(part)
        xml = re.sub(
            rb"<property\b[^>]*name=\"" + KEY_CHECK_PROPERTY.encode() + rb"\".*?</property>",
            b"",
            xml,
            flags=re.S,
        )
        pids = [int(p) for p in re.findall(rb"\spid=\"([0-9]+)\"", xml)]
        new = element.replace("{pid}", str(max([1, *pids]) + 1)).encode()
        if b"</Properties>" in xml:
            xml = xml.replace(b"</Properties>", new + b"</Properties>")
        else:
            xml = re.sub(
                rb"<Properties\b([^>]*)/>",
                lambda m: b"<Properties" + m.group(1) + b">" + new + b"</Properties>",
                xml,
            )
        edit.parts[part] = xml
        return
    _add_custom_part(edit, element.replace("{pid}", "2"))


def _add_custom_part(edit: _Edit, element: str) -> None:
    package = edit.package
    part = "docProps/custom.xml"
    edit.parts[part] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Properties xmlns="{PROPERTIES_NS}" xmlns:vt="{VT_NS}">{element}</Properties>'
    ).encode()
    types = package.read("[Content_Types].xml")
    override = f'<Override PartName="/{part}" ContentType="{CUSTOM_PROPS_CONTENT}"/>'
    edit.parts["[Content_Types].xml"] = types.replace(b"</Types>", override.encode() + b"</Types>")
    rels = package.read("_rels/.rels")
    ids = set(re.findall(rb"\sId=\"([^\"]*)\"", rels))
    number = 1
    while f"rId{number}".encode() in ids:
        number += 1
    relation = f'<Relationship Id="rId{number}" Type="{REL_NS}/custom-properties" Target="{part}"/>'
    edit.parts["_rels/.rels"] = rels.replace(
        b"</Relationships>", relation.encode() + b"</Relationships>"
    )
