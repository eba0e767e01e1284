"""The shared workbook (docs/workbook.md): create it, read it into rows, write rows back.

A new workbook is the template made with openpyxl, its rows appended by the zip-level editor.
A workbook read from a site is read with a streamed scan of the data sheet's XML and written
back by editing that sheet in place (``workbook_edit``): everything else the municipality did
stays as it is. Only a workbook that
lost its ``Toelichting`` sheet is rebuilt with openpyxl, to restore that sheet.
"""

from __future__ import annotations

import functools
import io
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.packaging.custom import StringProperty
from openpyxl.styles import Alignment, Font, PatternFill, Protection
from openpyxl.utils import get_column_letter
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from ..domain.check import Finding, key_findings_of_ids
from ..domain.codes import ACTIVITY_STATUSES, is_formula_like
from ..domain.row import COLUMNS, STATUS_COLUMN, SharedRow, SheetRow
from ..errors import InputError, LayoutError
from .hostile import hostile_content
from .sheet_xml import Cell as ScannedCell
from .sheet_xml import SheetScan, holds_value, shared_strings
from .toelichting import TOELICHTING_SHEET, write_toelichting
from .workbook_edit import (
    KEY_CHECK_PROPERTY,
    STATUS_ERROR,
    STATUS_ERROR_STYLE,
    EditResult,
    apply_named_rows,
    apply_rows,
    status_drop_down,
)
from .workbook_styles import read_styles
from .xlsx_package import Package, attributes, unescape
from .zipguard import refuse_zip_bomb

DATE_FORMAT = "DD/MM/YYYY"
STATUS_INDEX = COLUMNS.index(STATUS_COLUMN)
DATE_COLUMN = COLUMNS.index("Bewaren tot") + 1
WIDTHS = (13, 18, 16, 30, 9, 18, 18, 28, 20, 10, 14, 40, 12, 24)
FIELDS = tuple(SharedRow.model_fields)


@dataclass
class LoadedWorkbook:
    """A workbook read from a site: its bytes, sheet names and data rows. The openpyxl
    object (``book``) is only built to restore a lost Toelichting sheet."""

    content: bytes
    sheet_name: str
    sheetnames: list[str]
    rows: list[SheetRow] = field(default_factory=list)
    key_check: str | None = None  # of the row-key secret the workbook was last pushed with
    hostile: list[str] = field(default_factory=list)  # what must not be in it (see hostile.py)
    drop_down: str = "stop"  # what the status drop-down does with other text (status_drop_down)
    # Set when ``rows`` holds only the rows a command named (status-update): the findings that
    # stop a write, of every row of the sheet.
    every_key_finding: list[Finding] | None = None
    _book: Workbook | None = None

    def __reduce__(self) -> tuple[object, ...]:
        """Its rows as plain tuples: a read in a worker process comes back at a fraction of
        the cost of pickling thousands of objects (the openpyxl book is never sent)."""
        packed = [row.packed() for row in self.rows]
        state = (self.content, self.sheet_name, self.sheetnames, packed, self.key_check)
        extra = (self.hostile, self.drop_down, self.every_key_finding)
        return (_unpacked_workbook, (*state, *extra))

    @property
    def named_only(self) -> bool:
        return self.every_key_finding is not None

    @property
    def shared_rows(self) -> list[SharedRow]:
        return [r.row for r in self.rows]

    @property
    def book(self) -> Workbook:
        if self._book is None:
            self._book = _open(self.content)
        return self._book

    @property
    def has_toelichting(self) -> bool:
        return TOELICHTING_SHEET in self.sheetnames

    @property
    def by_sheet_row(self) -> dict[int, SharedRow]:
        return {r.sheet_row: r.row for r in self.rows}


def _unpacked_workbook(
    content: bytes,
    sheet_name: str,
    sheetnames: list[str],
    packed: list[tuple[object, ...]],
    key_check: str | None,
    hostile: list[str],
    drop_down: str,
    every_key_finding: list[Finding] | None,
) -> LoadedWorkbook:
    rows = [SheetRow.unpacked(values) for values in packed]
    return LoadedWorkbook(
        content, sheet_name, sheetnames, rows, key_check, hostile, drop_down, every_key_finding
    )


def create_workbook(
    sheet_name: str,
    rows: Iterable[SharedRow] = (),
    *,
    retention_months: int,
    key_check: str | None = None,
) -> bytes:
    """A new workbook from the template holding ``rows``: the template is made by openpyxl
    with no rows, the rows are appended by the zip-level editor (as a push appends new people,
    many times faster than openpyxl writes cells). ``retention_months`` is what the Toelichting
    tells the municipality; ``key_check`` marks the row-key secret the Rij-IDs were made with."""
    template = _template(sheet_name, retention_months=retention_months, key_check=key_check)
    rows = list(rows)
    if not rows:
        return template
    return apply_rows(template, sheet_name, {}, rows).content


