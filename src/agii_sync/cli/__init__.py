"""The ``agii-sync`` command line: thin Typer commands over ``runs/`` (the work) and
``cli/render.py`` (what the user sees). Exit codes: ``errors.ExitCode``."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from .. import __version__, gcpolicy, interrupt
from ..errors import AgiiError, ExitCode

if TYPE_CHECKING:
    from ..config import Config
    from ..engine import Run
    from ..output import Output

# Only typer (and the standard library) is imported up to here: `--version` and `--help` of
# any command must start fast. Each command imports its own work (docs/performance.md).

app = typer.Typer(
    name="agii-sync",
    help=(
        "Keep one Excel workbook per municipality on its SharePoint site in line with the AgII "
        "data-sharing protocol for inburgeraars (participatie- en netwerktraject).\n\n"
        "Exit codes: 0 done; 1 data problems (rows rejected, check/access-check findings); "
        "2 usage or configuration error; 3 temporary failure, safe to run again; "
        "4 authentication; 5 safety stop, a person must look."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

log = logging.getLogger("agii_sync")


@dataclass
class State:
    config_path: Path | None = None
    json_mode: bool = False
    quiet: bool = False
    verbose: int = 0

    @cached_property
    def output(self) -> Output:
        return _output(json_mode=self.json_mode, quiet=self.quiet)

    def config(self) -> Config:
        from ..config import load_config

        return load_config(self.config_path)

    def run(self, config: Config, command: str, **options: Any) -> Run:
        """A command's run; a device-code sign-in shows its code through this run's output."""
        from ..engine import Run
        from ..sites.factory import SiteOpener

        opener = SiteOpener(config, prompt=self.output.sign_in)
        return Run(config, command, self.today(), opener=opener, **options)

    @staticmethod
    def today() -> date:
        return date.today()


def _version(ctx: typer.Context, value: bool) -> None:
    """``--version``; printed at once when ``--json`` was seen before it, else by ``_json``
    (both options are eager, so ``_json`` runs after this one whatever their order)."""
    if value and "json_output" in ctx.params:
        _print_version(json_mode=ctx.params["json_output"])
    ctx.meta["agii_sync.version"] = value


def _json(ctx: typer.Context, value: bool) -> bool:
    if ctx.meta.get("agii_sync.version"):
        _print_version(json_mode=value)
    return value


def _print_version(*, json_mode: bool) -> NoReturn:
    if json_mode:  # --json: one JSON document on stdout, for --version too
        typer.echo(json.dumps({"command": "version", "exit_code": 0, "version": __version__}))
    else:
        typer.echo(f"agii-sync {__version__}")
    raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Config file (TOML). Default: $AGII_SYNC_CONFIG, else ./agii-sync.toml.",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            callback=_json,
            is_eager=True,
            help="Print one JSON document on stdout, nothing else.",
        ),
    ] = False,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Append log events to this file.")
    ] = None,
    log_format: Annotated[
        str, typer.Option("--log-format", help="Log file format: json or text.")
    ] = "json",
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    if log_format not in ("json", "text"):
        _usage_exit("--log-format must be json or text")
    from ..logs import configure_logging
    from ..scratch import use_private_scratch

    use_private_scratch()

    try:
        configure_logging(log_file, "json" if log_format == "json" else "text")
    except OSError as exc:
        _usage_exit(f"--log-file {log_file}: cannot open it for writing ({type(exc).__name__})")
    ctx.obj = State(config, json_output, quiet, verbose)


def _output(**options: Any) -> Output:
    from ..output import Output  # rich: only once something is printed

    return Output(**options)


def _usage_exit(message: str) -> NoReturn:
    _output().failure(message)
    raise typer.Exit(ExitCode.USAGE)


def execute(ctx: typer.Context, work: Callable[[State], Any]) -> NoReturn:
    """Run a command's work; turn every failure into a one-line message and its exit code.
    The log file gets ``run.start`` and ``run.end`` around it, whatever -q/-v say.

    Unexpected exceptions show their type and place only: their message or locals could hold
    personal data."""
    state: State = ctx.obj
    command = " ".join(ctx.command_path.split()[1:]) or str(ctx.info_name)
    started = time.monotonic()
    log.info(
        "run.start",
        extra={
            "fields": {
                "command": command,
                "config_hash": _config_hash(state.config_path),
                "version": __version__,
            }
        },
    )
    try:
        code = _run(state, work)
    except KeyboardInterrupt:  # the signal came as the work ended: it ran and was reported
        state.output.failure(f"stopped by {interrupt.signal_name()}; run it again")
        code = ExitCode.TEMPORARY
    fields = {"command": command, "exit_code": int(code), "duration_ms": _ms_since(started)}
    log.info("run.end", extra={"fields": fields})
    raise typer.Exit(int(code))


def _run(state: State, work: Callable[[State], Any]) -> ExitCode:
    with gcpolicy.fewer_collections():
        code = _run_work(state, work)
    if interrupt.stopped() and code != ExitCode.TEMPORARY:  # the signal came after the sites
        state.output.failure(f"stopped by {interrupt.signal_name()}; run it again")
        code = max(code, ExitCode.TEMPORARY)
    return code


def _run_work(state: State, work: Callable[[State], Any]) -> ExitCode:
    try:
        return ExitCode(int(work(state) or 0))
    except AgiiError as error:
        fields = {"error": type(error).__name__, "reason": error.code}
        log.error("run.failed", extra={"fields": fields | {"exit_code": int(error.exit_code)}})
        _report_failure(state, error)
        return error.exit_code
    except KeyboardInterrupt:  # outside the sites' work (see interrupt.py): nothing begun
        state.output.failure(
            f"stopped by {interrupt.signal_name()} before any site was written; run it again"
        )
        return ExitCode.TEMPORARY
    except Exception as exc:  # noqa: BLE001 - the last guard against a leaking traceback
        log.error("run.crashed", extra={"fields": {"error": type(exc).__name__, "at": _where(exc)}})
        if state.json_mode:
            from ..output import error_doc

            doc = error_doc("InternalError", _crash_line(exc), None)
            state.output.document({"exit_code": int(ExitCode.SAFETY), "error": doc})
        state.output.failure(_crash_line(exc))
        return ExitCode.SAFETY


def _config_hash(explicit: Path | None) -> str | None:
    """sha256 (first 16 hex digits) of the config file's bytes: which config a run used."""
    from ..config import find_config

    try:
        return hashlib.sha256(find_config(explicit).read_bytes()).hexdigest()[:16]
    except (AgiiError, OSError, ValueError):
        return None  # the command itself reports a missing or unreadable config


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _crash_line(exc: BaseException) -> str:
    return (
        f"internal error {type(exc).__name__} at {_where(exc)}; details are withheld because "
        "they could contain personal data. Please report it with this line."
    )


