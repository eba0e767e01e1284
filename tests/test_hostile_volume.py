"""Hostile input in volume (docs/reliability.md): 10,000 generated hostile inputs -
exports, workbooks, configs and status files - read in process by the same code the commands
use, and a sample of them run through whole commands (``push``, ``check``, ``status-update``)
with a log file and the audit trail.

Counted, and each must be 0: internal errors (any exception but the tool's own errors, or an
"internal error" line from a command), formula cells written into a workbook, and personal
values of the inputs found in any message, output, log or audit file.

The full run (``-m slow``: 10,000 inputs, docs/reliability.md) takes minutes on a 2-core
machine; the quick run (1 % of it, the same generators) is part of every ``pytest``. Both
report their figures (``fixtures/figures.py``) before they assert.
"""

from __future__ import annotations

import io
import random
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from agii_sync.config import load_config
from agii_sync.demo_data import write_export
from agii_sync.domain.routing import Scope, route
from agii_sync.errors import AgiiError
from agii_sync.formats import workbook as workbook_format
from agii_sync.formats.export_reader import read_export
from agii_sync.formats.status_file import read_status_file
from fixtures.leaks import personal_values
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SEED = 2026
FULL_COUNTS = {"export": 4000, "workbook": 2500, "config": 2000, "status file": 1500}
QUICK_SHARE = 0.01
WHOLE_COMMAND_EVERY = 50  # one input in this many also goes through whole commands
SPL = MUNICIPALITIES[0]["id"]
SHEET = "xl/worksheets/sheet1.xml"
HOSTILE = [
    "=HYPERLINK(\"http://x.example\",\"x\")", "+1+1", "-2", "@SUM(A1)", "=cmd|' /C calc'!A0",
    "[bold red]x[/]", "\x1b[31mx\x1b[0m", "\x00", "\u202e", "\u2028", "\u2029", "\u200b", "\ufeff",
    "\u00a0", "x" * 600, "é" * 40, "\U0001f600", '"', ";", ",", "\n", "\r\n", "\t", "'", "<x/>",
    "${jndi:ldap://x.example/a}", "%s%n", "{0}", "", " ", "0", "99999", "-0", "1e309", "NaN",
]  # fmt: skip


@dataclass
class Tally:
    inputs: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    internal_errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    formula_cells: int = 0
    commands: int = 0

    def read(self, kind: str, label: str, needles: dict[str, str], work: Callable[[], list[str]]):
        """Run one in-process read; what it says (messages) is searched for the needles."""
        self.inputs[kind] += 1
        try:
            said = work()
            self.outcomes[f"{kind}: read"] += 1
        except AgiiError as error:
            said = [error.message, error.hint or ""]
            self.outcomes[f"{kind}: {type(error).__name__}"] += 1
        except Exception as exc:  # noqa: BLE001 - this is what the test counts
            self.internal_errors.append(f"{label}: {type(exc).__name__}: {exc!s:.200}")
            return
        self.search(label, "\n".join(said), needles)

    def search(self, label: str, text: str, needles: dict[str, str]) -> None:
        folded = text.casefold()
        self.leaks += [
            f"{label}: {kind} {n!r}" for n, kind in needles.items() if n.casefold() in folded
        ]


def hostile(rng: random.Random) -> str:
    return rng.choice(HOSTILE) + (rng.choice(HOSTILE) if rng.random() < 0.3 else "")


# --- exports -------------------------------------------------------------------------------


def base_people(rng: random.Random, n0: int) -> list[dict[str, str]]:
    return [
        {**person(n0 + i, rng.randrange(3)), "opmerking_intern": f"Internx{n0 + i:05d}q"}
        for i in range(rng.randint(1, 6))
    ]