@functools.lru_cache(maxsize=8)
def _template(sheet_name: str, *, retention_months: int, key_check: str | None) -> bytes:
    """The empty template, made once per run for all the sites that need one (openpyxl takes
    a tenth of a second or more to write it)."""
    return _openpyxl_workbook(
        sheet_name, [], retention_months=retention_months, key_check=key_check
    )


def _openpyxl_workbook(
    sheet_name: str, rows: list[SharedRow], *, retention_months: int, key_check: str | None
) -> bytes:
    """The template holding ``rows``, written by openpyxl (write-only mode)."""
    book = Workbook(write_only=True)
    _set_key_check(book, key_check)
    sheet = book.create_sheet(sheet_name)
    _format(sheet, len(rows))  # a streamed sheet takes its layout before its first row
    sheet.append(_header_cells(sheet))
    unlocked = Protection(locked=False)
    for row in rows:
        sheet.append(_streamed_row(sheet, row, unlocked))
    write_toelichting(book.create_sheet(TOELICHTING_SHEET), retention_months=retention_months)
    return save(book)


def _header_cells(sheet: Any) -> list[Cell]:
    cells = [WriteOnlyCell(sheet, value=title) for title in COLUMNS]
    _style_header(cells)
    return cells


def _streamed_row(sheet: Any, row: SharedRow, unlocked: Protection) -> list[object]:
    values: list[object] = list(row.cells())
    for i, value in enumerate(values):
        if is_formula_like(value):
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"  # stored as text, never as a formula
            values[i] = cell
    if isinstance(row.bewaren_tot, date):
        date_cell = WriteOnlyCell(sheet, value=row.bewaren_tot)
        date_cell.number_format = DATE_FORMAT
        values[DATE_COLUMN - 1] = date_cell
    status = values[STATUS_INDEX]
    status_cell = status if isinstance(status, Cell) else WriteOnlyCell(sheet, value=status)
    status_cell.protection = unlocked
    values[STATUS_INDEX] = status_cell
    return values


def load(
    content: bytes,
    sheet_name: str,
    *,
    status_only: bool = False,
    only: frozenset[str] | None = None,
) -> LoadedWorkbook:
    """``_load``; XML that the scan cannot follow (cut short, garbled) is a LayoutError, never
    an internal error: the workbook comes from the site."""
    try:
        return _load(content, sheet_name, status_only=status_only, only=only)
    except (ValueError, IndexError, KeyError) as exc:
        raise LayoutError(
            f"the workbook on the site cannot be read as XLSX ({exc.__class__.__name__})"
        ) from None


def _load(
    content: bytes,
    sheet_name: str,
    *,
    status_only: bool = False,
    only: frozenset[str] | None = None,
) -> LoadedWorkbook:
    """Read a workbook's rows from its bytes with a streamed scan of the data sheet's XML;
    raise LayoutError if it is not in the expected layout. ``status_only``: only each row's
    Rij-ID and status are read (the other fields are empty), for commands that need no more
    (status-update, pull-status); a sheet not of the usual shape is read in full. ``only``
    (with ``status_only``): of those, only the rows with these Rij-IDs (``named_only``), and
    the findings that stop a write of every row."""
    package = Package(content)
    sheets = package.sheets()
    names = [s.name for s in sheets]
    entry = next((s for s in sheets if s.name == sheet_name), None)
    if entry is None or not package.has(entry.part):
        raise LayoutError(
            f"the workbook has no sheet {sheet_name!r}",
            hint="a sheet was renamed or removed; restore it or ask AgII to re-initialise",
        )
    strings_part = package.part_of("/sharedStrings")
    styles_part = package.part_of("/styles")
    scan = SheetScan(
        package.read(entry.part),
        shared_strings(package.read(strings_part) if strings_part else None),
        read_styles(package.read(styles_part) if styles_part else None),
        package.date1904,
    )
    rows, findings = _rows(scan, status_only=status_only, only=only)
    return LoadedWorkbook(
        content,
        sheet_name,
        names,
        rows,
        _key_check(package),
        hostile_content(package),
        status_drop_down(scan.xml[max(scan.xml.rfind(b"</sheetData>"), 0) :]),
        every_key_finding=findings,
    )


