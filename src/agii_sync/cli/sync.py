"""AgII's commands: init, validate, push, check, purge."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ExitCode, UsageError
from . import State, app, execute

if TYPE_CHECKING:
    from ..config import DeleteLimit

# The work of each command is imported inside it: `--help` and `--version` (and the start of
# every other command) must not pay for openpyxl, msal, pydantic models... (see
# docs/performance.md).

SiteOption = Annotated[
    list[str] | None,
    typer.Option("--site", help="A municipality id from the config (repeatable). Default: all."),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the plan; write nothing.")]
ExportArg = Annotated[
    Path, typer.Argument(help="AgII export: CSV (UTF-8 or Windows-1252, ; or ,) or XLSX.")
]


@app.command()
def init(ctx: typer.Context, site: SiteOption = None) -> None:
    """Create the empty workbook (sheet, header, drop-down, Toelichting) on each site that has
    none. A workbook that exists is never overwritten."""

    def work(state: State) -> ExitCode:
        from ..runlock import run_lock
        from ..runs.workbooks import init_site
        from . import render

        config = state.config()
        run = state.run(config, "init")
        with run_lock(config.lock_file):
            outcomes = run.for_each_site(config.select(site), lambda m: init_site(run, m))
        return render.sites(state.output, "init", outcomes, show_changes=False)

    execute(ctx, work)


@app.command()
def validate(ctx: typer.Context, export: ExportArg) -> None:
    """Check an export offline and report every rejected row (line, column, code; never its
    values). Writes nothing. Exit 1 if any row is rejected."""

    def work(state: State) -> ExitCode:
        from ..runs.push import prepare_export
        from . import render

        return render.validation(state.output, prepare_export(export, state.config()).summary)

    execute(ctx, work)


@app.command()
def push(
    ctx: typer.Context,
    export: ExportArg,
    site: SiteOption = None,
    dry_run: DryRun = False,
    max_delete: Annotated[
        str | None,
        typer.Option(
            "--max-delete",
            help="Refuse to remove more than this many people per site: a count (40) or a "
            "share (25%). Default: [agii] max_delete.",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Write nothing anywhere if any row is rejected.")
    ] = False,
) -> None:
    """Bring each municipality's workbook in line with the export: add new people, update
    changed ones, keep every 'Status activiteit', remove people no longer in the export for
    that municipality (moved_away) and people past retention. Rows unchanged since the last
    push are not validated again (row proofs beside the audit trail: docs/workbook.md)."""

    def work(state: State) -> ExitCode:
        from ..runlock import run_lock
        from ..runs.push import push as run_push
        from . import render

        limit = _limit(max_delete)
        config = state.config()
        run = state.run(config, "push", dry_run=dry_run)
        with run_lock(config.lock_file), state.output.progress("push"):
            report = run_push(run, export, sites=site, max_delete=limit, strict=strict)
        show_changes = dry_run or state.verbose > 0
        return render.push_report(state.output, report, dry_run=dry_run, show_changes=show_changes)

    execute(ctx, work)


def _limit(text: str | None) -> DeleteLimit | None:
    from ..config import DeleteLimit

    if text is None:
        return None
    try:
        return DeleteLimit.parse(text)
    except ValueError as exc:
        raise UsageError(f"--max-delete {exc}") from None


@app.command()
def check(ctx: typer.Context, site: SiteOption = None) -> None:
    """Validate the workbook on each site: header, unique row keys, code lists, status values,
    formulas, rows past retention, sheets and notes outside the protocol. Exit 1 if anything
    is found. Ends with how to report wrong data to AgII."""

    def work(state: State) -> ExitCode:
        from ..runs.workbooks import check_site, data_error_how_to
        from . import render

        config = state.config()
        run = state.run(config, "check")
        outcomes = run.for_each_site(config.select(site), lambda m: check_site(run, m))
        how = data_error_how_to(config)
        code = render.sites(
            state.output, "check", outcomes, show_changes=False, extra={"data_errors": how}
        )
        state.output.line(how)
        return code

    execute(ctx, work)


@app.command()
def purge(ctx: typer.Context, site: SiteOption = None, dry_run: DryRun = False) -> None:
    """Remove rows past 'Bewaren tot' and people on the suppression list (forget); then delete
    the workbook's older versions on the site so removed data does not live on in version
    history. Once a municipality's protocol has ended, its workbook becomes the empty template
    (added sheets and notes go too), and a site still holding data or reachable by anyone but
    AgII's own accounts is a safety stop (exit 5) that says what remains. Works from the
    workbooks alone (no export)."""

    def work(state: State) -> ExitCode:
        from ..runlock import run_lock
        from ..runs.workbooks import purge_site
        from . import render

        config = state.config()
        run = state.run(config, "purge", dry_run=dry_run)
        with run_lock(config.lock_file), state.output.progress("purge"):
            outcomes = run.for_each_site(config.select(site), lambda m: purge_site(run, m))
        if dry_run and not state.json_mode:
            state.output.line("dry run: nothing was written", style="bold")
        return render.sites(
            state.output,
            "purge",
            outcomes,
            show_changes=dry_run or state.verbose > 0,
            extra={"dry_run": dry_run},
        )

    execute(ctx, work)
