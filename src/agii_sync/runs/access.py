"""``access-check``: who can reach each municipality's site, against its ``allowed`` list
(rules in ``domain/access.py``); and the guard that keeps ``push`` away from a site whose
access is wrong (``[agii] require_access_check``).

A site with any finding (unexpected, critical or missing) exits 1. A critical finding
(anyone with a link, everyone, an unnamed guest) is a possible breach (docs/protocol.md,
art. 6): an ``incident`` audit line with the detection time and the 48-hour deadline, the DPOs
to tell on the screen, exit 5. Found again while that incident is open (same site, same kind),
it is the same incident: an ``incident_persists`` line names the line that opened it, and the
deadline stays. The push guard stops only on unexpected or critical access
(exit 5): an allowed person without access endangers no data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import audit
from ..audit import audit_event
from ..config import Config, Municipality
from ..domain.access import AccessReport, compare_access
from ..engine import Run
from ..errors import ExitCode, SafetyStop
from ..outcome import Facts, SiteOutcome

log = logging.getLogger("agii_sync.access")

REPORT_WITHIN = timedelta(hours=48)  # the protocol's breach duty (art. 6)
INCIDENT_EVENT = "incident"  # audit: a new incident, its detection time and deadline
PERSISTS_EVENT = "incident_persists"  # audit: an open incident found again (names its line)


@dataclass(frozen=True)
class Incident:
    site: str
    detected: datetime  # when it was first found: the 48 hours run from here
    codes: tuple[str, ...]
    notify: tuple[tuple[str, str | None], ...]  # (whose DPO, contact or None if not configured)
    seen: datetime | None = None  # this run's finding, when the incident was already open
    opened_by: int | None = None  # the audit line (seq) that opened it; None: opened now

    @property
    def report_by(self) -> datetime:
        return self.detected + REPORT_WITHIN

    @property
    def overdue(self) -> bool:
        return self.seen is not None and self.seen > self.report_by


@dataclass(frozen=True)
class AccessChecked(Facts):
    """The site's access report, and the incidents its critical findings opened or found
    again; the audit line keeps only the counts."""

    report: AccessReport
    incidents: tuple[Incident, ...] = ()

    def counts(self) -> dict[str, int]:
        return dict(self.report.counts()) | {"principals": len(self.report.grants)}


def dpos(config: Config, m: Municipality) -> tuple[tuple[str, str | None], ...]:
    return ((f"DPO of {m.name}", m.dpo), ("DPO of AgII", config.agii.dpo))


def read_report(run: Run, m: Municipality) -> AccessReport:
    return compare_access(run.site(m).read_access(), m.allowed_principals, m.allowed_levels)


def access_check(run: Run, municipalities: list[Municipality]) -> list[SiteOutcome]:
    """``access-check`` of each site; the trail is read once, for the incidents still open."""
    history = audit.read(run.config.audit_log)
    return run.for_each_site(municipalities, lambda m: access_check_site(run, m, history))


def access_check_site(run: Run, m: Municipality, history: list[dict[str, Any]]) -> SiteOutcome:
    report = read_report(run, m)
    outcome = SiteOutcome(m.id)
    if not report.passed:
        outcome.exit_code = ExitCode.DATA
    critical = sorted({f.code for f in report.findings if f.kind == "critical"})
    incidents: list[Incident] = []
    if critical:
        incidents = _incidents(run, m, critical, open_incidents(history, m.id))
        for incident in incidents:
            _record_incident(run, incident)
        outcome.exit_code = ExitCode.SAFETY
    outcome.facts.append(AccessChecked(report, tuple(incidents)))
    return outcome


def _incidents(
    run: Run, m: Municipality, codes: list[str], still_open: dict[str, dict[str, Any]]
) -> list[Incident]:
    """The incidents this finding belongs to: an open incident of the site with the same
    finding kind is found again (its detection time and deadline stay); the other kinds open a
    new one."""
    now = datetime.now(UTC)
    notify = dpos(run.config, m)
    by_opener: dict[int, list[str]] = {}
    for code in codes:
        if code in still_open:
            by_opener.setdefault(int(still_open[code]["seq"]), []).append(code)
    found = [
        Incident(
            m.id,
            datetime.fromisoformat(still_open[kinds[0]]["detected"]),
            tuple(kinds),
            notify,
            seen=now,
            opened_by=seq,
        )
        for seq, kinds in sorted(by_opener.items())
    ]
    new = tuple(code for code in codes if code not in still_open)
    return ([Incident(m.id, now, new, notify)] if new else []) + found


def open_incidents(lines: list[dict[str, Any]], site: str) -> dict[str, dict[str, Any]]:
    """The site's open incidents, by finding kind: the audit line that opened each. An
    incident closes at the first access-check of the site that reads its access and no
    longer finds that kind."""
    opened: dict[str, dict[str, Any]] = {}
    found_now: set[str] = set()
    for line in lines:
        if line.get("site") != site:
            continue
        if line.get("event") in (INCIDENT_EVENT, PERSISTS_EVENT):
            found_now.update(line.get("codes") or [])
            if line.get("event") == INCIDENT_EVENT:
                for code in line.get("codes") or []:
                    opened.setdefault(code, line)
        elif line.get("command") == "access-check" and "event" not in line:
            if "error" not in line and "critical" in (line.get("counts") or {}):
                opened = {code: at for code, at in opened.items() if code in found_now}
            found_now = set()
    return opened


def _record_incident(run: Run, incident: Incident) -> None:
    """Its own audit line, written at once: the proof of when the clock started, or that the
    open incident it names was found again."""
    assert run.audit is not None
    counts = {"critical_kinds": len(incident.codes)}
    again = {"incident": incident.opened_by, "seen": _iso(incident.seen)}
    run.audit.append(
        audit_event(
            actor=run.current_actor(), command=run.command, site=incident.site, counts=counts
        )
        | {
            "event": INCIDENT_EVENT if incident.opened_by is None else PERSISTS_EVENT,
            "detected": _iso(incident.detected),
            "report_by": _iso(incident.report_by),
            "codes": list(incident.codes),
            "notify": [whose for whose, _ in incident.notify],  # roles, not addresses
        }
        | ({} if incident.opened_by is None else again)
    )
    log.warning("access.incident", extra={"fields": {"site": incident.site}})


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def incidents_of(outcome: SiteOutcome) -> list[Incident]:
    checked = outcome.fact(AccessChecked)
    return list(checked.incidents) if checked else []


def report_of(outcome: SiteOutcome) -> AccessReport | None:
    """The report of an ``access_check_site`` outcome; None when the site failed to answer."""
    checked = outcome.fact(AccessChecked)
    return checked.report if checked else None


def require_access(run: Run, m: Municipality) -> None:
    """Refuse (exit 5) to push to a site where someone unexpected can see the workbook."""
    if not run.config.agii.require_access_check:
        return
    report = read_report(run, m)
    counts = report.counts()
    if report.blocks_push:
        raise SafetyStop(
            f"{m.id}: access check failed ({counts['critical']} critical, "
            f"{counts['unexpected']} unexpected, {counts['missing']} missing); "
            "nothing was pushed to this site",
            hint=f"run `agii-sync access-check --site {m.id}` to see who; fix the site's "
            "access (or `allowed` in the config), then push again",
        )
    if counts["missing"]:
        log.warning("access.missing", extra={"fields": {"site": m.id, **counts}})