def _rows(
    scan: SheetScan, *, status_only: bool, only: frozenset[str] | None
) -> tuple[list[SheetRow], list[Finding] | None]:
    """The data rows, read as narrowly as the command allows and the sheet's shape permits;
    with the key findings of every row when only the named rows were read."""
    named = _named_rows(scan, only) if status_only and only is not None else None
    if named is not None:
        return named
    narrow = _status_rows(scan) if status_only else None
    if narrow is not None:
        return narrow, None
    lines = scan.row_cells()
    header = next(lines, (1, []))
    if header[0] != 1:
        header, lines = (1, []), itertools.chain([header], lines)
    _check_header(header[1])
    return list(_read_rows(lines)), None


def _open(content: bytes) -> Workbook:
    try:
        refuse_zip_bomb(Path("the workbook on the site"), content)
    except InputError as error:
        raise LayoutError(error.message) from None
    try:
        return openpyxl.load_workbook(io.BytesIO(content), rich_text=False)
    except Exception as exc:  # noqa: BLE001 - a file from the site: any parser failure
        raise LayoutError(
            f"the workbook on the site cannot be read as XLSX ({exc.__class__.__name__})"
        ) from None


KEY_LETTER, STATUS_LETTER = b"A", get_column_letter(STATUS_INDEX + 1).encode()
EMPTY_FIELDS = {name: "" for name in FIELDS} | {"bewaren_tot": None}


def _status_rows(scan: SheetScan) -> list[SheetRow] | None:
    found = scan.columns_only((KEY_LETTER, STATUS_LETTER))
    first = scan.row_numbered(1)
    if found is None or first is None:
        return None
    _check_header(scan.cells(first))
    rows, after = [], 0
    for number in sorted(found):
        if number == 1:
            continue
        cells = found[number]
        key, status = cells.get(KEY_LETTER), cells.get(STATUS_LETTER)
        if not holds_value(key) and not holds_value(status):
            element = scan.row_numbered(number, after)  # rows come in order: on from here
            if element is not None and not scan.row_holds_value(element):
                after = element.end
                continue  # a formatted empty row (a fill or border below the data) is no row
        rows.append(_status_row(number, _text_of(key), status))
    return rows


def _named_rows(
    scan: SheetScan, only: frozenset[str]
) -> tuple[list[SheetRow], list[Finding]] | None:
    """The rows whose Rij-ID is in ``only`` (key and status read), and the findings that stop
    a write of every row, from column A alone; None when the sheet is not of the usual shape
    (see ``SheetScan.columns_only``). A status-update of one row on a big workbook reads one
    column and one row instead of two columns."""
    texts = scan.column_texts(KEY_LETTER)
    first = scan.row_numbered(1)
    if texts is None or first is None:
        return None
    _check_header(scan.cells(first))
    keys = {n: key for n, text in texts.items() if n != 1 and (key := _text_of(text))}
    if len(keys) + 1 < scan.row_count():  # rows without a key: a value elsewhere makes one
        keys |= {
            row.number: ""
            for row in scan.rows()
            if row.number != 1 and row.number not in keys and scan.row_holds_value(row)
        }
    rows, after = [], 0
    for number in sorted(n for n, key in keys.items() if key in only):
        element = scan.row_numbered(number, after)  # rows come in order: search on from here
        if element is None:
            return None  # a row not written as usual: the general read
        after = element.end
        cells = scan.cells(element)
        status = next((c for c in cells if c.column == STATUS_INDEX + 1), None)
        rows.append(_status_row(number, keys[number], status))
    return rows, key_findings_of_ids(sorted(keys.items()))


def _status_row(number: int, key: str, status: ScannedCell | None) -> SheetRow:
    values: dict[str, object] = {
        **EMPTY_FIELDS,
        "rij_id": key,
        "status_activiteit": _text_of(status),
    }
    return SheetRow(number, SharedRow.read_from_sheet(values), status_typed=_typed_as(status))


def _text_of(cell: ScannedCell | str | None) -> str:
    if cell is None:
        return ""
    value = cell if isinstance(cell, str) else cell.value
    return value.strip() if type(value) is str else _text(value)


def _check_header(cells: list[ScannedCell]) -> None:
    by_column = {c.column: _text(c.value) for c in cells}
    for i, expected in enumerate(COLUMNS, start=1):
        got = by_column.get(i, "")
        if got != expected:
            # The cell's own text is not repeated: someone may have typed anything there.
            raise LayoutError(
                f"header cell {get_column_letter(i)}1 is {'empty' if not got else 'changed'}; "
                f"expected {expected!r}",
                hint="the header was changed by hand; restore it (see the Toelichting sheet)",
            )
    _refuse_beyond_header(1, cells)


