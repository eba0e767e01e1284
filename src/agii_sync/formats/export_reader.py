"""Read the AgII export (docs/export.md): CSV or XLSX in, validated records and Problems out.

The format is decided by content, not by extension. A file that cannot be read at all raises
InputError (a path that is missing or a folder: UsageError); anything wrong inside a row is a
Problem. Neither ever quotes a cell value, and
a header cell is only named when it is one of our own column names.

Line numbers count as a person does: the header is line 1. In a CSV a line is a record, so a
quoted cell that spans two physical lines still counts once (as the row does in Excel).
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl

from ..domain.export import (
    EXPORT_COLUMNS,
    REQUIRED_COLUMNS,
    Record,
    carried_record,
    cell_text,
    row_identity,
    validate_row,
)
from ..domain.problems import Problem, ProblemCode
from ..domain.proof import Proofs
from ..domain.rejections import RejectedRow
from ..domain.routing import Scope
from ..errors import InputError, UsageError
from . import limits
from .zipguard import FORMAT_HINT, refuse_zip_bomb

ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
CSV_DELIMITERS = (";", ",")
HEADER_ALIASES = {"e_mail": "email"}  # the workbook's own `E-mail` header
SUGGESTION_CUTOFF = 0.75
HEADER_LIKE_CUTOFF = 0.6  # an unknown header cell this close to a column of ours is shown
# Bounds on what a hostile or broken file can make the reader do (time and memory).
MAX_CELLS_PER_LINE = 1000  # the export has 16 columns; AgII-internal ones come on top
MAX_LINE_CHARACTERS = 4 * 1024 * 1024  # one physical CSV line
MAX_LISTED_POSITIONS = 10
# The UTF-8 form of the accented Latin letters in names (U+00C0-U+017F: é = C3 A9, ł = C5 82):
# in a file that is not valid UTF-8 as a whole, they mean some lines are UTF-8, others not.
UTF8_LATIN_LETTER = re.compile(rb"[\xc3-\xc5][\x80-\xbf]")
NEWLINE = re.compile(r"\r\n?|\n")  # what csv (and open(newline="")) take as a line end

Cells = Sequence[object]


@dataclass
class ExportReadResult:
    records: list[Record] = field(default_factory=list)  # carried ones only with proofs
    problems: list[Problem] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)  # what can be read of them
    unknown_columns: list[str] = field(default_factory=list)  # names only, never copied
    did_you_mean: dict[str, str] = field(default_factory=dict)  # unknown column → known name
    rows_read: int = 0
    skipped_other_nis: int = 0  # rows of municipalities outside the scope: not validated
    proofs: dict[int, bytes] = field(default_factory=dict)  # line → raw digest, faultless rows


@dataclass
class _CheckedRow:
    line: int
    record: Record | None
    problems: list[Problem]
    identity: RejectedRow
    skipped: bool = False
    proof: bytes | None = None  # of the raw cells, when proofs are asked for

    @property
    def dossier(self) -> str | None:
        return self.identity.dossier


def read_export(
    path: Path, scope: Scope | None = None, proofs: Proofs | None = None
) -> ExportReadResult:
    """Read and validate the export. With ``scope`` (the configured municipalities), a row
    with a valid NIS code and a postcode outside it is skipped and counted, not validated:
    another municipality's data problems are not this run's. With ``proofs``, a row whose
    raw digest is known is carried, not validated (domain/proof.py), and the digest of every
    row without a problem is in ``proofs`` of the result."""
    data = _read_bytes(path)
    is_csv = not data.startswith(ZIP_MAGIC)
    return _check_rows(path, _rows(path, data), is_csv=is_csv, scope=scope, proofs=proofs)


def read_table(path: Path) -> list[tuple[int, Cells]]:
    """Any CSV/XLSX table as (line, cells), header first: the format, encoding and delimiter
    rules of the export, without its columns (used for the ``status-update --from`` file)."""
    return list(_rows(path, _read_bytes(path)))


def _rows(path: Path, data: bytes) -> Iterator[tuple[int, Cells]]:
    """The rows one by one: an export of 50,000 people is never held as cells all at once."""
    if data.startswith(ZIP_MAGIC):
        return _xlsx_rows(path, data)
    return _csv_rows(path, data)


# --- bytes → rows of cells, numbered as a person counts (header = 1) ---


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found", hint="check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: a folder, not a file", hint="give the file itself") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    if not data.strip():
        raise InputError(f"{path}: the file is empty", hint=FORMAT_HINT)
    if data.startswith(OLE2_MAGIC):
        raise InputError(f"{path}: an old binary .xls workbook", hint="save it as .xlsx")
    return data


def _csv_rows(path: Path, data: bytes) -> Iterator[tuple[int, Cells]]:
    text = _decode(path, data)
    end = text.find("\n")
    header_line = text[: end if 0 <= end <= MAX_LINE_CHARACTERS else MAX_LINE_CHARACTERS]
    if "\x00" in header_line:
        raise InputError(f"{path}: not a CSV or XLSX file (binary content)", hint=FORMAT_HINT)
    delimiter = max(CSV_DELIMITERS, key=header_line.count)
    reader = csv.reader(_physical_lines(path, text), delimiter=delimiter)
    line = 0
    try:
        for line, cells in enumerate(reader, start=1):
            _refuse_wide(path, line, cells)
            yield line, cells
    except csv.Error:
        raise InputError(
            f"{path}: line {line + 1} cannot be read as CSV",
            hint="check its quotes; a cell may not be longer than 131,072 characters",
        ) from None


def _physical_lines(path: Path, text: str) -> Iterator[str]:
    """The text's lines with their line ends (as csv wants them), each at most
    MAX_LINE_CHARACTERS long: a broken file cannot make one record hold the whole file."""
    start, number = 0, 0
    while start < len(text):
        number += 1
        found = NEWLINE.search(text, start, start + MAX_LINE_CHARACTERS + 2)
        if found is not None:
            end = found.end()
        elif len(text) - start > MAX_LINE_CHARACTERS:
            raise InputError(
                f"{path}: line {number} is longer than {MAX_LINE_CHARACTERS:,} characters",
                hint="a line of the export holds one person; " + FORMAT_HINT,
            )
        else:
            end = len(text)
        yield text[start:end]
        start = end


def _refuse_long(path: Path, line: int) -> None:
    """Row numbers can jump (``<row r="1000000">``): the rows in between cost work too."""
    if line > limits.MAX_ROWS_PER_SHEET:
        raise InputError(
            f"{path}: the sheet goes on past line {limits.MAX_ROWS_PER_SHEET:,}",
            hint="an export holds one line per person; remove what is below the data",
        )


def _refuse_wide(path: Path, line: int, cells: Cells) -> None:
    width = len(cells)
    while width and cells[width - 1] in (None, ""):
        width -= 1
    if width > MAX_CELLS_PER_LINE:
        raise InputError(
            f"{path}: line {line} has {width:,} cells; at most {MAX_CELLS_PER_LINE:,} are read",
            hint="export only the columns of the protocol (and a few of AgII's own)",
        )


def _decode(path: Path, data: bytes) -> str:
    if data.startswith(UTF16_BOMS):
        raise InputError(f"{path}: UTF-16 text is not supported", hint=FORMAT_HINT)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        not_utf8 = exc.start
    utf8 = UTF8_LATIN_LETTER.search(data)
    if utf8 is not None:  # mojibake in the workbook otherwise ("Zoë" as "ZoÃ«")
        utf8_line, other_line = (data.count(b"\n", 0, at) + 1 for at in (utf8.start(), not_utf8))
        raise InputError(
            f"{path}: mixed encodings: line {utf8_line} is UTF-8, line {other_line} is not",
            hint="export the whole file in one encoding (UTF-8)",
        )
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        pass
    raise InputError(
        f"{path}: not a CSV or XLSX file (neither UTF-8 nor Windows-1252 text)", hint=FORMAT_HINT
    )


def _xlsx_rows(path: Path, data: bytes) -> Iterator[tuple[int, Cells]]:
    refuse_zip_bomb(path, data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl's notes on unsupported extensions
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                sheet = workbook.worksheets[0]
                sheet.reset_dimensions()  # some writers store a wrong sheet size
                for line, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
                    _refuse_long(path, line)
                    _refuse_wide(path, line, cells)
                    yield line, cells
            finally:
                workbook.close()
    except InputError:
        raise
    except Exception as exc:  # untrusted file: any parser failure means "not readable"
        raise InputError(
            f"{path}: not a readable XLSX workbook ({exc.__class__.__name__})", hint=FORMAT_HINT
        ) from None


# --- header ---


def header_key(name: str) -> str:
    """Spaces, '-' and '_' alike, case-insensitive: `Niveau-Nederlands` → `niveau_nederlands`."""
    key = "_".join(name.replace("-", " ").replace("_", " ").split()).casefold()
    return HEADER_ALIASES.get(key, key)


def _map_header(path: Path, header: Cells, result: ExportReadResult) -> list[str | None]:
    """The canonical column at each position (None: empty or unknown header cell)."""
    keys = [header_key(cell_text(cell)) for cell in header]
    if not any(keys):
        raise InputError(f"{path}: no header in line 1", hint=_columns_hint())
    _refuse_data_as_header(path, header, keys)
    _refuse_duplicates(path, keys)
    unknown = [(position, key) for position, key in enumerate(keys, 1) if key not in EXPORT_COLUMNS]
    result.unknown_columns = [_column_name(header, p, key) for p, key in unknown if key]
    _refuse_missing(path, keys, unknown, tab_separated="\t" in cell_text(header[0]))
    for position, key in unknown:
        if suggestion := _closest(key):
            result.did_you_mean[_column_name(header, position, key)] = suggestion
    return [key if key in EXPORT_COLUMNS else None for key in keys]


def _column_name(header: Cells, position: int, key: str) -> str:
    """An unknown header cell as reports show it: its text only when it looks like a column
    name (close to one of ours), else its position. A header cell may hold a name: an export
    saved without its header line, or a value typed over it."""
    if _closest(key, cutoff=HEADER_LIKE_CUTOFF):
        return cell_text(header[position - 1]).strip()
    return f"(column {position})"


def _refuse_data_as_header(path: Path, header: Cells, keys: list[str]) -> None:
    """A first line without any required column whose cells look like values (digits, an
    e-mail address, a date) is a data row: the export lost its header."""
    if any(key in REQUIRED_COLUMNS for key in keys):
        return
    if any(_looks_like_value(cell) for cell in header if cell_text(cell).strip()):
        raise InputError(
            f"{path}: the first line is not a header (it holds values, not column names)",
            hint=_columns_hint(),
        )


def _looks_like_value(cell: object) -> bool:
    """A number, date or text with a digit or '@' in it: column names have none."""
    return not isinstance(cell, str) or any(char.isdigit() or char == "@" for char in cell)


def _refuse_duplicates(path: Path, keys: list[str]) -> None:
    for key, count in Counter(key for key in keys if key).items():
        if count > 1:
            positions = [str(p) for p, k in enumerate(keys, 1) if k == key]
            listed = ", ".join(positions[:MAX_LISTED_POSITIONS])
            if len(positions) > MAX_LISTED_POSITIONS:
                listed += f" and {len(positions) - MAX_LISTED_POSITIONS:,} more"
            what = f"column {key!r}" if key in EXPORT_COLUMNS else "a column"
            raise InputError(
                f"{path}: {what} appears more than once in the header (positions {listed})",
                hint="keep one column per name",
            )


def _refuse_missing(
    path: Path, keys: list[str], unknown: list[tuple[int, str]], *, tab_separated: bool
) -> None:
    missing = [
        column for column in EXPORT_COLUMNS if column in REQUIRED_COLUMNS and column not in keys
    ]
    if not missing:
        return
    suggestions = [
        f"header column {position}: did you mean {suggestion!r}?"
        for position, key in unknown
        if (suggestion := _closest(key, among=missing))
    ]
    if tab_separated:
        suggestions.append("the delimiter must be ';' or ','")
    raise InputError(
        f"{path}: missing required column(s): {', '.join(missing)}",
        hint="; ".join(suggestions) or _columns_hint(),
    )


def _closest(
    key: str, among: Iterable[str] = EXPORT_COLUMNS, *, cutoff: float = SUGGESTION_CUTOFF
) -> str | None:
    matches = difflib.get_close_matches(key, list(among), n=1, cutoff=cutoff)
    return matches[0] if key and matches else None


def _columns_hint() -> str:
    required = [c for c in EXPORT_COLUMNS if c in REQUIRED_COLUMNS]
    return f"line 1 must name the columns; required: {', '.join(required)}"


# --- rows ---


def _check_rows(
    path: Path,
    rows: Iterable[tuple[int, Cells]],
    *,
    is_csv: bool,
    scope: Scope | None = None,
    proofs: Proofs | None = None,
) -> ExportReadResult:
    result = ExportReadResult()
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        raise InputError(f"{path}: the file is empty", hint=FORMAT_HINT)
    header = first[1]
    columns = _map_header(path, header, result)
    unnamed = _UnnamedColumns(header, is_csv=is_csv)
    checked = []
    for line, cells in rows:
        if not _is_empty(cells):
            unnamed.look_at(cells)
            checked.append(_check_row(line, cells, columns, is_csv, scope, proofs))
    result.unknown_columns += unnamed.with_data()
    result.rows_read = len(checked)
    _reject_duplicate_dossiers(checked)
    for row in checked:
        result.problems.extend(row.problems)
        if row.skipped:
            result.skipped_other_nis += 1
        elif row.record is not None:
            result.records.append(row.record)
            if row.proof is not None and not row.problems:
                result.proofs[row.line] = row.proof
        else:
            result.rejected.append(row.identity)
    return result


class _UnnamedColumns:
    """Columns that hold data under an empty header cell (never copied, but named: someone
    may think they are). In a CSV, cells past the header are an ``extra_fields`` problem."""

    def __init__(self, header: Cells, *, is_csv: bool) -> None:
        self.unnamed = [p for p, cell in enumerate(header) if not header_key(cell_text(cell))]
        self.width, self.is_csv = len(header), is_csv
        self.found: set[int] = set()

    def look_at(self, cells: Cells) -> None:
        beyond = range(self.width, len(cells)) if not self.is_csv else range(0)
        for position in (*self.unnamed, *beyond):
            if position < len(cells) and cell_text(cells[position]).strip():
                self.found.add(position)

    def with_data(self) -> list[str]:
        return [f"(column {position + 1}, no header)" for position in sorted(self.found)]


def _check_row(
    line: int,
    cells: Cells,
    columns: list[str | None],
    is_csv: bool,
    scope: Scope | None,
    proofs: Proofs | None = None,
) -> _CheckedRow:
    raw = _raw(cells, columns)
    identity = row_identity(line, raw)
    if scope is not None and scope.is_other_municipality(identity.nis, identity.postcode):
        return _CheckedRow(line, None, [], identity, skipped=True)
    extra = is_csv and any(cell_text(cell).strip() for cell in cells[len(columns) :])
    proof = None
    if proofs is not None:
        proof = proofs.of_raw(tuple(raw.values()))
        known = proof in proofs.known and not extra
        carried = carried_record(identity, raw) if known else None
        if carried is not None:
            return _CheckedRow(line, carried, [], identity, proof=proof)
    record, problems = validate_row(line, raw)
    if extra:
        problems.append(Problem.of(ProblemCode.EXTRA_FIELDS, line=line, column=None))
        record = None
    return _CheckedRow(line, record, problems, identity, proof=proof)


def _raw(cells: Cells, columns: list[str | None]) -> dict[str, object]:
    """A row's cells by column, in EXPORT_COLUMNS order, None where the export has none."""
    raw: dict[str, object] = dict.fromkeys(EXPORT_COLUMNS)
    raw.update((column, cell) for column, cell in zip(columns, cells, strict=False) if column)
    return raw