def hostile_export(rng: random.Random, folder: Path, index: int) -> tuple[Path, list[dict]]:
    people = base_people(rng, 10 * index + 1)
    for row in people:  # hostile text in a few columns of each person
        for column in rng.sample(sorted(row), rng.randint(0, 4)):
            value = row[column]
            row[column] = rng.choice([hostile(rng), hostile(rng) + value, value + hostile(rng)])
    fmt = "xlsx" if rng.random() < 0.15 else "csv"
    path = folder / f"export-{index}.{fmt}"
    if fmt == "xlsx":  # XML cannot hold control characters; Excel could not write them
        people = [{k: ILLEGAL_CHARACTERS_RE.sub("", v) for k, v in row.items()} for row in people]
        write_export(path, people, "xlsx")
    else:
        write_export(path, people, "csv", delimiter=rng.choice([";", ","]))
    damage_file(rng, path, people)
    return path, people


def damage_file(rng: random.Random, path: Path, people: list[dict[str, str]]) -> None:
    data = bytearray(path.read_bytes())
    roll = rng.random()
    if roll < 0.15:  # bytes flipped
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif roll < 0.25:  # cut short
        del data[rng.randrange(1, len(data)) :]
    elif roll < 0.35 and path.suffix == ".csv":  # the header line lost or typed over
        text = data.decode("utf-8-sig", "replace")
        header, _, rest = text.partition("\n")
        if rng.random() < 0.5:
            data = bytearray(rest.encode())
        else:
            cells = header.split(";" if ";" in header else ",")
            cells[rng.randrange(len(cells))] = people[0]["naam"]
            data = bytearray(((";" if ";" in header else ",").join(cells) + "\n" + rest).encode())
    elif roll < 0.4:  # another encoding
        text = data.decode("utf-8", "replace")
        data = bytearray(text.encode(rng.choice(["utf-16", "cp1252", "latin-1"]), "replace"))
    path.write_bytes(bytes(data))


# --- workbooks -----------------------------------------------------------------------------