def _refuse_beyond_header(line: int, cells: list[ScannedCell]) -> None:
    for cell in cells:
        if cell.column > len(COLUMNS) and holds_value(cell):
            raise LayoutError(
                f"cell {get_column_letter(cell.column)}{line} is outside the columns "
                "of the protocol; no other columns may be added",
                hint="move that information elsewhere and empty the column",
            )


def _read_rows(lines: Iterable[tuple[int, list[ScannedCell]]]) -> Iterable[SheetRow]:
    width = len(COLUMNS)
    for line, cells in lines:
        by_column: list[ScannedCell | None] = [None] * width
        for cell in cells:
            if cell.column <= width:
                by_column[cell.column - 1] = cell
            elif holds_value(cell):
                _refuse_beyond_header(line, [cell])
        if not any(holds_value(c) for c in by_column):
            continue
        values: dict[str, object] = {}
        formulas: tuple[str, ...] = ()
        for name, column, found in zip(FIELDS, COLUMNS, by_column, strict=True):
            value = None if found is None else found.value
            if found is not None and found.formula:
                formulas += (column,)
            if name == "bewaren_tot":
                values[name] = _date(value)
            else:
                values[name] = value.strip() if type(value) is str else _text(value)
        yield SheetRow(
            line,
            SharedRow.read_from_sheet(values),
            formulas,
            status_typed=_typed_as(by_column[STATUS_INDEX]),
        )


def _typed_as(cell: ScannedCell | None) -> str:
    """How a status cell was typed when not as plain text: kept, but worth a finding."""
    if cell is None or cell.value is None or cell.formula:
        return ""
    if cell.kind == "n":
        return "number"
    if cell.kind == "d":
        return "date"
    if cell.kind == "b":
        return "boolean"
    if isinstance(cell.value, str) and cell.value != cell.value.strip() and cell.value.strip():
        return "padded"
    return ""


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value).strip()


def _date(value: object) -> date | str | None:
    """A real date, None for an empty cell, or the text as typed (flagged by check)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text


def _key_check(package: Package) -> str | None:
    for kind, part, _ in package.relationships("").values():
        if kind.endswith("/custom-properties") and package.has(part):
            xml = package.read(part)
            for match in re.finditer(rb"<property\b([^>]*)>(.*?)</property>", xml, re.S):
                if attributes(match.group(1)).get("name") == KEY_CHECK_PROPERTY:
                    value = re.search(
                        rb"<(?:\w+:)?lpwstr>(.*?)</(?:\w+:)?lpwstr>", match.group(2), re.S
                    )
                    return unescape(value.group(1)) or None if value else None
    return None


def _set_key_check(book: Workbook, key_check: str | None) -> None:
    if key_check is None:
        return
    props = book.custom_doc_props
    props.props = [p for p in props.props if p.name != KEY_CHECK_PROPERTY]
    props.append(StringProperty(name=KEY_CHECK_PROPERTY, value=key_check))


def write_rows(
    book: Workbook,
    sheet_name: str,
    rows: Iterable[SharedRow],
    *,
    retention_months: int,
    key_check: str | None = None,
    restore_toelichting: bool = True,
) -> None:
    """Make the data sheet hold exactly ``rows`` under the template's header, protection and
    drop-down. Cells are rewritten only where their value differs, so an unchanged row costs
    a comparison. Other sheets are not touched."""
    _set_key_check(book, key_check)
    if sheet_name not in book.sheetnames:
        book.create_sheet(sheet_name, 0)
    sheet = book[sheet_name]
    book.active = book.sheetnames.index(sheet_name)
    count = _fill(sheet, rows)
    if sheet.max_row > count + 1:
        sheet.delete_rows(count + 2, sheet.max_row - count - 1)
    _style_header(sheet[1])
    _format(sheet, count)
    if restore_toelichting and TOELICHTING_SHEET not in book.sheetnames:
        sheet = book.create_sheet(TOELICHTING_SHEET)
        write_toelichting(sheet, retention_months=retention_months)


def _fill(sheet: Worksheet, rows: Iterable[SharedRow]) -> int:
    for column, title in enumerate(COLUMNS, start=1):
        sheet.cell(row=1, column=column, value=title)
    unlocked = Protection(locked=False)
    last = 1
    for last, row in enumerate(rows, start=2):  # noqa: B007 - last is used after the loop
        if _write_row(sheet, last, row.cells()):
            if isinstance(row.bewaren_tot, date):
                sheet.cell(row=last, column=DATE_COLUMN).number_format = DATE_FORMAT
            sheet.cell(row=last, column=STATUS_INDEX + 1).protection = unlocked
    return last - 1


def _write_row(sheet: Worksheet, row_number: int, values: tuple[object, ...]) -> bool:
    changed = False
    for column, value in enumerate(values, start=1):
        cell = sheet.cell(row=row_number, column=column)
        if _holds(cell, value):
            continue
        cell.value = value
        if is_formula_like(value):
            cell.data_type = "s"  # stored as text, never as a formula
        changed = True
    return changed


def _holds(cell: Cell, value: object) -> bool:
    """Whether the cell already shows ``value`` as the template would write it."""
    current = cell.value
    if cell.data_type == "f":
        return False
    if value is None or value == "":
        return current is None or current == ""
    if isinstance(current, datetime) and type(value) is date:
        return current.date() == value
    return type(current) is type(value) and current == value


def _style_header(cells: Iterable[Cell]) -> None:
    font = Font(bold=True, color="FFFFFF")
    fill = PatternFill("solid", fgColor="1F4E78")
    for cell in cells:
        cell.font = font
        cell.fill = fill
        cell.alignment = Alignment(vertical="center")


def _format(sheet: Any, count: int) -> None:
    """The data sheet's layout: widths, frozen header, filter, drop-down, protection."""
    for i, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = width
    status_letter = get_column_letter(STATUS_INDEX + 1)
    # Empty cells below the data stay unlocked and keep the drop-down, so a municipality can
    # still fill in a status after sorting or filtering.
    sheet.column_dimensions[status_letter].protection = Protection(locked=False)
    last = count + 1
    sheet.freeze_panes = "B2"
    sheet.auto_filter.ref = f"A1:{status_letter}{max(last, 2)}"
    sheet.data_validations.dataValidation = []
    sheet.data_validations.append(_status_validation(f"{status_letter}2:{status_letter}1048576"))
    sheet.protection.sheet = True
    sheet.protection.autoFilter = False  # False = allowed while protected
    sheet.protection.sort = False
    sheet.protection.formatColumns = False


