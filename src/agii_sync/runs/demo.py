"""``demo``: a complete cycle with no network and no credentials.

The bundled SharePoint emulator runs in-process on 127.0.0.1; three municipalities get a
synthetic export (Faker ``nl_BE``); then init → push → status-update → pull-status → the
protocol with one municipality ends → purge. Everything goes through the SharePoint backend and
the real client library, exactly as a run against SharePoint Online would.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from ..config import Config, load_config
from ..demo_data import write_synthetic_export
from ..emulator.server import Emulator
from ..engine import Run
from ..errors import ExitCode, UsageError
from ..outcome import SiteOutcome, worst
from .pull import pull_status
from .push import push
from .status import StatusEdit, status_update
from .workbooks import init_site, purge_site

PEOPLE_PER_SITE = 25
DEMO_MUNICIPALITIES = (
    ("sint-pieters-leeuw", "Sint-Pieters-Leeuw", "23077", ["1600", "1601", "1602"]),
    ("mechelen", "Mechelen", "12025", ["2800", "2801", "2811", "2812"]),
    ("genk", "Genk", "71016", ["3600"]),
)


@dataclass
class Step:
    name: str
    outcomes: list[SiteOutcome]
    note: str = ""


@dataclass
class DemoReport:
    folder: Path
    kept: bool
    steps: list[Step] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        # Rejected demo rows (exit 1) are part of the show; anything worse is a failure.
        worst_code = max((worst(s.outcomes) for s in self.steps), default=ExitCode.OK)
        return worst_code if worst_code > ExitCode.DATA else ExitCode.OK


def run_demo(keep: Path | None, today: date, on_step: Callable[[Step], None]) -> DemoReport:
    with _folder(keep) as folder, Emulator(folder / "emulator") as emulator, _demo_secret():
        report = DemoReport(folder, kept=keep is not None)
        config = _write_config(folder, emulator.base_url, protocol_end=date(today.year + 2, 12, 31))
        export = folder / "export.csv"
        write_synthetic_export(export, config.municipalities, PEOPLE_PER_SITE, seed=7)

        def step(name: str, outcomes: list[SiteOutcome], note: str = "") -> None:
            report.steps.append(Step(name, outcomes, note))
            on_step(report.steps[-1])

        for site_id, *_ in DEMO_MUNICIPALITIES:
            _grant(folder, site_id, municipal=True)
        run = Run(config, "init", today)
        step("init", run.for_each_site(config.municipalities, lambda m: init_site(run, m)))
        pushed = push(Run(config, "push", today), export, sites=None)
        step("push", pushed.outcomes, f"{len(pushed.export.problems)} export problem(s) reported")
        _status_step(config, today, step)
        out = folder / "status-terug.csv"
        pulled = pull_status(Run(config, "pull-status", today), export, out, None)
        step("pull-status", pulled.outcomes, f"{len(pulled.lines)} line(s) in {out.name}")
        ended = _write_config(
            folder,
            emulator.base_url,
            protocol_end=date(today.year + 2, 12, 31),
            ended={"genk": today - timedelta(days=1)},
        )
        _grant(folder, "genk", municipal=False)  # AgII takes Genk's access away at the end
        run = Run(ended, "purge", today)
        step(
            "purge",
            run.for_each_site(ended.municipalities, lambda m: purge_site(run, m)),
            "the protocol with Genk ended yesterday: its workbook is emptied and only AgII "
            "can still reach the site",
        )
        return report


AGII_ACCOUNT = "beheer@agii.example"


def _grant(folder: Path, site_id: str, *, municipal: bool) -> None:
    """The emulator site's ``_access.json``: AgII's own account, and while the protocol runs
    the municipality's named staff (push checks access first)."""

    def user(email: str) -> dict[str, str]:
        return {
            "type": "user",
            "title": email,
            "login": f"i:0#.f|membership|{email}",
            "email": email,
        }

    assignments = [{"principal": user(AGII_ACCOUNT), "roles": ["Full Control"]}]
    if municipal:
        assignments.append({"principal": user(f"pnt@{site_id}.be"), "roles": ["Contribute"]})
    path = folder / "emulator" / f"pnt-{site_id}" / "_access.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"role_assignments": assignments, "sharing_links": []}), "utf-8")


def _status_step(config: Config, today: date, step: Callable[..., None]) -> None:
    m = config.municipalities[0]
    run = Run(config, "status-update", today)
    _, loaded = run.read_only(m)
    assert loaded is not None
    statuses = ("Gecontacteerd", "Toegeleid naar activiteit", "Activiteit gestart")
    rows = loaded.shared_rows[: len(statuses)]
    edits = [StatusEdit(None, row.rij_id, s) for row, s in zip(rows, statuses, strict=False)]
    outcomes = run.for_each_site([m], lambda mm: status_update(run, mm, edits))
    step("status-update", outcomes, f"{len(edits)} status(es) set by {m.name}")


def _write_config(
    folder: Path, base_url: str, *, protocol_end: date, ended: dict[str, date] | None = None
) -> Config:
    ended = ended or {}
    lines = [
        "[agii]",
        'audit_log = "var/audit.jsonl"',
        "retention_months = 6",
        "",
        "[workbook]",
        'path = "Gedeelde documenten/Participatietraject/inburgeraars.xlsx"',
        'sheet = "Inburgeraars"',
    ]
    for site_id, name, nis, postal_codes in DEMO_MUNICIPALITIES:
        end = ended.get(site_id, protocol_end)
        codes = ", ".join(f'"{c}"' for c in postal_codes)
        lines += [
            "",
            "[[municipality]]",
            f'id = "{site_id}"',
            f'name = "{name}"',
            f'nis = "{nis}"',
            f"postal_codes = [{codes}]",
            f'site = "{base_url}/sites/pnt-{site_id}"',
            "protocol_start = 2024-01-01",
            f"protocol_end = {end.isoformat()}",
            f'allowed = ["pnt@{site_id}.be", {{principal = "{AGII_ACCOUNT}", profile = "agii"}}]',
        ]
    path = folder / "agii-sync.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


@contextmanager
def _folder(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
            raise UsageError(
                f"--keep {keep}: not an empty folder; the demo writes a config, an export and "
                "an audit trail there",
                hint="give a new or empty folder",
            )
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    folder = Path(tempfile.mkdtemp(prefix="agii-sync-demo-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # synthetic data, but leave nothing behind


@contextmanager
def _demo_secret() -> Iterator[None]:
    """A throw-away row-key secret when none is set: the demo needs no credentials."""
    if os.environ.get("AGII_SYNC_ROWKEY_SECRET"):
        yield
        return
    os.environ["AGII_SYNC_ROWKEY_SECRET"] = secrets.token_hex(32)
    try:
        yield
    finally:
        del os.environ["AGII_SYNC_ROWKEY_SECRET"]
