"""Turn run reports into what the user sees: rich tables on a terminal, or one JSON document.

Reports name rows by line number, column and code, and people by their pseudonymous Rij-ID
only; no value of the export ever reaches this module's output except in ``list``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..audit import AnchorCheck, NoteProblem, VerifyResult
from ..domain.access import AccessFinding, AccessReport, Grant
from ..domain.check import Finding
from ..domain.problems import Problem
from ..errors import AgiiError, DataRejected, ExitCode
from ..outcome import SiteOutcome, worst
from ..output import Output, agii_error_doc
from ..runs.access import Incident
from ..runs.doctor import Check
from ..runs.facts import AlreadyPresent, Emptied, Pulled, Pushed, StatusLinesDone

if TYPE_CHECKING:
    from pathlib import Path

    from ..runs.pull import PullReport
    from ..runs.push import ExportSummary, PushReport

MARKS = {"added": "+", "restored": "+", "updated": "*", "status_set": "*"}


def problem_doc(p: Problem) -> dict[str, Any]:
    return {
        "line": p.line,
        "column": p.column,
        "code": str(p.code),
        "severity": str(p.severity),
        "message": p.message,
    }


LISTED_COLUMNS = 20  # unknown export columns named in the text report (--json has all)


def _fields(item: object, names: str) -> dict[str, Any]:
    """``{name: item.name}`` for the space-separated ``names``; tuples become lists."""
    doc = {name: getattr(item, name) for name in names.split()}
    return {k: list(v) if isinstance(v, tuple | list) else v for k, v in doc.items()}


def export_summary_doc(ex: ExportSummary) -> dict[str, Any]:
    return _fields(ex, "rows_read valid rejected skipped_other_nis unknown_columns")


def export_summary(out: Output, ex: ExportSummary) -> None:
    out.line(
        f"{ex.rows_read} rows read, {ex.valid} valid, {ex.rejected} rejected, "
        f"{ex.skipped_other_nis} for municipalities not in the config (skipped)"
    )
    if ex.suppressed:
        out.line(f"{ex.suppressed} row(s) of people on the suppression list (forget): never shared")
    unknown = ex.unknown_columns
    if unknown:
        more = f" and {len(unknown) - LISTED_COLUMNS} more" if len(unknown) > LISTED_COLUMNS else ""
        out.line(
            "columns not in the protocol, never copied: "
            + ", ".join(unknown[:LISTED_COLUMNS])
            + more
        )


def validation(out: Output, ex: ExportSummary) -> ExitCode:
    """``validate``'s report; its exit code."""
    code = ex.exit_code
    if out.json_mode:
        doc = {"command": "validate", "exit_code": int(code), **export_summary_doc(ex)}
        doc |= {"per_site": ex.per_site, "problems": [problem_doc(p) for p in ex.problems]}
        out.document(doc)
        return code
    export_summary(out, ex)
    problems(out, ex.problems)
    return code


def push_report(out: Output, report: PushReport, *, dry_run: bool, show_changes: bool) -> ExitCode:
    """``push``'s report: the export's summary and problems, then the sites; its exit code."""
    ex = report.export
    if out.json_mode:
        summary = export_summary_doc(ex) | {"suppressed": ex.suppressed}
        summary |= {"stopped": True} if ex.stopped else {}
        extra = {
            "exit_code": int(report.exit_code),
            "dry_run": dry_run,
            "strict_blocked": report.blocked_by_strict,
            "export": summary | {"problems": [problem_doc(p) for p in ex.problems]},
        }
        sites(out, "push", report.outcomes, show_changes=True, extra=extra)
        return report.exit_code
    if ex.stopped:
        out.warn("stopped before the export was read to the end")
    else:
        export_summary(out, ex)
    problems(out, ex.problems)
    if report.blocked_by_strict:
        out.warn("--strict: rows were rejected, so nothing was written anywhere")
    if dry_run:
        out.line("dry run: nothing was written", style="bold")
    sites(out, "push", report.outcomes, show_changes=show_changes)
    return report.exit_code


def pull_report(out: Output, report: PullReport, path: Path) -> ExitCode:
    """``pull-status``'s report: the sites, then what was flagged and written; its exit code."""
    code = report.exit_code
    if out.json_mode:
        extra = {
            "out": str(path) if report.written else None,
            "lines": len(report.lines),
            "exit_code": int(code),
        }
        sites(out, "pull-status", report.outcomes, show_changes=False, extra=extra)
        return code
    sites(out, "pull-status", report.outcomes, show_changes=False)
    for o in report.outcomes:
        pulled = o.fact(Pulled)
        if pulled and pulled.unmatched:
            out.warn(f"{o.site}: {pulled.unmatched} row(s) match no export row")
        if pulled and pulled.not_in_list_rows:
            rows = ", ".join(pulled.not_in_list_rows)
            out.warn(f"{o.site}: status outside the list, passed on as empty (not_in_list): {rows}")
    if report.written:
        out.info(f"wrote {len(report.lines)} line(s) to {path}")
    elif not report.pulled_sites:
        out.warn(f"{path} not written: no site left to pull")
    else:
        out.warn(f"{path} not written: a site could not be read; run again")
    return code