def _status_validation(ref: str) -> DataValidation:
    listed = ",".join(ACTIVITY_STATUSES)
    validation = DataValidation(
        type="list",
        formula1=f'"{listed}"',
        allow_blank=True,
        showErrorMessage=True,
        errorStyle=STATUS_ERROR_STYLE,
        errorTitle="Status activiteit",
        error=STATUS_ERROR,
        showInputMessage=True,
        promptTitle="Status activiteit",
        prompt="Kies een status uit de lijst.",
    )
    validation.add(ref)
    return validation


def save(book: Workbook) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def render(
    loaded: LoadedWorkbook,
    rows: Iterable[SharedRow],
    *,
    retention_months: int,
    key_check: str | None = None,
    restore_toelichting: bool = True,
) -> EditResult:
    """The workbook holding ``rows``: the data sheet edited in place, every other part as it
    was. A workbook without its Toelichting sheet gets it back first (rebuilt by openpyxl)."""
    rows = list(rows)
    restore = restore_toelichting and not loaded.has_toelichting
    if loaded.named_only:
        edited = (
            None
            if restore
            else apply_named_rows(
                loaded.content,
                loaded.sheet_name,
                loaded.by_sheet_row,
                rows,
                key_check=_mark(loaded, key_check),
            )
        )
        if edited is not None:
            return edited
        # Not editable where they are: every row read in full, the named ones' statuses set.
        statuses = {row.rij_id: row.status_activiteit for row in rows}
        loaded = load(loaded.content, loaded.sheet_name)
        rows = [_with_status(row, statuses) for row in loaded.shared_rows]
    if restore:
        write_rows(
            loaded.book,
            loaded.sheet_name,
            [r.row for r in loaded.rows],
            retention_months=retention_months,
        )
        loaded = load(save(loaded.book), loaded.sheet_name)
    return apply_rows(
        loaded.content,
        loaded.sheet_name,
        loaded.by_sheet_row,
        rows,
        key_check=_mark(loaded, key_check),
    )


def _mark(loaded: LoadedWorkbook, key_check: str | None) -> str | None:
    """The row-key mark to set: only a new one."""
    return key_check if key_check and key_check != loaded.key_check else None


def _with_status(row: SharedRow, statuses: dict[str, str]) -> SharedRow:
    status = statuses.get(row.rij_id, row.status_activiteit)
    if status == row.status_activiteit:
        return row
    return row.model_copy(update={"status_activiteit": status})
