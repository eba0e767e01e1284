"""A worksheet's XML as a stream of rows: read cell values, and write a changed copy where
untouched rows and cells keep their bytes.

The scan works on the bytes with patterns for the few elements SpreadsheetML uses inside
``<sheetData>`` (ECMA-376 Part 1, §18.3.1: ``row``, ``c``, ``v``, ``f``, ``is``). That is sound
only for XML without comments, CDATA sections, processing instructions or a DTD, and with the
main namespace as the default one, which is what Excel, LibreOffice and openpyxl write; any
other sheet is refused as a layout problem rather than guessed at.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from typing import NamedTuple

from ..errors import LayoutError
from .xlsx_package import escape, unescape

MAX_ROW = 1048576
CELL = re.compile(
    rb"<c\b((?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(?:/>|>(.*?)</c>)", re.S
)
R_ATTR = re.compile(rb"""(\sr\s*=\s*["'])([A-Z]*)([0-9]+)(["'])""")
T_ATTR = re.compile(rb"""\st\s*=\s*["']([^"']*)["']""")
S_ATTR = re.compile(rb"""\ss\s*=\s*["']([0-9]+)["']""")
VALUE = re.compile(rb"<v\b[^>]*?(?:/>|>(.*?)</v>)", re.S)
FORMULA = re.compile(rb"<f\b[^>]*?(?:/>|>(.*?)</f>)", re.S)
TEXT = re.compile(rb"<t\b[^>]*?(?:/>|>(.*?)</t>)", re.S)
PHONETIC = re.compile(rb"<rPh\b.*?</rPh>", re.S)
SHEET_DATA = re.compile(rb"<sheetData\b[^>]*?(/>|>)")


def refuse_unparsable(xml: bytes, what: str) -> None:
    """Refuse XML the row scan cannot read soundly (see the module's docstring)."""
    start = xml.find(b"<", xml.find(b"?>") + 2 if xml.startswith(b"<?xml") else 0)
    if b"<!" in xml or xml.find(b"<?", start) >= 0 or xml[start + 1 : start + 2] in (b"", b"/"):
        raise LayoutError(
            f"the {what} holds XML that agii-sync does not edit (a DTD, comment or CDATA)",
            hint="open the workbook in Excel and save it again",
        )
    colon = xml.find(b":", start, xml.find(b">", start))
    space = xml.find(b" ", start)
    if 0 < colon < space:
        raise LayoutError(
            f"the {what} is written with a namespace prefix agii-sync does not edit",
            hint="open the workbook in Excel and save it again",
        )


@cache
def _column(letters: bytes) -> int:
    return column_number(letters)


def column_number(letters: bytes) -> int:
    number = 0
    for char in letters:
        number = number * 26 + char - 64
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def shared_strings(xml: bytes | None) -> list[str]:
    if xml is None:
        return []
    refuse_unparsable(xml, "shared strings part")
    return [
        _rich_text(m.group(1) or b"")
        for m in re.finditer(rb"<si\b[^>]*?(?:/>|>(.*?)</si>)", xml, re.S)
    ]


def _rich_text(inner: bytes) -> str:
    if b"<rPh" in inner:
        inner = PHONETIC.sub(b"", inner)
    return "".join(unescape(m.group(1) or b"") for m in TEXT.finditer(inner))


@dataclass
class Styles:
    """What the scan needs from the stylesheet: which cell formats show dates."""

    date_ids: frozenset[int]
    unlocked_ids: frozenset[int]


class Cell(NamedTuple):
    column: int
    value: object  # str, int, float, bool, datetime or None, as openpyxl would give it
    formula: bool
    kind: str  # "s" text, "n" number, "b" boolean, "d" date, "e" error, "f" formula, "" empty
    style: int | None
    span: tuple[int, int]  # within the sheet XML


NO_SPAN = (0, 0)
STRETCH = 256 * 1024  # bytes of sheet data matched at a time
# A cell as Excel, LibreOffice and openpyxl write almost all of them: r, s, t in this order and
# a plain value or inline string. The whole sheet is matched in one pass when every cell fits.
FAST_CELL = re.compile(
    rb'<c r="([A-Z]{1,3})([0-9]{1,7})"(?: s="([0-9]+)")?(?: t="([a-zA-Z]+)")?\s*'
    rb"(?:/>|>(?:<v>([^<]*)</v>|<is><t(?: xml:space=\"preserve\")?(?:/>|>([^<]*)</t>)</is>)?</c>)"
)
ANY_CELL_START = re.compile(rb"<c[\s/>]")
VALUED_ROW = re.compile(rb'<c r="[A-Z]{1,3}([0-9]{1,7})"[^>]*?>(?:<v>|<is>)')
VALUED_BEYOND_N = re.compile(rb'<c r="(?:[O-Z]|[A-Z]{2,3})[0-9]{1,7}"[^>]*?>(?:<v>|<is>)')


# A cell start tag whose first attribute is not r (what the narrow read cannot follow).
NOT_R_FIRST = re.compile(rb'<c(?:[\t\n\r\f\v/>]| (?!r="))')


def holds_value(cell: Cell | None) -> bool:
    """Whether a cell holds a value: a styled empty cell (a fill, a border) does not."""
    return cell is not None and cell.value is not None and cell.value != ""


@lru_cache(maxsize=8)
def fast_cells_of(letters: bytes) -> re.Pattern[bytes]:
    return re.compile(FAST_CELL.pattern.replace(b"([A-Z]{1,3})", b"(" + letters + b")", 1))


@lru_cache(maxsize=8)
def _cells_in_column(letters: bytes) -> re.Pattern[bytes]:
    return re.compile(rb'<c r="' + letters + rb"[0-9]")


@dataclass(frozen=True)
class Row:
    number: int
    start: int  # of the whole <row> element within the sheet XML
    end: int
    inner: tuple[int, int] | None  # span of the cells, None for <row/>


class SheetScan:
    """The rows of one sheet's XML, with a reader for their cells."""

    def __init__(self, xml: bytes, strings: list[str], styles: Styles, epoch1904: bool) -> None:
        refuse_unparsable(xml, "data sheet")
        self.xml = xml
        self.strings = strings
        self.styles = styles
        self.epoch1904 = epoch1904
        found = SHEET_DATA.search(xml)
        if found is None:
            raise LayoutError("the data sheet has no cell data part", hint="restore the sheet")
        self.data_start = found.end()
        self.data_end = (
            found.end() if found.group(1) == b"/>" else xml.index(b"</sheetData>", found.end())
        )

    def rows(self, begin: int = 0, stop: int = 0, number: int = 0) -> Iterator[Row]:
        """The ``<row>`` elements, of the whole sheet data or of ``begin:stop`` (after row
        ``number``); a row's attributes never hold ``>``: Excel-compatible writers escape it,
        and none of the row attributes is text."""
        xml = self.xml
        data_end = stop or self.data_end
        start = xml.find(b"<row", begin or self.data_start, data_end)
        while start >= 0:
            tag_end = xml.index(b">", start) + 1
            found = R_ATTR.search(xml, start, tag_end)
            number = int(found.group(3)) if found else number + 1
            if xml[tag_end - 2 : tag_end] == b"/>":
                yield Row(number, start, tag_end, None)
                end = tag_end
            else:
                close = xml.index(b"</row>", tag_end)
                end = close + len(b"</row>")
                yield Row(number, start, end, (tag_end, close))
            start = xml.find(b"<row", end, data_end)

    def columns_only(self, columns: tuple[bytes, ...]) -> dict[int, dict[bytes, Cell]] | None:
        """The cells of a few columns (by letter) of every row that holds a value, without
        reading the others; None when the sheet is not of the usual shape (a formula, a
        value right of column N, a cell written differently), so the caller reads it all.
        Matched in place (no copy of the sheet data), and no match per cell of the other
        columns: only rows without a cell in ``columns`` are searched for a value."""
        xml, start, end = self.xml, self.data_start, self.data_end
        if not self._usual_shape():
            return None
        rows: dict[int, dict[bytes, Cell]] = {}
        for letters in columns:
            found = fast_cells_of(letters).findall(xml, start, end)
            if len(found) != len(_cells_in_column(letters).findall(xml, start, end)):
                return None
            self._add_fast_cells(rows, letters, found)
        if len(rows) < xml.count(b"<row", start, end):
            for row in self.rows():  # a row without those columns counts if it holds a value
                if row.number not in rows and row.inner is not None:
                    for number in VALUED_ROW.findall(xml, *row.inner):
                        rows.setdefault(int(number), {})
        return rows

    def column_texts(self, letters: bytes) -> dict[int, str | Cell] | None:
        """The cells of one column (by letter) of every row that has one, without reading
        the other columns: the usual inline text as its text (no call per cell), any other
        cell as a Cell. None when the sheet is not of the usual shape (see ``columns_only``).
        Rows without a cell in the column are not in it."""
        xml, start, end = self.xml, self.data_start, self.data_end
        if not self._usual_shape():
            return None
        found = fast_cells_of(letters).findall(xml, start, end)
        if len(found) != len(_cells_in_column(letters).findall(xml, start, end)):
            return None
        texts: dict[int, str | Cell] = {}
        for _, row, style, kind, value, inline in found:
            if kind == b"inlineStr" and b"&" not in inline and b"\r" not in inline:
                texts[int(row)] = inline.decode()
            elif kind == b"inlineStr":
                texts[int(row)] = unescape(inline)
            else:
                texts[int(row)] = self._fast(letters, style, kind, value)
        return texts

    def row_holds_value(self, row: Row) -> bool:
        return any(holds_value(c) for c in self.cells(row))

    def row_count(self) -> int:
        return self.xml.count(b"<row", self.data_start, self.data_end)

    def _usual_shape(self) -> bool:
        """No formula, no value right of column N, every cell with r written first: what the
        narrow reads can follow."""
        xml, start, end = self.xml, self.data_start, self.data_end
        if xml.find(b"<f", start, end) >= 0 or VALUED_BEYOND_N.search(xml, start, end):
            return False
        return not NOT_R_FIRST.search(xml, start, end)  # a cell without r, or r not first

    def _add_fast_cells(
        self, rows: dict[int, dict[bytes, Cell]], letters: bytes, found: list[tuple[bytes, ...]]
    ) -> None:
        """The matches of FAST_CELL in one column into ``rows``; the usual inline text cell
        without a call per cell (thousands of rows)."""
        column, fast = _column(letters), self._fast
        for _, row, style, kind, value, inline in found:
            if kind == b"inlineStr":
                text = (
                    inline.decode()
                    if b"&" not in inline and b"\r" not in inline
                    else (unescape(inline))
                )
                cell = Cell(column, text, False, "s" if text else "", None, NO_SPAN)
            else:
                cell = fast(letters, style, kind, value)
            number = int(row)
            cells = rows.get(number)
            if cells is None:
                rows[number] = {letters: cell}
            else:
                cells[letters] = cell

    def row_numbered(self, number: int, after: int = 0) -> Row | None:
        """The ``<row>`` element with this number, found by its ``r`` attribute written
        first (as Excel-compatible writers do), at or after offset ``after`` (rows come in
        ascending order: the end of an earlier row found); None if it is not found that way."""
        begin = max(after, self.data_start)
        start = self.xml.find(b'<row r="%d"' % number, begin, self.data_end)
        if start < 0:
            return None
        tag_end = self.xml.index(b">", start) + 1
        if self.xml[tag_end - 2 : tag_end] == b"/>":
            return Row(number, start, tag_end, None)
        close = self.xml.index(b"</row>", tag_end)
        return Row(number, start, close + len(b"</row>"), (tag_end, close))

    def row_cells(self) -> Iterator[tuple[int, list[Cell]]]:
        """Every row's number and cells: a stretch of rows at a time (a few hundred KB, so
        the matches of a big sheet are never all held at once), in one regex pass when every
        cell of the stretch has the common shape (the usual case), else row by row."""
        number = 0
        for start, end in self._stretches():
            found = FAST_CELL.findall(self.xml, start, end)
            if len(found) == len(ANY_CELL_START.findall(self.xml, start, end)):
                for number, cells in self._fast_rows(found):
                    yield number, cells
            else:
                for row in self.rows(start, end, number):
                    number = row.number
                    yield number, self.cells(row)

    def _stretches(self) -> Iterator[tuple[int, int]]:
        """The sheet data cut after a ``</row>`` about every STRETCH bytes."""
        start = self.data_start
        while start < self.data_end:
            cut = self.xml.find(b"</row>", min(start + STRETCH, self.data_end), self.data_end)
            end = self.data_end if cut < 0 else cut + len(b"</row>")
            yield start, end
            start = end

    def _fast_rows(self, found: list[tuple[bytes, ...]]) -> Iterator[tuple[int, list[Cell]]]:
        number, cells = 0, list[Cell]()
        strings = self.strings
        for letters, row, style, kind, value, inline in found:
            if int(row) != number:
                if cells:
                    yield number, cells
                number, cells = int(row), []
            if kind == b"inlineStr":  # the usual cell: no call, no lookups
                text = inline.decode() if inline and b"&" not in inline else unescape(inline)
                cells.append(
                    Cell(_column(letters), text, False, "s" if text else "", None, NO_SPAN)
                )
            elif kind == b"s" and value:
                cells.append(Cell(_column(letters), strings[int(value)], False, "s", None, NO_SPAN))
            else:
                cells.append(self._fast(letters, style, kind, value))
        if cells:
            yield number, cells

    def _fast(self, letters: bytes, style: bytes, kind: bytes, value: bytes) -> Cell:
        column = _column(letters)
        style_id = int(style) if style else None
        if not value:
            return Cell(column, None, False, "", style_id, NO_SPAN)
        return self._typed(column, kind.decode() or "n", value, style_id, NO_SPAN)

    def cells(self, row: Row) -> list[Cell]:
        if row.inner is None:
            return []
        start, end = row.inner
        cells, column = [], 0
        for match in CELL.finditer(self.xml, start, end):
            attrs = match.group(1)
            found = R_ATTR.search(attrs)
            column = column_number(found.group(2)) if found and found.group(2) else column + 1
            cells.append(self._cell(column, attrs, match.group(2), match.span()))
        return cells

    def _cell(self, column: int, attrs: bytes, inner: bytes | None, span: tuple[int, int]) -> Cell:
        kind_match = T_ATTR.search(attrs)
        kind = kind_match.group(1).decode() if kind_match else "n"
        style_match = S_ATTR.search(attrs)
        style = int(style_match.group(1)) if style_match else None
        inner = inner or b""
        formula = FORMULA.search(inner) if b"<f" in inner else None
        if formula is not None:
            return Cell(column, "=" + unescape(formula.group(1) or b""), True, "f", style, span)
        if kind == "inlineStr":
            text = _rich_text(inner) if b"<is" in inner else None
            return Cell(column, text, False, "s" if text is not None else "", style, span)
        found = VALUE.search(inner)
        raw = found.group(1) if found else None
        if not raw:
            return Cell(column, None, False, "", style, span)
        return self._typed(column, kind, raw, style, span)

    def _typed(
        self, column: int, kind: str, raw: bytes, style: int | None, span: tuple[int, int]
    ) -> Cell:
        text = unescape(raw) if b"&" in raw or b"\r" in raw else raw.decode()
        try:
            if kind == "s":
                return Cell(column, self.strings[int(text)], False, "s", style, span)
            if kind == "b":
                return Cell(column, bool(int(text)), False, "b", style, span)
            if kind in ("str", "e"):
                return Cell(column, text, False, "s" if kind == "str" else "e", style, span)
            if kind == "d":
                return Cell(column, datetime.fromisoformat(text), False, "d", style, span)
            number = float(text) if any(c in text for c in ".eE") else int(text)
        except (ValueError, IndexError):
            raise LayoutError(
                "a cell of the data sheet holds a value that cannot be read"
            ) from None
        if style is not None and style in self.styles.date_ids:
            return Cell(column, self._date(number), False, "d", style, span)
        return Cell(column, number, False, "n", style, span)

    def _date(self, serial: float) -> datetime | float:
        return _excel_date(serial, self.epoch1904)


@lru_cache(maxsize=4096)  # a sheet's dates repeat (Bewaren tot is an end of month)
def _excel_date(serial: float, epoch1904: bool) -> datetime | float:
    from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

    epoch = CALENDAR_MAC_1904 if epoch1904 else CALENDAR_WINDOWS_1900
    try:
        value = from_excel(serial, epoch)
    except (OverflowError, ValueError):
        return serial
    return value if isinstance(value, datetime) else datetime.combine(value, datetime.min.time())


# -- writing -----------------------------------------------------------------------------


def text_cell(ref: str, text: str, style: int | None) -> bytes:
    s = f' s="{style}"' if style is not None else ""
    if text == "":
        return f'<c r="{ref}"{s}/>'.encode() if style is not None else b""
    space = ' xml:space="preserve"' if text != text.strip() or "\n" in text else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{escape(text)}</t></is></c>'.encode()


def date_cell(ref: str, value: date, style: int | None, epoch1904: bool) -> bytes:
    origin = date(1904, 1, 1) if epoch1904 else date(1899, 12, 30)
    serial = (value - origin).days
    s = f' s="{style}"' if style is not None else ""
    return f'<c r="{ref}"{s}><v>{serial}</v></c>'.encode()


class RowMap:
    """Where each old row number ends up: rows removed, rows inserted after a given row."""

    def __init__(self, removed: list[int], inserted_after: int, inserted: int) -> None:
        self.removed = sorted(removed)
        self.inserted_after = inserted_after
        self.inserted = inserted
        self._removed_set = frozenset(self.removed)
        # The first inserted row's number, and the last data row's after the change.
        self.first_inserted = inserted_after - bisect_right(self.removed, inserted_after) + 1
        self.new_last = self.first_inserted - 1 + inserted

    @property
    def identity(self) -> bool:
        return not self.removed and self.inserted == 0

    def moves_existing(self, last_row: int) -> bool:
        return bool(self.removed) or (self.inserted > 0 and self.inserted_after < last_row)

    def is_removed(self, row: int) -> bool:
        return row in self._removed_set

    def position(self, row: int) -> int:
        """The new number of an old row position (a removed row: where it would be)."""
        if row >= MAX_ROW:
            return row
        new = row - bisect_left(self.removed, row)
        if row > self.inserted_after:
            new += self.inserted
        return min(new, MAX_ROW)

    def row(self, row: int) -> int | None:
        return None if self.is_removed(row) else self.position(row)

    def span(self, top: int, bottom: int) -> tuple[int, int] | None:
        """A range of rows after the change, or None when every row of it was removed."""
        if top >= MAX_ROW:
            return top, bottom
        first = top
        while first <= bottom and self.is_removed(first):
            first += 1
        last = bottom
        while last >= first and self.is_removed(last):
            last -= 1
        if first > last:
            return None
        end = MAX_ROW if bottom >= MAX_ROW else self.position(last)
        if bottom >= MAX_ROW and first == self.inserted_after + 1:
            # Down to the sheet's end from just below the data (the drop-down of a sheet with
            # no data rows yet): the new rows are appended into it, not above it.
            return first - bisect_left(self.removed, first), end
        return self.position(first), end


def renumber_row(xml: bytes, new_number: int) -> bytes:
    """A whole ``<row>`` element with its own and its cells' row numbers replaced."""
    number = str(new_number).encode()
    return R_ATTR.sub(lambda m: m.group(1) + m.group(2) + number + m.group(4), xml)


REF = re.compile(r"(\$?)([A-Z]{1,3})?(\$?)([0-9]+)")


def shift_ref(ref: str, rows: RowMap, *, grow_to: int | None = None) -> str | None:
    """One range or cell reference (``B5``, ``A1:N9``, ``$A$1:$N$9``) after rows moved;
    None when all its rows were removed. ``grow_to``: a range starting in the header row ends
    at that row (a filter or table over the data)."""
    parts = ref.split(":")
    points = [REF.fullmatch(p) for p in parts]
    if not all(points) or len(parts) > 2:
        return ref  # whole columns (N:N) or something we do not move
    top, bottom = int(points[0].group(4)), int(points[-1].group(4))  # type: ignore[union-attr]
    new: tuple[int, int] | None = None
    if grow_to is not None and top == 1 and len(parts) == 2:
        new = (1, max(grow_to, 2))
    else:
        new = rows.span(top, bottom)
    if new is None:
        return None
    rebuilt = [
        f"{p.group(1)}{p.group(2) or ''}{p.group(3)}{n}"  # type: ignore[union-attr]
        for p, n in zip(points, new if len(parts) == 2 else new[:1], strict=True)
    ]
    return ":".join(rebuilt)


def shift_sqref(sqref: str, rows: RowMap) -> str | None:
    kept = [s for s in (shift_ref(part, rows) for part in sqref.split()) if s]
    return " ".join(kept) or None


def first_row_of(ref: str) -> int | None:
    found = REF.search(ref)
    return int(found.group(4)) if found else None


def attr_value(tag: bytes, name: bytes) -> str | None:
    found = re.search(rb"\s" + name + rb"""\s*=\s*["']([^"']*)["']""", tag)
    return unescape(found.group(1)) if found else None


def set_attr(tag: bytes, name: bytes, value: str) -> bytes:
    pattern = re.compile(rb"(\s" + name + rb"""\s*=\s*["'])([^"']*)(["'])""")
    encoded = value.encode()
    if pattern.search(tag):
        return pattern.sub(lambda m: m.group(1) + encoded + m.group(3), tag, count=1)
    return tag + b" " + name + b'="' + encoded + b'"'