def finding_doc(f: Finding) -> dict[str, Any]:
    return {"row": f.row, "column": f.column, "code": f.code, "message": f.message}


def outcome_doc(o: SiteOutcome, *, changes: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "site": o.site,
        "exit_code": int(o.exit_code),
        "written": o.written,
        "created": o.created,
        "etag_before": o.etag_before,
        "etag_after": o.etag_after,
        "counts": o.plan.counts() if o.plan else {},
        "error": None,
        "findings": [finding_doc(f) for f in o.findings],
    }
    if o.warnings:
        doc["warnings"] = list(o.warnings)
    if o.stopped:
        doc["stopped"] = o.stopped  # Ctrl-C/SIGTERM: not_started or abandoned
    doc.update(o.fact_lists())
    if o.plan and changes:
        doc["changes"] = [
            {"row_id": c.row_id, "reason": c.reason, "columns": list(c.columns)}
            | ({"old": c.old, "new": c.new} if c.reason == "status_set" else {})
            for c in o.plan.changes
        ]
    if o.error is not None:
        doc["error"] = agii_error_doc(o.error)
        if isinstance(o.error, DataRejected) and o.error.problems:
            doc["error"]["problems"] = [problem_doc(p) for p in o.error.problems]
    return doc


def problems_of(error: AgiiError | None) -> list[Problem]:
    """The input lines an error rejects (``DataRejected``), else none."""
    return list(error.problems) if isinstance(error, DataRejected) else []


def sites(
    out: Output,
    command: str,
    items: list[SiteOutcome],
    *,
    show_changes: bool,
    extra: dict[str, Any] | None = None,
) -> ExitCode:
    """The per-site report of a command (one JSON document with --json); returns the worst
    exit code of the sites."""
    code = worst(items)
    if out.json_mode:
        doc = {"command": command, "exit_code": int(code), **(extra or {})}
        doc["sites"] = [outcome_doc(o) for o in items]
        out.document(doc)
        return code
    for o in items:
        for warning in o.warnings:
            out.warn(f"{o.site}: {warning}")
    if out.quiet:  # -q: only what went wrong, so a cron mail means something
        items = [o for o in items if o.exit_code != ExitCode.OK]
        if not items:
            return code
    outcomes(out, items, show_changes=show_changes)
    for o in items:
        findings(out, o.site, o.findings)
    return code


def problems(out: Output, items: Iterable[Problem], title: str = "Rejected rows") -> None:
    items = list(items)
    if not items:
        return
    out.table(
        title,
        ("line", "column", "code", "severity", "message"),
        ((p.line, p.column, p.code, p.severity, p.message) for p in items),
    )


def findings(out: Output, site: str, items: Iterable[Finding]) -> None:
    items = list(items)
    if items:
        out.table(
            f"{site}: findings",
            ("row", "column", "code", "message"),
            ((f.row, f.column, f.code, f.message) for f in items),
        )


def outcomes(out: Output, items: list[SiteOutcome], *, show_changes: bool) -> None:
    out.table(
        None,
        ("site", "result", "added", "updated", "removed", "unchanged", "note"),
        (_summary_row(o) for o in items),
    )
    for o in items:
        if show_changes and o.plan and o.plan.changes:
            out.line(f"{o.site}:")
            for change in o.plan.changes:
                out.line("  " + change_line(change))
        if o.error is not None:
            problems(out, problems_of(o.error), title=f"{o.site}: problems")
            out.error(o.error, site=o.site)


def status_lines(out: Output, outcome: SiteOutcome, *, dry_run: bool) -> None:
    """How many lines of a status-update changed a status, changed nothing, had a problem."""
    lines = outcome.fact(StatusLinesDone)
    if out.json_mode or lines is None:
        return
    verb = "would change" if dry_run else "changed"
    out.info(
        f"{outcome.site}: {lines.changed} line(s) {verb} a status, "
        f"{lines.unchanged} unchanged, 0 with problems"
    )


def change_line(change: Any) -> str:
    mark = MARKS.get(change.reason, "-")
    text = f"{mark} {change.row_id or '(no Rij-ID)'} {change.reason}"
    if change.columns:
        text += f" ({', '.join(change.columns)})"
    if change.reason == "status_set":
        text += f": {change.old or '(leeg)'} -> {change.new or '(leeg)'}"
    return text


