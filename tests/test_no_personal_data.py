"""No personal data outside the workbook (docs/export.md, docs/audit.md, docs/safety.md).

A full run over a synthetic export, with the unhappy paths a real year brings (rejected rows,
a hand-typed status that names the person, --strict, max_delete, a protocol that ended), a
verbose log file, JSON and text output. Then every name, first name, street, e-mail, phone
number and dossier number of the export is looked for in the log files, the audit trail,
stdout and stderr of every command but ``list``, and every file beside the workbooks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
import time_machine

from agii_sync.config import load_config
from agii_sync.demo_data import write_synthetic_export
from fixtures.leaks import assert_no_personal_data, personal_values
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL, MECHELEN, GENK = (m["id"] for m in MUNICIPALITIES)
START = date(2025, 3, 3)
LATER = date(2025, 11, 20)  # every attest of the export is then past its 6 months

pytestmark = pytest.mark.parametrize("site_kind", ["file", "emulator"], indirect=True)


@contextmanager
def on(day: date) -> Iterator[None]:
    with time_machine.travel(datetime.combine(day, time(12)), tick=False):
        yield


class Recorder:
    """Runs CLI commands with a verbose log file and keeps what each one printed."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.outputs: dict[str, str] = {}
        self.json_log = ws.root / "logs" / "agii-sync.jsonl"
        self.text_log = ws.root / "logs" / "agii-sync.log"

    def __call__(self, *args: str, codes: tuple[int, ...] = (0,), log: str = "json") -> Any:
        path = self.json_log if log == "json" else self.text_log
        result = self.ws.cli("--log-file", str(path), "--log-format", log, "-v", *args)
        assert result.exit_code in codes, (args, result.exit_code, result.output)
        if "list" not in args:  # the one command whose job is to show the data
            label = " ".join(args)
            self.outputs[f"stdout of {label}"] = result.stdout
            self.outputs[f"stderr of {label}"] = result.stderr
        return result


def files_beside_the_workbooks(root: Path, skip: set[Path]) -> dict[str, str]:
    """Every file the runs left under the test folder: logs, audit trail, locks, config,
    site folders' bookkeeping, the emulator's own files and log; not the workbooks (nor the
    emulator's stored versions of them), the export itself, or pull-status's output."""
    texts = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path in skip or path.suffix in (".xlsx", ".bin"):
            continue
        texts[str(path.relative_to(root))] = path.read_bytes().decode("utf-8", "replace")
    return texts


