"""``access-check``: who can reach each municipality's site, against its ``allowed`` list
(rules in ``domain/access.py``); and the guard that keeps ``push`` away from a site whose
access is wrong (``[agii] require_access_check``).

A site with any finding (unexpected, critical or missing) exits 1. A critical finding
(anyone with a link, everyone, an unnamed guest) is a possible breach (docs/protocol.md,
art. 6): an ``incident`` audit line with the detection time and the 48-hour deadline, the DPOs
to tell on the screen, exit 5. The push guard stops only on unexpected or critical access
(exit 5): an allowed person without access endangers no data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..audit import audit_event
from ..config import Config, Municipality
from ..domain.access import AccessReport, compare_access
from ..engine import Run
from ..errors import ExitCode, SafetyStop
from ..outcome import Facts, SiteOutcome

log = logging.getLogger("agii_sync.access")

REPORT_WITHIN = timedelta(hours=48)  # the protocol's breach duty (art. 6)


@dataclass(frozen=True)
class Incident:
    site: str
    detected: datetime
    codes: tuple[str, ...]
    notify: tuple[tuple[str, str | None], ...]  # (whose DPO, contact or None if not configured)

    @property
    def report_by(self) -> datetime:
        return self.detected + REPORT_WITHIN


@dataclass(frozen=True)
class AccessChecked(Facts):
    """The site's access report, and the incident a critical finding opened; the audit line
    keeps only the counts."""

    report: AccessReport
    incident: Incident | None = None

    def counts(self) -> dict[str, int]:
        return dict(self.report.counts()) | {"principals": len(self.report.grants)}


def dpos(config: Config, m: Municipality) -> tuple[tuple[str, str | None], ...]:
    return ((f"DPO of {m.name}", m.dpo), ("DPO of AgII", config.agii.dpo))


def read_report(run: Run, m: Municipality) -> AccessReport:
    return compare_access(run.site(m).read_access(), m.allowed_principals, m.allowed_levels)


def access_check_site(run: Run, m: Municipality) -> SiteOutcome:
    report = read_report(run, m)
    outcome = SiteOutcome(m.id)
    if not report.passed:
        outcome.exit_code = ExitCode.DATA
    critical = sorted({f.code for f in report.findings if f.kind == "critical"})
    incident = None
    if critical:
        incident = Incident(m.id, datetime.now(UTC), tuple(critical), dpos(run.config, m))
        _record_incident(run, incident)
        outcome.exit_code = ExitCode.SAFETY
    outcome.facts.append(AccessChecked(report, incident))
    return outcome


def _record_incident(run: Run, incident: Incident) -> None:
    """Its own audit line, written at once: the proof of when the clock started."""
    assert run.audit is not None
    counts = {"critical_kinds": len(incident.codes)}
    run.audit.append(
        audit_event(actor=run.actor, command=run.command, site=incident.site, counts=counts)
        | {
            "event": "incident",
            "detected": incident.detected.isoformat(timespec="seconds"),
            "report_by": incident.report_by.isoformat(timespec="seconds"),
            "codes": list(incident.codes),
            "notify": [whose for whose, _ in incident.notify],  # roles, not addresses
        }
    )
    log.warning("access.incident", extra={"fields": {"site": incident.site}})


def incident_of(outcome: SiteOutcome) -> Incident | None:
    checked = outcome.fact(AccessChecked)
    return checked.incident if checked else None


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
