"""``init``, ``check`` and ``purge``: commands that work from the workbooks alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..conditional_update import END, PURGE
from ..config import Config, Municipality
from ..domain.access import normalise
from ..domain.check import Finding
from ..domain.plan import Plan, plan_purge
from ..domain.screen import is_sign_language
from ..engine import Run, refuse_over_limit, refuse_unwritable
from ..errors import AgiiError, ExitCode, SafetyStop
from ..outcome import SiteOutcome
from .access import read_report
from .facts import AlreadyPresent, Emptied, Remaining
from .window import ended_text

if TYPE_CHECKING:
    from ..formats import workbook


def init_site(run: Run, m: Municipality) -> SiteOutcome:
    """Create the empty workbook where there is none; never overwrite one."""
    site = run.site(m)
    outcome = SiteOutcome(m.id)
    snapshot = site.read()
    outcome.etag_before = snapshot.etag
    if snapshot.exists:
        outcome.facts.append(AlreadyPresent())
        outcome.etag_after = snapshot.etag
        return outcome
    if not run.dry_run:
        from ..formats import workbook  # openpyxl: imported when a workbook is made

        empty = workbook.create_workbook(
            run.config.workbook.sheet, retention_months=run.config.retention_months(m)
        )
        run.write_anchored(site, outcome, empty, None)
        outcome.created = True
    return outcome


def check_site(run: Run, m: Municipality) -> SiteOutcome:
    outcome, loaded = run.read_only(m)
    if loaded is None:
        outcome.findings.append(
            Finding(None, None, "no_workbook", "the site has no workbook; run `agii-sync init`")
        )
    else:
        outcome.audited_rows = len(loaded.rows)
        outcome.findings.extend(run.findings(loaded))
        outcome.findings.extend(
            Finding(None, None, "calls_out", f"{what}: must not be in a shared workbook")
            for what in loaded.hostile
        )
        outcome.findings.extend(_outside_the_protocol(run, loaded))
        if loaded.drop_down != "stop":
            outcome.findings.append(_drop_down_finding(loaded.drop_down))
        if not loaded.has_toelichting:
            outcome.findings.append(
                Finding(
                    None,
                    None,
                    "toelichting_missing",
                    "the Toelichting sheet is missing; the next push or purge restores it",
                )
            )
        outcome.findings.extend(_missing_rows(run, m, loaded))
    if outcome.findings:
        outcome.exit_code = ExitCode.DATA
    return outcome


def _drop_down_finding(behaviour: str) -> Finding:
    """A status drop-down that lets other text in (docs/protocol.md, art. 1): one made by
    version 0.1.0 only warns."""
    what = "is missing" if behaviour == "missing" else f"does not refuse other text ({behaviour})"
    return Finding(
        None,
        "Status activiteit",
        "status_drop_down",
        f"the status drop-down {what}: free text could be kept there; the next push puts back "
        "one that refuses anything outside the list",
    )


def _outside_the_protocol(run: Run, loaded: workbook.LoadedWorkbook) -> list[Finding]:
    """Sheets and notes a municipality added, and contact languages that reveal a special
    category (docs/protocol.md, art. 1 and 3): counted and placed, never quoted."""
    from ..formats.extras import extras

    found = []
    added = extras(loaded.content, loaded.sheetnames, loaded.sheet_name)
    if added.sheets:
        found.append(
            Finding(
                None,
                None,
                "extra_sheet",
                f"{added.sheets} sheet(s) outside the protocol: only the data sheet and the "
                "Toelichting belong here; move their content out and delete them",
            )
        )
    if added.notes:
        found.append(
            Finding(
                None,
                None,
                "notes",
                f"{added.notes} note(s) (comments) outside the protocol: nothing but "
                "'Status activiteit' may be written; delete them",
            )
        )
    if not run.config.agii.allow_sign_languages:
        found.extend(
            Finding(
                r.sheet_row,
                "Contacttaal",
                "sign_language",
                "a sign language (special "
                "category) is not shared unless the DPOs agreed; the next push removes it",
            )
            for r in loaded.rows
            if is_sign_language(_language_code(r.row.contacttaal))
        )
    return found


def _language_code(display: str) -> str:
    """``ARA`` from ``Arabisch (ARA)``."""
    return display.rsplit("(", 1)[-1].rstrip(")").strip() if display.endswith(")") else ""


def purge_site(run: Run, m: Municipality) -> SiteOutcome:
    """Remove rows past retention (within max_delete), or everything once the protocol ended
    (``end_site``); then drop the site's older versions of the workbook.

    The older versions are deleted on every purge that finds a workbook, not only when this
    purge removed rows: a push removes people too (moved away, past retention), and a purge
    whose version deletion failed must not leave them behind for good once its rows are gone.
    """
    if m.protocol_ended(run.today):
        return end_site(run, m)
    limit = run.config.agii.max_delete

    def make_plan(loaded: workbook.LoadedWorkbook | None) -> Plan:
        assert loaded is not None  # PURGE: no plan without a workbook
        refuse_unwritable(loaded, run.today)
        plan = plan_purge(
            loaded.shared_rows, today=run.today, protocol_ended=False, drop=run.suppressed(m)
        )
        refuse_over_limit(  # a forgotten person goes whatever the limit
            m,
            plan,
            limit,
            "retention",
            doing="purge",
            hint="check the dates in 'Bewaren tot'; raise max_delete in the config if right",
        )
        return plan

    outcome = run.update_workbook(m, make_plan, PURGE)
    if outcome.error is None:
        run.delete_versions(m, outcome)
    return outcome


def _missing_rows(run: Run, m: Municipality, loaded: workbook.LoadedWorkbook) -> list[Finding]:
    present = {row.rij_id for row in loaded.shared_rows}
    return [
        Finding(
            None,
            "Rij-ID",
            "missing_row",
            f"{row_id} was in the workbook after the last push and is missing now "
            "(deleted by hand?); the next push restores it with its status",
        )
        for row_id in sorted(set(run.memory.read(m.id)) - present)
    ]


def end_site(run: Run, m: Municipality) -> SiteOutcome:
    """The protocol's end (docs/protocol.md, art. 5, 8, 12): the workbook becomes the empty
    template (every row, hand-added ones too, every sheet and note someone added), its older
    versions go, and the site may then be reached by AgII's own accounts only. Whatever still
    remains is a safety stop (exit 5) that says what, so a person finishes the job."""
    from ..formats.extras import Extras, extras

    removed_extras = Extras(0, 0)

    def make_plan(loaded: workbook.LoadedWorkbook | None) -> Plan:
        nonlocal removed_extras
        assert loaded is not None  # END: no plan without a workbook
        removed_extras = extras(loaded.content, loaded.sheetnames, loaded.sheet_name)
        return plan_purge(loaded.shared_rows, today=run.today, protocol_ended=True)

    outcome = run.update_workbook(m, make_plan, END)
    if outcome.error is not None:
        return outcome
    outcome.facts.append(Emptied(removed_extras.sheets, removed_extras.notes))
    run.delete_versions(m, outcome)
    if run.dry_run or outcome.error is not None:
        return outcome
    try:
        remains = what_remains(run, m)
    except AgiiError as error:  # the data is gone; what remains is unknown: look again
        return outcome.fail(error)
    outcome.facts.append(Remaining(remains))
    if any(remains.values()):
        outcome.fail(
            SafetyStop(
                f"{m.id}: {ended_text(m)}, but the site still holds "
                + ", ".join(f"{count} {REMAINS[key]}" for key, count in remains.items() if count),
                hint=f"run `agii-sync access-check --site {m.id}` to see who; remove every "
                'access but AgII\'s own (allowed entries with profile = "agii"), then purge '
                "again",
            )
        )
    return outcome


REMAINS = {
    "rows": "row(s) of personal data",
    "sheets": "sheet(s) or note(s) someone added",
    "principals": "principal(s) other than AgII's own with access",
    "links": "sharing link(s)",
}


def what_remains(run: Run, m: Municipality) -> dict[str, int]:
    """Read the site again after the end: rows, added sheets or notes, and who can reach it
    apart from AgII's own accounts."""
    from ..formats.extras import extras

    _, loaded = run.read_only(m)
    rows = len(loaded.rows) if loaded else 0
    added = extras(loaded.content, loaded.sheetnames, loaded.sheet_name) if loaded else None
    report = read_report(run, m)
    agii = {normalise(p) for p in m.agii_principals}
    others = [
        g for g in report.grants if g.allowed_by is None or normalise(g.allowed_by) not in agii
    ]
    return {
        "rows": rows,
        "sheets": (added.sheets + added.notes) if added else 0,
        "principals": len(others),
        "links": len(report.links),
    }


def data_error_how_to(config: Config) -> str:
    """How a municipality reports wrong data (docs/protocol.md, art. 7)."""
    to = config.agii.data_errors_contact or "your contact person at AgII"
    return (
        f"Wrong data about a person? Report it to {to}, naming the site and the Rij-ID only "
        "(never the data itself); AgII corrects it within two weeks (protocol art. 7). Do not "
        "change AgII's columns yourself: the next push overwrites them."
    )
