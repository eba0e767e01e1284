"""Bounded work on any input (docs/safety.md): an XLSX export or a workbook is inspected before
any parser sees it, and refused when it would take more work than its size warrants: more
unpacked bytes, rows or cells than ``formats/limits.py`` allows, hidden sheets included.

Proved by counts (bytes unpacked, rows and cells found, parser calls), never by the clock.
"""

from __future__ import annotations

import io
import random
import string
import zipfile
from collections.abc import Callable
from datetime import date
from functools import cache, partial
from pathlib import Path

import openpyxl
import pytest

from agii_sync.config import Municipality
from agii_sync.demo_data import write_synthetic_export
from agii_sync.domain.export import EXPORT_COLUMNS
from agii_sync.errors import InputError, LayoutError
from agii_sync.formats import limits
from agii_sync.formats import workbook as workbook_format
from agii_sync.formats.export_reader import read_export
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL = MUNICIPALITIES[0]["id"]
SHEET_START = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
SHEET_END = b"</sheetData></worksheet>"


def with_hidden_sheet(xlsx: bytes, sheet_xml: bytes) -> bytes:
    """The workbook with one more sheet, hidden, whose XML is ``sheet_xml`` (no dimension)."""
    book = openpyxl.load_workbook(io.BytesIO(xlsx))
    hidden = book.create_sheet("Verborgen")
    hidden.sheet_state = "hidden"
    hidden["A1"] = "x"
    buffer = io.BytesIO()
    book.save(buffer)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target,
    ):
        last = sorted(n for n in source.namelist() if n.startswith("xl/worksheets/sheet"))[-1]
        for info in source.infolist():
            content = sheet_xml if info.filename == last else source.read(info)
            target.writestr(info.filename, content)
    return out.getvalue()


def rows_xml(count: int, cells_per_row: int = 1) -> bytes:
    cells = b"<c/>" * cells_per_row
    return SHEET_START + b"".join(b"<row>" + cells + b"</row>" for _ in range(count)) + SHEET_END