def _report_failure(state: State, error: AgiiError) -> None:
    from ..output import agii_error_doc
    from . import render

    problems = render.problems_of(error)
    if state.json_mode:
        doc = {"exit_code": int(error.exit_code), "error": agii_error_doc(error)}
        if problems:
            doc["problems"] = [render.problem_doc(p) for p in problems]
        state.output.document(doc)
    else:
        render.problems(state.output, problems, title="Problems")
    state.output.error(error)


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"


# Typer turns a KeyboardInterrupt inside the app (options, the callback, a command before its
# work) into this exit code, silently; ``main`` makes it exit 3 with one line.
TYPER_INTERRUPTED = 130


def main() -> None:
    interrupt.install()
    try:
        interrupt.started()
        code = app(standalone_mode=False)
        if code == TYPER_INTERRUPTED and interrupt.stopped():  # Ctrl-C before the work began
            interrupted_exit()
    except typer.TyperException as error:  # a usage error: unknown option, missing argument
        _report_usage_error(error, json_mode="--json" in sys.argv[1:])
        sys.exit(ExitCode.USAGE)
    except (typer.Abort, KeyboardInterrupt):  # Ctrl-C while the options were read
        interrupted_exit()
    except Exception as exc:  # noqa: BLE001 - outside a command's execute(): no traceback either
        _output().failure(_crash_line(exc))
        sys.exit(ExitCode.SAFETY)
    sys.exit(code or 0)


def interrupted_exit() -> NoReturn:
    sys.stderr.write(f"error: stopped by {interrupt.signal_name()}; nothing was done\n")
    sys.exit(ExitCode.TEMPORARY)


def _report_usage_error(error: Any, *, json_mode: bool) -> None:
    """Click's usage line and our own message (never the words typed: see cli/usage.py) on
    stderr; with --json also the error document on stdout."""
    from .usage import safe_usage_message

    message = safe_usage_message(error, sys.argv[1:])
    if json_mode:
        from ..output import error_doc

        doc = error_doc("UsageError", message, "see `agii-sync --help`")
        _output(json_mode=True).document({"exit_code": int(ExitCode.USAGE), "error": doc})
    ctx = getattr(error, "ctx", None)
    if ctx is not None:
        help_hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.\n"
        typer.echo(f"{ctx.get_usage()}\n{help_hint}", err=True)
    typer.echo(f"Error: {message}", err=True)


from . import access, admin, doctor, municipality, rights, sync  # noqa: E402, F401 - registers the commands
