"""The municipality's commands and the status back-flow: status-update, list, pull-status."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import DataRejected, ExitCode, UsageError
from . import State, app, execute
from .sync import DryRun, ExportArg, SiteOption

if TYPE_CHECKING:
    from ..config import Config, Municipality
    from ..domain.row import SharedRow
    from ..outcome import SiteOutcome

# Each command imports its work inside it, so that `--help` starts fast (see cli/sync.py).


@app.command("status-update")
def status_update(
    ctx: typer.Context,
    site: Annotated[str, typer.Option("--site", help="The municipality id.")],
    row_id: Annotated[str | None, typer.Argument(help="Rij-ID, e.g. 7K3QZ-M9X2A.")] = None,
    status: Annotated[
        str | None,
        typer.Argument(help="New 'Status activiteit' (case-insensitive; 'leeg' clears it)."),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="CSV/XLSX with columns 'Rij-ID' and 'Status activiteit'."),
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Set 'Status activiteit', the only column the municipality writes. Either one ROW_ID and
    STATUS, or --from FILE (e.g. a `list --format csv|xlsx` with statuses filled in: a blank
    status, or the status the workbook already has, changes nothing). Every line must be
    valid, or nothing is written (exit 1); the report counts lines changed, unchanged and with
    problems. Rij-IDs may be typed in any case, with O for 0, I or L for 1, dash optional.
    Only status cells change; a status someone else changed meanwhile is reported (exit 5),
    not overwritten."""

    def work(state: State) -> ExitCode:
        from ..runlock import run_lock
        from ..runs.status import parse_edits
        from ..runs.status import status_update as run_status_update
        from . import render

        raw = _status_lines(row_id, status, from_file)
        lines = parse_edits(raw, blank_is_no_change=from_file is not None)
        config = state.config()
        m = config.by_id(site)
        run = state.run(config, "status-update", dry_run=dry_run)
        with run_lock(config.lock_file):
            outcomes = run.for_each_site(
                [m],
                lambda mm: run_status_update(
                    run, mm, lines.edits, lines.problems, blank_lines=lines.blank
                ),
            )
        if isinstance(outcomes[0].error, DataRejected):
            raise outcomes[0].error  # the lines are wrong, not the site: one error document
        if dry_run and not state.json_mode:
            state.output.line("dry run: nothing was written", style="bold")
        extra = {"dry_run": dry_run}
        code = render.sites(state.output, "status-update", outcomes, show_changes=True, extra=extra)
        render.status_lines(state.output, outcomes[0], dry_run=dry_run)
        return code

    execute(ctx, work)


def _status_lines(
    row_id: str | None, status: str | None, from_file: Path | None
) -> list[tuple[int | None, str, str]]:
    from ..formats.status_file import read_status_file

    if from_file is not None:
        if row_id is not None or status is not None:
            raise UsageError("give either ROW_ID STATUS or --from FILE, not both")
        return read_status_file(from_file)
    if row_id is None or status is None:
        raise UsageError("give ROW_ID and STATUS, or --from FILE")
    return [(None, row_id, status)]


@app.command("list")
def list_people(
    ctx: typer.Context,
    site: Annotated[str, typer.Option("--site", help="The municipality id.")],
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only this 'Status activiteit' ('leeg': not followed up)."),
    ] = None,
    interest: Annotated[
        list[str] | None,
        typer.Option("--interest", help="Interest code 1-11 or label (repeatable; any of them)."),
    ] = None,
    min_dutch: Annotated[
        str | None, typer.Option("--min-dutch", help="At least this CEFR level (A1..C2).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or xlsx.")] = "table",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the csv, json or xlsx to this file, not to stdout."),
    ] = None,
) -> None:
    """Show the people on a site, filtered, to match them with activities. The read is
    recorded in the audit trail (who, when, how many rows). A csv or xlsx list, with statuses
    filled in, is what `status-update --from` takes back (blank statuses change nothing)."""

    def work(state: State) -> ExitCode:
        from ..outcome import worst
        from ..runs.listing import ListFilter, list_site, people_file

        if fmt not in LIST_FORMATS:
            raise UsageError("--format must be table, csv, json or xlsx")
        _refuse_xlsx_to_screen(state, fmt, out)
        keep = ListFilter.parse(status, interest or [], min_dutch)
        config = state.config()
        run = state.run(config, "list")
        found: list[SharedRow] = []

        def one(m: Municipality) -> SiteOutcome:
            outcome, rows = list_site(run, m, keep)
            found.extend(rows)
            return outcome

        outcomes = run.for_each_site([config.by_id(site)], one)
        if outcomes[0].error is not None:
            raise outcomes[0].error
        if out is not None:
            _write_people(state, config, found, fmt, out)
        elif fmt == "xlsx":
            state.output.binary(people_file(config, found, fmt))
        else:
            _print_people(state, found, "json" if state.json_mode else fmt)
        return worst(outcomes)

    execute(ctx, work)


LIST_FORMATS = ("table", "csv", "json", "xlsx")


def _refuse_xlsx_to_screen(state: State, fmt: str, out: Path | None) -> None:
    if fmt == "xlsx" and out is None and (state.json_mode or sys.stdout.isatty()):
        raise UsageError("--format xlsx needs --out FILE.xlsx (or stdout redirected to a file)")
    if out is not None and fmt == "table":
        raise UsageError("--out takes --format csv, json or xlsx")
    if out is not None and out.is_dir():
        raise UsageError(f"--out {out} is a folder")


def _write_people(state: State, config: Config, rows: list[SharedRow], fmt: str, out: Path) -> None:
    from ..runs.listing import write_people

    write_people(config, rows, fmt, out)
    if state.json_mode:
        state.output.document(
            {"command": "list", "exit_code": 0, "count": len(rows), "format": fmt, "out": str(out)}
        )
    else:
        state.output.info(f"wrote {len(rows)} people to {out}")


def _print_people(state: State, rows: list[SharedRow], fmt: str) -> None:
    from ..domain.row import COLUMNS
    from ..formats.people import people_doc, people_text_csv, people_values

    if fmt == "json":
        state.output.document({"command": "list", "exit_code": 0, **people_doc(rows)})
    elif fmt == "csv":
        state.output.raw(people_text_csv(rows))
    else:
        state.output.table(None, COLUMNS, people_values(rows))
        state.output.info(f"{len(rows)} people")


@app.command("pull-status")
def pull_status(
    ctx: typer.Context,
    export: ExportArg,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="CSV to write (holds dossier numbers); never an existing file or the export.",
        ),
    ],
    site: SiteOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --out file (never the export).")
    ] = False,
) -> None:
    """Collect 'Status activiteit' from every site back to AgII as CSV with dossiernummer,
    nis_code, status_activiteit. Row keys are recomputed from the export; rows on a site that
    match no export row, and rows of people on the suppression list (forget), are counted.
    Only list values flow back: a status cell holding anything else is written as an empty
    status and reported by Rij-ID (not_in_list, exit 1).
    After a site's protocol has ended it runs once more for that site, a last collection
    before purge; a second time that site is refused (exit 5) and the other sites' file is
    still written."""

    def work(state: State) -> ExitCode:
        from ..runs.pull import pull_status as run_pull
        from . import render

        config = state.config()
        run = state.run(config, "pull-status")
        with state.output.progress("pull-status"):
            report = run_pull(run, export, out, site, force=force)
        return render.pull_report(state.output, report, out)

    execute(ctx, work)