def read_again(
    path: Path, proofs: Proofs, wanted: dict[int, bytes]
) -> dict[int, dict[str, object]]:
    """The rows of the lines in ``wanted`` (line → raw digest), read from the export again
    for a push that carried them (``CarriedRecord``) and must validate them after all; each
    must still be what was read the first time."""
    rows = _rows(path, _read_bytes(path))
    header = next(rows, (0, ()))[1]
    columns = _map_header(path, header, ExportReadResult())
    found: dict[int, dict[str, object]] = {}
    for line, cells in rows:
        if line in wanted:
            raw = _raw(cells, columns)
            if proofs.of_raw(tuple(raw.values())) == wanted[line]:
                found[line] = raw
    if len(found) != len(wanted):
        raise InputError(f"{path}: the export changed while push read it", hint="run push again")
    return found


def _reject_duplicate_dossiers(rows: list[_CheckedRow]) -> None:
    """The tool cannot know which of two lines with one dossier number is right: neither. A
    skipped line counts too (the person may live in the other municipality), but a number
    found only on skipped lines is another municipality's problem."""
    counts = Counter(row.dossier for row in rows if row.dossier)
    ours = {row.dossier for row in rows if row.dossier and not row.skipped}
    for row in rows:
        if row.dossier in ours and counts[row.dossier] > 1:
            row.problems.append(
                Problem.of(ProblemCode.DUPLICATE_DOSSIER, line=row.line, column="dossiernummer")
            )
            row.record = None


def _is_empty(cells: Cells) -> bool:
    if isinstance(cells, list):  # a CSV line: text only, joined in C
        return not "".join(cells).strip()
    return not any(cell_text(cell).strip() for cell in cells)