def _summary_row(o: SiteOutcome) -> tuple[object, ...]:
    done = o.error is None or o.written  # a failed site's plan is listed below, not counted
    counts = o.plan.counts() if o.plan and done else {}
    return (
        o.site,
        _result(o),
        counts.get("added", ""),
        counts.get("updated", 0) + counts.get("status_set", 0) if counts else "",
        counts.get("removed", ""),
        counts.get("unchanged", ""),
        _note(o),
    )


def _result(o: SiteOutcome) -> str:
    if o.error is not None:
        return f"error ({int(o.exit_code)})"
    if o.findings:
        return f"{len(o.findings)} finding(s)"
    if o.written:
        return "created" if o.created else "written"
    if o.plan is not None and not o.plan.is_empty:
        return "would change"  # --dry-run: planned, not written
    return "unchanged"


def _note(o: SiteOutcome) -> str:
    notes = []
    if o.stopped:
        notes.append("stopped: " + o.stopped.replace("_", " ") + ", nothing written")
    elif o.error is not None:
        notes.append(type(o.error).__name__)
    if o.fact(AlreadyPresent):
        notes.append("workbook already present, left as is")
    if o.versions_deleted:
        notes.append(f"{o.versions_deleted} old version(s) deleted")
    pushed, pulled = o.fact(Pushed), o.fact(Pulled)
    if pushed and pushed.past_retention_not_added:
        notes.append(f"{pushed.past_retention_not_added} past retention, not shared")
    if pulled:
        notes.append(f"{pulled.pulled} status(es) pulled")
    if pulled and pulled.unmatched:
        notes.append(f"{pulled.unmatched} row(s) match no export row")
    if o.not_carried:
        # Named by cell and Rij-ID only: what was in them may be personal.
        notes.append(f"not carried over (their row was removed): {', '.join(o.not_carried)}")
    not_in_list = [r for f in (pushed, pulled) if f for r in f.not_in_list_rows]
    if not_in_list:
        notes.append(f"status outside the list (not_in_list): {', '.join(not_in_list)}")
    emptied = o.fact(Emptied)
    if emptied and (emptied.sheets_removed or emptied.notes_removed):
        notes.append(
            f"{emptied.sheets_removed} added sheet(s), {emptied.notes_removed} note(s) removed"
        )
    if o.attempts > 1:
        notes.append(f"re-read {o.attempts - 1}x after a concurrent change")
    return "; ".join(notes)


# -- audit verify ---------------------------------------------------------------------------


def audit_verify(
    out: Output,
    code: ExitCode,
    result: VerifyResult,
    notes: list[NoteProblem],
    checks: list[AnchorCheck],
    unread: list[tuple[str, AgiiError]],
) -> None:
    if out.json_mode:
        out.document(
            {
                "command": "audit verify",
                "exit_code": int(code),
                "ok": code == ExitCode.OK,
                "lines": result.lines,
                "first_bad_line": result.first_bad_line,
                "reason": result.reason,
                "notes": [{"file": str(n.path), "problem": n.reason} for n in notes],
                "sites": [_anchor_doc(c) for c in checks]
                + [_unread_doc(site, error) for site, error in unread],
            }
        )
        return
    if result.ok:
        out.line(f"audit trail intact: {result.lines} lines", style="green")
    else:
        out.failure(f"line {result.first_bad_line}: {result.reason}")
    for note in notes:
        out.failure(f"write-ahead note {note.path}: {note.reason}; not recorded")
    for check in checks:
        if check.ok:
            out.line(check.message)
        else:
            out.failure(check.message)
    for site, error in unread:
        out.error(error, site=site)


def _anchor_doc(c: AnchorCheck) -> dict[str, Any]:
    return asdict(c) | {"ok": c.ok}


def _unread_doc(site: str, error: AgiiError) -> dict[str, Any]:
    return _anchor_doc(AnchorCheck(site, "unreadable", error.message))


# -- access-check ---------------------------------------------------------------------------

ACCESS_COLUMNS = ("site", "code", "principal", "type", "roles", "via")


def access_finding_doc(f: AccessFinding) -> dict[str, Any]:
    return _fields(f, "kind code severity title login email type roles via scope message")


def grant_doc(g: Grant) -> dict[str, Any]:
    return _fields(g, "title login email type roles via allowed_by scope")


def access_site_doc(o: SiteOutcome, report: AccessReport | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"site": o.site, "exit_code": int(o.exit_code), "error": None}
    if report is not None:
        doc["counts"] = report.counts()
        doc["findings"] = [access_finding_doc(f) for f in report.findings]
        doc["principals"] = [grant_doc(g) for g in report.grants]
        doc["sharing_links"] = [
            {"kind": kind, "roles": list(roles)} for kind, roles in report.links
        ]
    else:
        doc |= {"counts": {}, "findings": [], "principals": [], "sharing_links": []}
    if o.error is not None:
        doc["error"] = agii_error_doc(o.error)
    return doc


