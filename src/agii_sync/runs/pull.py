"""``pull-status``: bring every site's ``Status activiteit`` back to AgII.

Row keys are recomputed from the export, so the sites never hold a dossier number. Rows on a
site that match no export row are counted, not guessed; so are the rows of people on the
suppression list (``forget``), whose status is not passed on either. Only a value of the
list flows back (docs/protocol.md, art. 1): a cell holding anything else is passed on as an
empty status and reported as ``not_in_list`` by its Rij-ID, never repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import audit
from ..atomic import refuse_overwrite, write_atomically
from ..auth import rowkey_secret
from ..config import Municipality
from ..domain.codes import listed_status
from ..domain.routing import Scope
from ..domain.rowkey import key_check, row_key
from ..engine import Run, refuse_another_secret
from ..errors import ExitCode, SafetyStop, TemporaryFailure
from ..formats.csv_out import csv_text
from ..formats.export_reader import read_export
from ..outcome import SiteOutcome, worst
from .facts import Pulled
from .window import ended_text

OUT_COLUMNS = ("dossiernummer", "nis_code", "status_activiteit")
LAST_PULL = "last_pull"  # audit key: the statuses of an ended protocol's site were delivered


@dataclass
class PullReport:
    outcomes: list[SiteOutcome] = field(default_factory=list)
    lines: list[tuple[str, str, str]] = field(default_factory=list)
    written: bool = False
    pulled_sites: int = 0  # sites read (not refused for an earlier last pull)

    @property
    def exit_code(self) -> ExitCode:
        """The sites' worst; 1 when a status outside the list was passed on as empty."""
        pulled = [o.fact(Pulled) for o in self.outcomes]
        flagged = any(p.not_in_list_rows for p in pulled if p is not None)
        return worst(self.outcomes, ExitCode.DATA if flagged else ExitCode.OK)


def pull_status(
    run: Run, export: Path, out: Path, sites: list[str] | None, *, force: bool = False
) -> PullReport:
    refuse_overwrite(out, inputs=[export, run.config.source], force=force)
    result = read_export(export, Scope.of(run.config.municipalities))
    secret = rowkey_secret()
    run.key_check = key_check(secret)
    identities = [(r.nis_code, r.dossiernummer) for r in result.records] + [
        (r.nis, r.dossier) for r in result.rejected if r.nis and r.dossier
    ]
    report = PullReport()
    found: dict[str, list[tuple[str, str, str]]] = {}
    earlier = _last_pulls(run)

    def one_site(m: Municipality) -> SiteOutcome:
        if m.protocol_ended(run.today):
            _refuse_a_second_last_pull(m, earlier)
        keys = {row_key(secret, m.nis, d): d for nis, d in identities if nis == m.nis}
        outcome, lines = _pull_site(run, m, keys)
        found[m.id] = lines
        return outcome

    report.outcomes = run.for_each_site(run.config.select(sites), one_site)
    report.lines = sorted(line for lines in found.values() for line in lines)
    refused = [o for o in report.outcomes if isinstance(o.error, LastPullDone)]
    pulled = [o for o in report.outcomes if o not in refused]
    report.pulled_sites = len(pulled)
    report.written = bool(pulled) and not any(o.error for o in pulled)
    if report.written:  # a file without a failed site's statuses would read as "no status"
        write_csv_atomically(out, report.lines)
        _record_last_pulls(run, report.outcomes)
    return report


# -- after the protocol's end: the last pull, once (docs/protocol.md, art. 5, 8, 12) ----------


def _last_pulls(run: Run) -> list[dict[str, Any]]:
    """The trail's records of a last pull delivered after a protocol's end."""
    return [
        line
        for line in audit.read(run.config.audit_log)
        if line.get("command") == "pull-status" and line.get(LAST_PULL) is True
    ]


class LastPullDone(SafetyStop):
    """The site's statuses were already delivered after its protocol's end. The other sites'
    file is still written: this site's people are no longer shared, their last statuses are in
    the earlier file."""


def _refuse_a_second_last_pull(m: Municipality, earlier: list[dict[str, Any]]) -> None:
    """After the end the statuses are collected a last time; once that pull delivered its file,
    the site is not read again."""
    after_end = [
        line
        for line in earlier
        if line.get("site") == m.id and str(line.get("time", ""))[:10] > m.last_day.isoformat()
    ]
    if after_end:
        first = after_end[0]
        raise LastPullDone(
            f"{m.id}: {ended_text(m)} and its last statuses were already pulled on "
            f"{str(first['time'])[:10]} (audit line {first.get('seq')}); pull-status runs once "
            "after the end",
            hint=f"those statuses are in the file that run wrote; `agii-sync purge --site {m.id}` "
            "is due (leave this site out of pull-status with --site)",
        )


def _record_last_pulls(run: Run, outcomes: list[SiteOutcome]) -> None:
    """One audit line per ended site whose statuses the file just written holds."""
    assert run.audit is not None
    ended = {m.id for m in run.config.municipalities if m.protocol_ended(run.today)}
    for outcome in outcomes:
        pulled = outcome.fact(Pulled)
        if outcome.site in ended and outcome.error is None and pulled is not None:
            event = audit.audit_event(
                actor=run.current_actor(),
                command="pull-status",
                site=outcome.site,
                counts={"pulled": pulled.pulled},
            )
            run.audit.append(event | {LAST_PULL: True, "exit_code": int(ExitCode.OK)})


def _pull_site(
    run: Run, m: Municipality, keys: dict[str, str]
) -> tuple[SiteOutcome, list[tuple[str, str, str]]]:
    outcome, loaded = run.read_only(m, status_only=True)
    refuse_another_secret(m, loaded, run.key_check)
    rows = loaded.shared_rows if loaded else []
    outcome.audited_rows = len(rows)
    lines: list[tuple[str, str, str]] = []
    unmatched, not_in_list, suppressed = 0, [], 0
    withheld = run.suppressed(m)  # forgotten: nothing of them flows anywhere any more
    for row in rows:
        if row.rij_id in withheld:
            suppressed += 1
            continue
        dossier = keys.get(row.rij_id)
        if dossier is None:
            unmatched += 1
            continue
        status = listed_status(row.status_activiteit) or ""
        if row.status_activiteit and not status:
            not_in_list.append(row.rij_id)
        lines.append((dossier, m.nis, status))
    outcome.facts.append(Pulled(len(lines), unmatched, not_in_list, suppressed))
    return outcome, lines


def write_csv_atomically(path: Path, lines: list[tuple[str, str, str]]) -> None:
    """The file holds dossier numbers: written whole or not at all, readable by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomically(path, csv_text(OUT_COLUMNS, lines, newline="\r\n").encode("utf-8"))
    except PermissionError:  # Windows: open in Excel or another program
        raise TemporaryFailure(
            f"--out {path}: the file is in use by another program",
            hint="close it there and run again",
        ) from None
