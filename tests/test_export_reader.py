"""Reading the AgII export (docs/export.md): formats, encodings, header matching,
file-level errors, and the promise that no cell value ever reaches a message."""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agii_sync.demo_data import write_export
from agii_sync.domain.export import EXPORT_COLUMNS
from agii_sync.domain.problems import ProblemCode, message_for
from agii_sync.errors import InputError, UsageError
from agii_sync.formats.export_reader import ExportReadResult, header_key, read_export, read_table


def person(n: int, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "dossiernummer": f"A{1000000 + n}",
        "nis_code": "23077",
        "naam": f"Naamx{n:03d}",
        "voornaam": f"Voornaamx{n:03d}",
        "straat": f"Straatx{n:03d}",
        "huisnummer": str(n + 1),
        "bus": "",
        "postcode": "1600",
        "gemeente": "Sint-Pieters-Leeuw",
        "telefoon": "0470 12 34 56",
        "email": f"persoon{n:03d}@example.com",
        "contacttaal": "ARA",
        "niveau_nederlands": "A2",
        "status_mo": "lopend",
        "interesses": "1;6",
        "attest_datum": "",
    }
    row.update(changes)
    return row


def write_csv_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def csv_text(rows: list[dict[str, object]], header: list[str] | None = None) -> str:
    """A ';' CSV; ``header`` (default: the keys) renames the columns by position."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(header or list(rows[0]))
    for row in rows:
        writer.writerow([str(value) for value in row.values()])
    return buffer.getvalue()


def all_messages(result: ExportReadResult) -> list[str]:
    return [p.message for p in result.problems]


# --- CSV ---


@pytest.mark.parametrize("delimiter", [";", ","])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_csv_delimiters_and_encodings(tmp_path: Path, delimiter: str, encoding: str) -> None:
    rows = [person(1, naam="Hélène d'Ursel", interesses="1,6"), person(2, gemeente="Leeuw; Sint")]
    path = tmp_path / "export.csv"
    write_export(path, rows, "csv", delimiter=delimiter, encoding=encoding)
    result = read_export(path)
    assert result.problems == []
    assert [r.naam for r in result.records] == ["Hélène d'Ursel", "Naamx002"]
    assert result.records[0].interesses == (1, 6)
    assert result.records[1].gemeente == "Leeuw; Sint"
    assert result.rows_read == 2


def test_windows_1252_is_the_fallback(tmp_path: Path) -> None:
    text = csv_text([person(1, naam="Müller", straat="Rue de l’Église")])
    result = read_export(write_csv_text(tmp_path / "e.csv", text, "cp1252"))
    assert (result.records[0].naam, result.records[0].straat) == ("Müller", "Rue de l’Église")


@pytest.mark.parametrize(
    "spelling",
    [
        "niveau_nederlands",
        "Niveau Nederlands",
        "niveau-nederlands",
        "NIVEAU_NEDERLANDS",
        " Niveau  Nederlands ",
    ],
)
def test_header_names_match_loosely(tmp_path: Path, spelling: str) -> None:
    row = person(1, niveau_nederlands="B1/2")
    header = [spelling if c == "niveau_nederlands" else c.upper() for c in row]
    result = read_export(write_csv_text(tmp_path / "e.csv", csv_text([row], header=header)))
    assert result.records[0].niveau_nederlands == "B1"


def test_header_key() -> None:
    assert header_key("Status-MO") == header_key("status mo") == "status_mo"
    assert header_key("E-mail") == "email"


def test_format_is_decided_by_content(tmp_path: Path) -> None:
    write_export(tmp_path / "really.xlsx", [person(1)], "xlsx")
    (tmp_path / "really.xlsx").rename(tmp_path / "named.csv")
    write_export(tmp_path / "named.xlsx", [person(2)], "csv")
    assert read_export(tmp_path / "named.csv").records[0].line == 2
    assert read_export(tmp_path / "named.xlsx").records[0].naam == "Naamx002"


def test_empty_lines_are_skipped_and_lines_counted_as_a_person_does(tmp_path: Path) -> None:
    text = csv_text([person(1), person(2)])
    head, first, second = text.strip().split("\r\n")
    text = "\r\n".join([head, first, "", ";;;", second.replace("ARA", "???")]) + "\r\n"
    result = read_export(write_csv_text(tmp_path / "e.csv", text))
    assert result.rows_read == 2
    assert [r.line for r in result.records] == [2]
    assert [(p.line, p.column, p.code) for p in result.problems] == [
        (5, "contacttaal", ProblemCode.UNKNOWN_LANGUAGE)
    ]


def test_unknown_columns_are_named_when_header_like_and_never_copied(tmp_path: Path) -> None:
    """Only a header cell close to one of our column names is shown; any other by position."""
    rows = [person(1, rijksregisternummer="85.07.30-033.61", opmerking_intern="geheimx")]
    result = read_export(write_csv_text(tmp_path / "e.csv", csv_text(rows)))
    assert result.unknown_columns == ["rijksregisternummer", "(column 18)"]
    dumped = str(result.records[0].model_dump())
    assert "geheimx" not in dumped and "85.07.30" not in dumped


def test_data_under_an_empty_header_is_named_by_position_and_never_copied(
    tmp_path: Path,
) -> None:
    rows = [person(1, opmerking="geheimx"), person(2, opmerking="")]
    header = [*list(rows[0])[:-1], ""]
    result = read_export(write_csv_text(tmp_path / "e.csv", csv_text(rows, header=header)))
    assert result.unknown_columns == [f"(column {len(header)}, no header)"]
    assert len(result.records) == 2 and "geheimx" not in str(result.records[0].model_dump())


def test_misspelled_optional_column_gets_a_suggestion(tmp_path: Path) -> None:
    row = person(1)
    header = ["telefon" if c == "telefoon" else c for c in row]
    result = read_export(write_csv_text(tmp_path / "e.csv", csv_text([row], header=header)))
    assert result.unknown_columns == ["telefon"]
    assert result.did_you_mean == {"telefon": "telefoon"}
    assert result.records[0].telefoon == ""


def test_nul_byte_in_a_cell_is_a_row_problem(tmp_path: Path) -> None:
    text = csv_text([person(1, naam="Na\x00am"), person(2)])
    result = read_export(write_csv_text(tmp_path / "e.csv", text))
    assert [(p.line, p.column, p.code) for p in result.problems] == [
        (2, "naam", ProblemCode.CONTROL_CHARACTER)
    ]
    assert [r.line for r in result.records] == [3]


def test_stray_delimiter_is_extra_fields(tmp_path: Path) -> None:
    text = csv_text([person(1)]).rstrip("\r\n") + ";verschoven\r\n"
    result = read_export(write_csv_text(tmp_path / "e.csv", text))
    assert result.records == []
    assert [(p.line, p.code) for p in result.problems] == [(2, ProblemCode.EXTRA_FIELDS)]
    assert identities(result) == [("23077", "A1000001")]


def test_multiline_quoted_cell_counts_as_one_line(tmp_path: Path) -> None:
    text = csv_text([person(1, straat="Kerk\nstraat"), person(2, telefoon="x")])
    result = read_export(write_csv_text(tmp_path / "e.csv", text))
    assert result.records[0].straat == "Kerk straat"
    assert [(p.line, p.code) for p in result.problems] == [(3, ProblemCode.INVALID_PHONE)]


# --- duplicates and rejected identities ---


def test_every_occurrence_of_a_duplicate_dossier_is_rejected(tmp_path: Path) -> None:
    rows = [
        person(1),
        person(2, dossiernummer="a1000001 ", nis_code="12025"),
        person(3),
        person(4, dossiernummer="A1000001", telefoon="x"),
    ]
    result = read_export(write_csv_text(tmp_path / "e.csv", csv_text(rows)))
    assert [r.line for r in result.records] == [4]
    dup = [(p.line, p.column) for p in result.problems if p.code == ProblemCode.DUPLICATE_DOSSIER]
    assert dup == [(2, "dossiernummer"), (3, "dossiernummer"), (5, "dossiernummer")]
    assert identities(result) == [
        ("23077", "A1000001"),
        ("12025", "A1000001"),
        ("23077", "A1000001"),
    ]


def test_rejected_rows_keep_their_identity_when_readable(tmp_path: Path) -> None:
    rows = [
        person(1, email="x@"),
        person(2, nis_code="123", email="x@"),
        person(3, dossiernummer=""),
    ]
    result = read_export(write_csv_text(tmp_path / "e.csv", csv_text(rows)))
    assert result.records == []
    assert identities(result) == [("23077", "A1000001"), (None, "A1000002"), ("23077", None)]
    assert [r.postcode for r in result.rejected] == ["1600"] * 3


def identities(result: ExportReadResult) -> list[tuple[str | None, str | None]]:
    return [(r.nis, r.dossier) for r in result.rejected]


# --- XLSX ---


def xlsx_file(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def test_xlsx_with_date_and_number_cells(tmp_path: Path) -> None:
    row = person(1)
    header = list(row)
    values = [
        dict(row, nis_code=23077, postcode=1600, huisnummer=12, attest_datum=date(2024, 8, 31)),
        dict(row, dossiernummer="A2", attest_datum=datetime(2024, 2, 29, 10, 30)),
        dict(row, dossiernummer="A3", attest_datum=45535, interesses=3, telefoon=470123456),
    ]
    path = xlsx_file(tmp_path / "e.xlsx", header, [[v[c] for c in header] for v in values])
    result = read_export(path)
    assert result.problems == []
    assert [r.attest_datum for r in result.records] == [
        date(2024, 8, 31),
        date(2024, 2, 29),
        date(2024, 8, 31),
    ]
    first, _, third = result.records
    assert (first.nis_code, first.postcode, first.huisnummer) == ("23077", "1600", "12")
    assert (third.interesses, third.telefoon) == ((3,), "+32 470 12 34 56")


def test_xlsx_first_sheet_gaps_and_formula_like_text(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    row = person(1, naam='=HYPERLINK("http://x")')
    sheet.append(list(row))
    for column, value in enumerate(row.values(), start=1):
        sheet.cell(row=4, column=column, value=value).data_type = "s"
    book.create_sheet("Tweede").append(["niets"])
    book.save(tmp_path / "e.xlsx")
    result = read_export(tmp_path / "e.xlsx")
    assert [r.line for r in result.records] == [4]
    assert result.records[0].naam == '=HYPERLINK("http://x")'
    assert [(p.line, p.column, p.code) for p in result.problems] == [
        (4, "naam", ProblemCode.FORMULA_LIKE_TEXT)
    ]


def test_xlsx_extra_cells_beyond_the_header_are_ignored(tmp_path: Path) -> None:
    row = person(1)
    path = xlsx_file(tmp_path / "e.xlsx", list(row), [[*row.values(), None, "notitie"]])
    result = read_export(path)
    assert len(result.records) == 1 and result.problems == []


def test_demo_export_reads_the_same_as_csv_and_xlsx(tmp_path: Path) -> None:
    rows = [person(n, attest_datum=date(2024, 1, n)) for n in range(1, 6)]
    write_export(tmp_path / "e.csv", rows, "csv")
    write_export(tmp_path / "e.xlsx", rows, "xlsx")
    assert read_export(tmp_path / "e.csv").records == read_export(tmp_path / "e.xlsx").records


# --- whole-file errors ---


def input_error(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        read_export(path)
    assert "\n" not in info.value.message
    return info.value


@pytest.mark.parametrize("content", [b"", b"   \r\n", b"\xef\xbb\xbf", b"\n\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    error = input_error(path)
    assert "empty" in error.message or "no header" in error.message


def test_no_header_in_line_one(tmp_path: Path) -> None:
    text = "\r\n" + csv_text([person(1)])
    assert "no header" in input_error(write_csv_text(tmp_path / "e.csv", text)).message


def test_missing_columns_are_named_with_a_suggestion(tmp_path: Path) -> None:
    row = person(1)
    header = ["voornam" if c == "voornaam" else c for c in row]
    del header[header.index("status_mo")]
    row.pop("status_mo")
    error = input_error(write_csv_text(tmp_path / "e.csv", csv_text([row], header=header)))
    assert "voornaam" in error.message and "status_mo" in error.message
    assert error.hint is not None and "did you mean 'voornaam'?" in error.hint
    assert "voornam'" not in error.message + error.hint.replace("'voornaam'", "")


def test_a_data_row_as_header_is_not_echoed(tmp_path: Path) -> None:
    values = person(1)
    text = csv_text([values, person(2)]).split("\r\n", 1)[1]  # the header line is gone
    error = input_error(write_csv_text(tmp_path / "e.csv", text))
    for value in ("A1000001", "Naamx001", "Voornaamx001", "Straatx001", "persoon001"):
        assert value not in error.message + (error.hint or "")


def test_tab_separated_gets_a_delimiter_hint(tmp_path: Path) -> None:
    text = csv_text([person(1)]).replace(";", "\t")
    assert "delimiter" in (input_error(write_csv_text(tmp_path / "e.csv", text)).hint or "")


def test_duplicate_header(tmp_path: Path) -> None:
    row = person(1)
    header = [*row, "Naam"]
    text = csv_text([row], header=header)
    error = input_error(write_csv_text(tmp_path / "e.csv", text))
    assert "'naam'" in error.message and "more than once" in error.message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 50, ".xls"),
        (b"PK\x03\x04" + b"\x00garbage" * 10, "XLSX"),
        (b"\xff\xfed\x00o\x00", "UTF-16"),
        (b"naam;\x81\x8d\x90\n", "neither UTF-8 nor Windows-1252"),
        (b"\x00\x01\x02binary\n", "binary"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    assert expected in input_error(path).message


def test_a_missing_file_or_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    for path, fragment in ((tmp_path / "nope.csv", "not found"), (tmp_path, "a folder")):
        with pytest.raises(UsageError, match=fragment):
            read_export(path)


def test_read_table_returns_raw_rows(tmp_path: Path) -> None:
    path = write_csv_text(
        tmp_path / "s.csv", "Rij-ID,Status activiteit\r\nABCDE-12345,Gecontacteerd\r\n"
    )
    assert read_table(path) == [
        (1, ["Rij-ID", "Status activiteit"]),
        (2, ["ABCDE-12345", "Gecontacteerd"]),
    ]


# --- no values in any message ---


def test_no_value_of_a_rejected_row_appears_in_a_message(tmp_path: Path) -> None:
    bad = [
        person(1, telefoon="0470 99 99 9x", email="persoon001@"),
        person(2, contacttaal="Marsiaans", status_mo="bezigx"),
        person(3, interesses="geen;buddy", attest_datum="31/31/2024"),
        person(4, postcode="16x0", nis_code="2307x", naam="=cmd|x"),
        person(4),
    ]
    result = read_export(write_csv_text(tmp_path / "e.csv", csv_text(bad)))
    assert len(result.problems) >= 8
    messages = " ".join(all_messages(result))
    for row in bad:
        for column, value in row.items():
            if column not in ("nis_code", "postcode", "huisnummer", "gemeente") and value:
                assert str(value) not in messages, column


CELL_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "\x00",
            "\r",
            "\n",
            "\t",
            '"',
            ";",
            ",",
            '=HYPERLINK("http://x","y")',
            "geen;1",
            "0470 12 34 56",
            "23077",
            "1600",
            "A1",
            "\x1b[31m",
            "\ufeff",
            "45535",
            "31/02/2024",
        ]
    ),
)
ROW = st.fixed_dictionaries({column: CELL_TEXT for column in (*EXPORT_COLUMNS, "opmerking")})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=4), delimiter=st.sampled_from([";", ","]))
def test_arbitrary_cells_give_problems_never_crashes_or_values(
    rows: list[dict[str, str]], delimiter: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        write_export(path, rows, "csv", delimiter=delimiter, encoding="utf-8")
        try:
            result = read_export(path)
        except InputError as error:
            messages = [error.message, error.hint or ""]
        else:
            for problem in result.problems:
                assert problem.column in (*EXPORT_COLUMNS, None)
                assert problem.message == message_for(problem.code, problem.column)
            messages = all_messages(result)
    values = {v.strip() for row in rows for v in row.values() if len(v.strip()) >= 4}
    for message in messages:
        assert not any(value in message for value in values if value not in _VOCABULARY)


_VOCABULARY = " ".join(
    [*(message_for(code, c) for code in ProblemCode for c in (*EXPORT_COLUMNS, None))]
)


@settings(max_examples=60, deadline=None)
@given(content=st.binary(max_size=300))
def test_arbitrary_bytes_give_input_error_or_a_result(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz"
        path.write_bytes(content)
        with contextlib.suppress(InputError):
            read_export(path)