def hostile_workbook(rng: random.Random, base: bytes, names: list[str]) -> bytes:
    roll = rng.random()
    if roll < 0.2:
        data = bytearray(base)
        for _ in range(rng.randint(1, 30)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if roll < 0.3:
        return base[: rng.randrange(1, len(base))]
    with zipfile.ZipFile(io.BytesIO(base)) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    sheet = parts[SHEET].decode()
    texts = list(re.finditer(r"<t(?: [^>]*)?>([^<]*)</t>", sheet))
    for _ in range(rng.randint(1, 4)):
        action = rng.random()
        if action < 0.35 and texts:  # a cell's text replaced (a name, markup, a formula prefix)
            found = rng.choice(texts)
            value = rng.choice([hostile(rng), rng.choice(names) + hostile(rng)])
            escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            escaped = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", escaped)
            sheet = sheet[: found.start(1)] + escaped + sheet[found.end(1) :]
            texts = list(re.finditer(r"<t(?: [^>]*)?>([^<]*)</t>", sheet))
        elif action < 0.5:  # a formula typed into a cell
            sheet = re.sub(
                r'<c r="([A-N]\d+)"([^>]*) t="inlineStr"([^>]*)><is><t>[^<]*</t></is></c>',
                lambda m: f'<c r="{m[1]}"{m[2]}{m[3]}><f>HYPERLINK("http://x.example")</f></c>',
                sheet,
                count=1,
            )
        elif action < 0.6:  # rows far below, without a dimension
            sheet = re.sub(r"<dimension [^>]*/>", "", sheet)
            sheet = sheet.replace(
                "</sheetData>", '<row r="900000"><c r="A900000"/></row></sheetData>'
            )
        elif action < 0.7:  # a part removed
            victim = rng.choice(sorted(p for p in parts if p != SHEET))
            parts.pop(victim)
        elif action < 0.8:  # XML cut short
            sheet = sheet[: rng.randrange(len(sheet))]
        elif action < 0.9:  # a cell outside the protocol's columns
            sheet = sheet.replace(
                "</row>", f'<c r="Z2" t="inlineStr"><is><t>{names[0]}</t></is></c></row>', 1
            )
        else:  # an entity bomb
            sheet = sheet.replace(
                "<worksheet",
                '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><worksheet',
                1,
            )
    parts[SHEET] = sheet.encode("utf-8", "replace")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return out.getvalue()


def site_formulas(ws: Workspace) -> dict[str, set[tuple[str, str]]]:
    return {
        m["id"]: formula_coordinates(ws.workbook_bytes(m["id"]))
        for m in MUNICIPALITIES
        if (ws.root / "sites" / m["id"]).exists()
    }


def formula_coordinates(content: bytes | None) -> set[tuple[str, str]]:
    if content is None:
        return set()
    try:
        book = openpyxl.load_workbook(io.BytesIO(content))
    except Exception:  # noqa: BLE001 - a broken workbook holds no formula we wrote
        return set()
    # The cells that exist (openpyxl's own map): iter_rows() would make every empty cell up to
    # a stray row 900,000 - 25 million of them - and the test would be about openpyxl.
    return {
        (sheet.title, cell.coordinate)
        for sheet in book.worksheets
        for cell in sheet._cells.values()
        if cell.data_type == "f"
    }


# --- configs and status files ----------------------------------------------------------------


def hostile_config(rng: random.Random, base: str) -> str:
    lines = base.splitlines()
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        roll = rng.random()
        if roll < 0.3:
            del lines[i]
        elif roll < 0.6 and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            value = rng.choice(
                ['"' + hostile(rng).replace("\\", "").replace('"', "").replace("\n", "") + '"',
                 "[" * rng.randint(1, 3000) + "]" * rng.randint(0, 3000),
                 '"\\u0000"', '"' + "x" * 5000 + '"', "1e999", "-1", "true", "2099-13-45",
                 '"file:' + "d/" * 3000 + '"', '"http://u:p@127.0.0.1/sites/x"', "{a=1}"]
            )  # fmt: skip
            lines[i] = f"{key}= {value}"
        elif roll < 0.8:
            lines.insert(i, rng.choice(["[agii]", "[[municipality]]", "x = 1", "[", "=", '"']))
        else:
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    return "\n".join(lines) + "\n"


def hostile_status_file(
    rng: random.Random, path: Path, row_ids: list[str], names: list[str]
) -> None:
    header = ["Rij-ID", "Status activiteit"]
    if rng.random() < 0.2:
        header[rng.randrange(2)] = rng.choice(names)
    lines = [";".join(header)]
    for _ in range(rng.randint(0, 8)):
        row_id = rng.choice([*row_ids, hostile(rng), rng.choice(names)])
        status = rng.choice(
            ["Activiteit gestart", "", hostile(rng), f"gebeld met {rng.choice(names)}"]
        )
        lines.append(f"{row_id};{status}".replace("\n", " "))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if rng.random() < 0.2:
        data = data[: rng.randrange(len(data) + 1)]
    path.write_bytes(data)


# --- the run -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "share", [QUICK_SHARE, pytest.param(1.0, marks=pytest.mark.slow)], ids=["quick", "full"]
)
def test_ten_thousand_hostile_inputs(
    workspace: Workspace,
    tmp_path: Path,
    share: float,
    figures: Callable[[str, dict[str, Any]], Path],
) -> None:
    counts = {kind: round(count * share) for kind, count in FULL_COUNTS.items()}
    rng = random.Random(SEED)
    tally = Tally()
    workspace.write_config()
    config = load_config(workspace.config_path)
    scope = Scope.of(config.municipalities)
    log = workspace.root / "logs" / "agii-sync.jsonl"
    all_people: list[dict[str, str]] = []
    commanded: list[dict[str, str]] = []  # the people of inputs that went through commands

    def command(needles: dict[str, str], *args: str) -> None:
        result = workspace.cli("--log-file", str(log), "-v", *args)
        tally.commands += 1
        if "internal error" in result.output or result.exit_code not in (0, 1, 2, 3, 5):
            tally.internal_errors.append(f"{args[:2]}: exit {result.exit_code}")
        tally.search(f"output of {args[0]}", result.output, needles)

    folder = tmp_path / "inputs"
    folder.mkdir()
    for index in range(counts["export"]):
        path, people = hostile_export(rng, folder, index)
        all_people += people
        needles = personal_values(people)

        def read(path: Path = path) -> list[str]:
            result = read_export(path, scope)
            routing = route(result.records, config.municipalities)
            problems = [*result.problems, *routing.problems]
            return (
                [p.message for p in problems] + result.unknown_columns + list(result.did_you_mean)
            )

        tally.read("export", path.name, needles, read)
        if index % WHOLE_COMMAND_EVERY == 0:
            before = site_formulas(workspace)
            command(needles, "push", str(path), "--max-delete", "100%")
            commanded += people
            after = site_formulas(workspace)
            tally.formula_cells += sum(len(after[site] - before.get(site, set())) for site in after)
        path.unlink()

    assert (
        workspace.cli(
            "push",
            str(workspace.export([person(n, 0) for n in range(1, 30)])),
            "--max-delete",
            "100%",
        ).exit_code
        == 0
    )
    base = workspace.workbook_bytes(SPL)
    assert base is not None
    names = [row["naam"] for row in all_people[:200] if len(row.get("naam", "")) >= 4] or [
        "Naamx0001q"
    ]
    workbook_needles = personal_values([person(n, 0) for n in range(1, 30)])
    for index in range(counts["workbook"]):
        content = hostile_workbook(rng, base, ["Naamx0003q", "Voornaamx0004q"])
        tally.read(
            "workbook", f"workbook {index}", workbook_needles,
            lambda content=content: [str(len(workbook_format.load(content, "Inburgeraars").rows))],
        )  # fmt: skip
        if index % WHOLE_COMMAND_EVERY == 0:
            site = workspace.site(SPL)
            snapshot = site.read()
            site.write(content, snapshot.etag)
            before = formula_coordinates(content)
            command(workbook_needles, "check", "--site", SPL)
            command(
                workbook_needles,
                "--json",
                "push",
                str(workspace.export([person(n, 0) for n in range(1, 30)])),
                "--site",
                SPL,
            )
            tally.formula_cells += len(formula_coordinates(workspace.workbook_bytes(SPL)) - before)
            repaired = workspace.site(SPL).read()
            workspace.site(SPL).write(base, repaired.etag)

    base_config = workspace.config_path.read_text()
    for index in range(counts["config"]):
        path = tmp_path / f"config-{index}.toml"
        path.write_text(hostile_config(rng, base_config), encoding="utf-8", errors="surrogatepass")
        tally.read("config", path.name, {}, lambda path=path: [str(load_config(path).source)])
        path.unlink()

    row_ids = [r["Rij-ID"] for r in workspace.rows(SPL)]
    for index in range(counts["status file"]):
        path = tmp_path / f"status-{index}.csv"
        hostile_status_file(rng, path, row_ids, names)
        needles = {n: "name" for n in names}
        tally.read(
            "status file", path.name, needles, lambda path=path: [str(len(read_status_file(path)))]
        )
        if index % WHOLE_COMMAND_EVERY == 0:
            command(needles, "--json", "status-update", "--site", SPL, "--from", str(path))
        path.unlink()

    audit = (workspace.root / "var" / "audit.jsonl").read_text(encoding="utf-8")
    logged = log.read_text(encoding="utf-8") if log.exists() else ""
    everyone = personal_values(commanded) | workbook_needles | {n: "name" for n in names}
    tally.search("audit trail", audit, everyone)
    tally.search("log file", logged, everyone)
    total = sum(tally.inputs.values())
    figures(
        f"hostile-inputs-{'full' if share == 1 else 'quick'}",
        {
            "inputs": total,
            "inputs_by_kind": dict(tally.inputs),
            "whole_commands": tally.commands,
            "internal_errors": len(tally.internal_errors),
            "formula_cells_written": tally.formula_cells,
            "personal_data_found": len(tally.leaks),
            "searched": "every message, command output, the log file and the audit trail",
            "outcomes": dict(sorted(tally.outcomes.items())),
            "first_internal_errors": tally.internal_errors[:5],
        },
    )
    assert total >= 10_000 * share
    assert not tally.internal_errors, tally.internal_errors[:20]
    assert tally.formula_cells == 0
    assert not tally.leaks, sorted(set(tally.leaks))[:20]