def principal_label(title: str, login: str | None, email: str | None) -> str:
    if email:
        return f"{title} <{email}>"
    if login:
        return f"{title} ({login})"
    return title


def access_summary(out: Output, items: list[tuple[SiteOutcome, AccessReport | None]]) -> None:
    rows = []
    for o, report in items:
        counts = report.counts() if report else {}
        rows.append(
            (
                o.site,
                _access_result(o, report),
                counts.get("critical", ""),
                counts.get("unexpected", ""),
                counts.get("missing", ""),
            )
        )
    out.table(None, ("site", "result", "critical", "unexpected", "missing"), rows)


def _access_result(o: SiteOutcome, report: AccessReport | None) -> str:
    if o.error is not None or report is None:
        return f"error ({int(o.exit_code)})"
    return "ok" if report.passed else f"{len(report.findings)} finding(s)"


def access_findings(out: Output, site: str, items: Iterable[AccessFinding]) -> None:
    items = list(items)
    if items:
        out.table(
            f"{site}: access findings",
            ACCESS_COLUMNS,
            (
                (
                    site,
                    f.code,
                    principal_label(f.title, f.login, f.email),
                    f.type or "",
                    ", ".join(f.roles),
                    f.via or "",
                )
                for f in items
            ),
        )


def access_grants(out: Output, site: str, items: Iterable[Grant]) -> None:
    items = list(items)
    out.table(
        f"{site}: who has access",
        ("principal", "type", "roles", "via", "allowed by"),
        (
            (
                principal_label(g.title, g.login, g.email),
                g.type,
                ", ".join(g.roles),
                g.via or "",
                g.allowed_by or "",
            )
            for g in items
        ),
    )


DOCTOR_MARKS = {"pass": "pass", "fail": "FAIL", "not_allowed": "NOT ALLOWED", "skipped": "skip"}
DOCTOR_STYLES = {"pass": "green", "fail": "red", "not_allowed": "red", "skipped": "yellow"}


def doctor_check_doc(c: Check) -> dict[str, Any]:
    return {
        "check": c.name,
        "outcome": c.outcome,
        "detail": c.detail,
        "grant": c.grant,
        "quirk": c.quirk,
    }


def doctor_site_doc(o: SiteOutcome, checks: list[Check]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "site": o.site,
        "exit_code": int(o.exit_code),
        "checks": [doctor_check_doc(c) for c in checks],
        "error": None,
    }
    if o.error is not None:
        doc["error"] = agii_error_doc(o.error)
    return doc


def doctor_lines(out: Output, o: SiteOutcome, checks: list[Check]) -> None:
    """One line per check: ``pass  site  check  what was proved``."""
    for c in checks:
        text = f"{DOCTOR_MARKS[c.outcome]:<11} {o.site}  {c.name:<16} {c.detail}"
        if c.grant:
            text += f" (ask for: {c.grant})"
        if c.quirk:
            text += f" [emulator quirk: {c.quirk}]"
        out.line(text, style=DOCTOR_STYLES[c.outcome], whole=True, problem=c.outcome != "pass")
    if o.error is not None:
        out.error(o.error, site=o.site)


# -- incidents (docs/protocol.md, art. 6) ------------------------------------------------------


def incident_doc(incidents: list[Incident]) -> dict[str, Any]:
    return {
        "incidents": [
            {
                "detected": incident.detected.isoformat(timespec="seconds"),
                "report_by": incident.report_by.isoformat(timespec="seconds"),
                "codes": list(incident.codes),
                "opened_by": incident.opened_by,  # audit line; None: opened by this run
                "overdue": incident.overdue,
                "notify": [{"who": who, "contact": contact} for who, contact in incident.notify],
            }
            for incident in incidents
        ]
    }


def incident(out: Output, incidents: list[Incident]) -> None:
    """On stderr, also with --json and -q: someone must act within 48 hours."""
    for found in incidents:
        detected = found.detected.isoformat(timespec="minutes")
        report_by = found.report_by.isoformat(timespec="minutes")
        when = (
            f"detected {detected}"
            if found.opened_by is None
            else f"still open since {detected} (audit line {found.opened_by})"
        )
        deadline = (
            f"the 48 hours ran out at {report_by}: report it now"
            if found.overdue
            else f"report it by {report_by} (protocol art. 6: at once, at the latest within "
            "48 hours)"
        )
        out.alert(
            f"INCIDENT {found.site}: critical access ({', '.join(found.codes)}) {when}; stop it "
            f"now and {deadline} to: "
            + "; ".join(_contact(who, contact) for who, contact in found.notify)
        )


def _contact(who: str, contact: str | None) -> str:
    return f"{who} <{contact}>" if contact else f"{who} (not configured: set dpo in the config)"
