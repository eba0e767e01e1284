"""``access-check``: who can reach each municipality's site, against its ``allowed`` list
(rules in ``domain/access.py``); and the guard that keeps ``push`` away from a site whose
access is wrong (``[agii] require_access_check``).

A site with any finding (unexpected, critical or missing) exits 1. The push guard stops only
on unexpected or critical access (exit 5): an allowed person without access endangers no data.
"""

from __future__ import annotations

import logging

from ..config import Municipality
from ..domain.access import AccessReport, compare_access
from ..engine import Run, SiteOutcome
from ..errors import ExitCode, SafetyStop

log = logging.getLogger("agii_sync.access")

REPORT_KEY = "access_report"  # not an int, so the audit line keeps only the counts


def read_report(run: Run, m: Municipality) -> AccessReport:
    return compare_access(run.site(m).read_access(), m.allowed)


def access_check_site(run: Run, m: Municipality) -> SiteOutcome:
    report = read_report(run, m)
    outcome = SiteOutcome(m.id)
    outcome.details.update(report.counts())
    outcome.details["principals"] = len(report.grants)
    outcome.details[REPORT_KEY] = report
    if not report.passed:
        outcome.exit_code = ExitCode.DATA
    return outcome


def report_of(outcome: SiteOutcome) -> AccessReport | None:
    """The report of an ``access_check_site`` outcome; None when the site failed to answer."""
    return outcome.details.get(REPORT_KEY)


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