@cache
def just_under_the_old_ratio_limit() -> bytes:
    """60 MiB of text in one cell, packed some 45 times: under the old zip-bomb rule (at most
    100 times for a part over 16 MiB), far over what a file of its size may unpack to now."""
    chance = random.Random(15)
    block = "".join(chance.choices(string.ascii_letters, k=1000))
    text = "".join(
        block + "".join(chance.choices(string.ascii_letters, k=24))
        for _ in range(60 * limits.MiB // 1024)
    )
    cell = f'<row><c t="inlineStr"><is><t>{text}</t></is></c></row>'.encode()
    return SHEET_START + cell + SHEET_END


@pytest.fixture
def export_xlsx(tmp_path: Path) -> bytes:
    path = tmp_path / "export.xlsx"
    rows = [person(n, n % 3) for n in range(1, 40)]
    from agii_sync.demo_data import write_export

    write_export(path, rows, "xlsx")
    return path.read_bytes()


class ParserCalls:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = openpyxl.load_workbook

        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(openpyxl, "load_workbook", counted)


@pytest.mark.parametrize(
    ("sheet", "reason"),
    [  # made when the test runs, not when every worker collects the tests
        (just_under_the_old_ratio_limit, "may unpack to at most"),
        (partial(rows_xml, limits.MAX_ROWS_PER_SHEET + 1), "rows"),
        (partial(rows_xml, limits.MAX_CELLS // 20 + 1, cells_per_row=20), "cells"),
    ],
    ids=["bytes", "rows", "cells"],
)
def test_a_hidden_sheet_bomb_is_refused_before_any_parser_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    export_xlsx: bytes,
    sheet: Callable[[], bytes],
    reason: str,
) -> None:
    bomb = with_hidden_sheet(export_xlsx, sheet())
    assert len(bomb) < 3 * limits.MiB  # a file of a few MB
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(bomb)
    calls = ParserCalls(monkeypatch)
    with pytest.raises(InputError, match=reason):
        read_export(path)
    with pytest.raises(LayoutError, match=reason):
        workbook_format.load(bomb, "Export")
    assert calls.count == 0


def test_the_work_of_an_inspection_is_bounded_by_the_file_size(export_xlsx: bytes) -> None:
    for sheet in (rows_xml(1000), just_under_the_old_ratio_limit()):
        data = with_hidden_sheet(export_xlsx, sheet)
        try:
            counts = limits.inspect_xlsx(data)
        except limits.TooMuchWork:
            continue
        assert counts.unpacked <= limits.unpack_budget(len(data))
        assert counts.cells <= limits.MAX_CELLS


def test_a_part_that_lies_about_its_size_is_cut_at_the_budget(export_xlsx: bytes) -> None:
    big = rows_xml(300_000)
    data = with_hidden_sheet(export_xlsx, big)
    lying = bytearray(data)
    # Declare the sheet tiny in both headers: the stream still stops at the budget.
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = next(i for i in archive.infolist() if len(big) == i.file_size)
    size = len(big).to_bytes(4, "little")
    start = 0
    while (at := lying.find(size, start)) >= 0:
        lying[at : at + 4] = (100).to_bytes(4, "little")
        start = at + 4
    with pytest.raises((limits.TooMuchWork, zipfile.BadZipFile)):
        limits.inspect_xlsx(bytes(lying))
    assert info.file_size == len(big)


def test_rows_far_below_the_data_are_refused_without_walking_to_them(
    tmp_path: Path, export_xlsx: bytes
) -> None:
    header = "".join(f'<c t="inlineStr"><is><t>{column}</t></is></c>' for column in EXPORT_COLUMNS)
    far = SHEET_START + f'<row r="1">{header}</row>'.encode()  # a header: the rows are read
    far += b'<row r="1048576"><c t="inlineStr"><is><t>y</t></is></c></row>' + SHEET_END
    with zipfile.ZipFile(io.BytesIO(export_xlsx)) as source:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                is_sheet = info.filename == "xl/worksheets/sheet1.xml"
                target.writestr(info.filename, far if is_sheet else source.read(info))
    path = tmp_path / "far.xlsx"
    path.write_bytes(out.getvalue())
    with pytest.raises(InputError, match="past line"):
        read_export(path)


@pytest.mark.slow  # 6,000 people written and read as XLSX
def test_a_large_real_export_and_workbook_are_read(tmp_path: Path) -> None:
    """No false alarm: 6,000 people as XLSX, and the workbook of 4,000 of them."""
    municipalities = [
        Municipality.model_validate(
            {
                **{k: m[k] for k in ("id", "name", "nis", "postal_codes")},
                "site": "file:x",
                "protocol_start": date(2024, 1, 1),
                "protocol_end": date(2099, 1, 1),
                "allowed": [f"staff@{m['id']}.be"],
            }
        )
        for m in MUNICIPALITIES
    ]
    path = tmp_path / "export.xlsx"
    write_synthetic_export(path, municipalities, 2000, fmt="xlsx")
    counts = limits.inspect_xlsx(path.read_bytes())
    assert sum(counts.rows_by_part.values()) == 6001
    assert len(read_export(path).records) == 6000


def test_a_bomb_on_a_site_stops_check_as_a_layout_problem(workspace: Workspace) -> None:
    assert workspace.cli("push", str(workspace.export([person(1, 0)]))).exit_code == 0
    site = workspace.site(SPL)
    snapshot = site.read()
    site.write(with_hidden_sheet(snapshot.content, just_under_the_old_ratio_limit()), snapshot.etag)
    result = workspace.cli("check", "--site", SPL)
    assert result.exit_code == 5, result.output
    assert "may unpack to at most" in result.output


def test_a_corrupt_deflate_stream_is_an_unreadable_file_not_an_internal_error(
    tmp_path: Path, export_xlsx: bytes
) -> None:
    with zipfile.ZipFile(io.BytesIO(export_xlsx)) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data = bytearray(export_xlsx)
    data[start + 10 : start + 40] = bytes(range(30))  # inside the compressed sheet
    path = tmp_path / "corrupt.xlsx"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="not a readable XLSX"):
        read_export(path)
    with pytest.raises(LayoutError):
        workbook_format.load(bytes(data), "Export")


def test_sheet_xml_broken_after_its_first_rows_is_a_layout_problem(workspace: Workspace) -> None:
    assert workspace.cli("push", str(workspace.export([person(1, 0)]))).exit_code == 0
    content = workspace.workbook_bytes(SPL)
    assert content is not None
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            part = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                part = part[: len(part) * 2 // 3]  # cut inside the data: read lazily
            target.writestr(info.filename, part)
    with pytest.raises(LayoutError, match="cannot be read"):
        workbook_format.load(out.getvalue(), "Inburgeraars")