def test_a_full_run_leaks_no_personal_data(workspace: Workspace) -> None:
    workspace.agii["max_delete"] = "100%"
    config = load_config(workspace.write_config())
    export = workspace.root / "export.csv"
    rows = write_synthetic_export(
        export, config.municipalities, 6, seed=11, today=START, bad_rows=6, other_nis_rows=2
    )
    assert len(personal_values(rows)) > 100
    status_csv = workspace.root / "out" / "status.csv"
    cli = Recorder(workspace)

    with on(START):
        cli("init")
        cli("validate", str(export), codes=(1,))
        cli("--json", "validate", str(export), codes=(1,))
        cli("push", str(export), "--strict", codes=(1,))
        cli("push", str(export), "--dry-run", codes=(1,), log="text")
        cli("push", str(export), codes=(1,))
        cli("--json", "push", str(export), codes=(1,))
        people = workspace.rows(SPL)
        assert people, "the synthetic export put nobody on the first site"
        first = people[0]
        cli("status-update", "--site", SPL, first["Rij-ID"], "Gecontacteerd")
        cli("status-update", "--site", SPL, first["Rij-ID"], "gecontacterd", codes=(1,))
        # A municipality types a note naming the person where only a status belongs.
        note = f"gebeld met {first['Voornaam']} {first['Naam']}, {first['Telefoon']}"
        workspace.set_status_by_hand(SPL, people[-1]["Rij-ID"], note)
        cli("check", codes=(1,))
        cli("--json", "check", codes=(1,), log="text")
        listed = cli("list", "--site", SPL)
        assert first["Naam"] in listed.stdout  # list shows the data: that is its job
        cli("pull-status", str(export), "--out", str(status_csv), codes=(1,))
        cli("--json", "pull-status", str(export), "--out", str(status_csv), "--force", codes=(1,))
        cli("push", str(export), "--max-delete", "0", codes=(1,))  # nothing to remove yet

    workspace.protocol[GENK] = {"start": "2024-01-01", "end": "2025-06-30"}
    with on(LATER):
        cli("push", str(export), "--site", GENK, codes=(5,))
        cli("purge", "--dry-run")
        cli("-v", "--json", "purge", "--dry-run", log="text")
        workspace.agii["max_delete"] = "0"
        cli("purge", "--site", SPL, codes=(5,))
        workspace.agii["max_delete"] = "100%"
        cli("purge", codes=(5,))  # Genk's staff can still reach its site
        workspace.grant_access(GENK, overwrite=True, role_assignments=[], sharing_links=[])
        cli("--json", "purge")
        dossier = next(
            r["dossiernummer"] for r in rows if r["nis_code"] == MUNICIPALITIES[0]["nis"]
        )
        cli("forget", dossier, "--reason", "objection")
        cli("--json", "forget", dossier, "--reason", "erasure")
        cli("push", str(export), "--site", SPL, codes=(1,))
        cli("audit", "person", dossier)
        cli("--json", "audit", "person", dossier)
        cli("audit", "show")
        cli("audit", "verify")

    audit_lines = workspace.audit_lines()
    assert {line["command"] for line in audit_lines} >= {
        "init",
        "push",
        "push --dry-run",
        "check",
        "status-update",
        "list",
        "pull-status",
        "purge",
        "purge --dry-run",
    }
    removed = {r["reason"] for line in audit_lines for r in line["rows"]}
    assert {"added", "retention", "protocol_ended", "status_set"} <= removed
    assert cli.json_log.stat().st_size > 0 and cli.text_log.stat().st_size > 0
    for line in cli.json_log.read_text(encoding="utf-8").splitlines():
        json.loads(line)

    texts = dict(cli.outputs)
    texts |= files_beside_the_workbooks(workspace.root, {export, status_csv})
    assert any("audit.jsonl" in label for label in texts)
    assert any("agii-sync.jsonl" in label for label in texts)
    assert_no_personal_data(texts, rows)


def test_status_update_does_not_echo_a_hand_typed_status(workspace: Workspace) -> None:
    people = [person(n, 0) for n in range(1, 4)]
    assert workspace.cli("push", str(workspace.export(people))).exit_code == 0
    (row_id, name, phone) = next(
        (r["Rij-ID"], r["Naam"], r["Telefoon"]) for r in workspace.rows(SPL)
    )
    workspace.set_status_by_hand(SPL, row_id, f"gebeld met {name}, {phone}")
    cli = Recorder(workspace)
    cli("status-update", "--site", SPL, row_id, "Niet bereikbaar", "--dry-run")
    cli("--json", "status-update", "--site", SPL, row_id, "Niet bereikbaar")
    assert workspace.rows(SPL)[0]["Status activiteit"] == "Niet bereikbaar"
    assert_no_personal_data(cli.outputs, people)


def test_the_leak_check_finds_a_leak(workspace: Workspace) -> None:
    """The helper itself: a value in any of its forms is found, and named by kind."""
    rows = [
        {
            "dossiernummer": "A1234567",
            "naam": "Vermeulenx",
            "voornaam": "Fatimax",
            "straat": "Kerkstraatx",
            "email": "Fatima.V@Example.org",
            "telefoon": "0470/12.34.56",
        }
    ]
    for leak, kind in [
        ("dossier A1234567 rejected", "dossier number"),
        ("name=VERMEULENX", "name"),
        ("fatima.v@example.org", "e-mail"),
        ("tel +32470123456", "phone"),
        ("tel +32 470 12 34 56", "phone"),
        ("Kerkstraatx 12", "street"),
    ]:
        with pytest.raises(AssertionError, match=kind):
            assert_no_personal_data({"out": leak}, rows)
    assert_no_personal_data({"out": "row 3, column 'Naam': empty; Rij-ID 7K3QZ-M9X2A"}, rows)
