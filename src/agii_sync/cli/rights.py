"""The rights of the people in the data: ``forget`` and ``audit person`` (docs/protocol.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ExitCode, UsageError
from . import State, app, execute
from .admin import audit_app

if TYPE_CHECKING:
    from ..suppression import Request

DossierArg = Annotated[
    str, typer.Argument(help="The person's dossier number (never shown or stored as such).")
]


@app.command()
def forget(
    ctx: typer.Context,
    dossier: DossierArg,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="objection (GDPR art. 21) or erasure (art. 17).", show_default=False
        ),
    ],
) -> None:
    """Stop sharing one person, on their objection or erasure request. The person goes on
    AgII's suppression list (a keyed hash, never the dossier number); the next push or purge
    removes them from every site and deletes the old versions of those workbooks, and no push
    shares them again. The request is recorded in the audit trail."""

    def work(state: State) -> ExitCode:
        from ..runlock import run_lock
        from ..runs.rights import forget as run_forget

        if reason not in ("objection", "erasure"):
            raise UsageError("--reason must be objection or erasure")
        config = state.config()
        with run_lock(config.lock_file):
            request: Request = "objection" if reason == "objection" else "erasure"
            report = run_forget(config, dossier, request, state.today())
        if state.json_mode:
            state.output.document(
                {
                    "command": "forget",
                    "exit_code": 0,
                    "newly_listed": report.newly_listed,
                    "sites": report.sites,
                }
            )
        else:
            state.output.line(
                ("on the suppression list" if report.newly_listed else "already on the list")
                + f"; the next push or purge removes this person from every site ({report.sites})"
                " and from the old versions; no push shares them again"
            )
        return ExitCode.OK

    execute(ctx, work)


@audit_app.command("person")
def audit_person(ctx: typer.Context, dossier: DossierArg) -> None:
    """Every audit event about one person (for an access request, GDPR art. 15): by their
    Rij-ID on each municipality's site, and their forget requests. The dossier number is not
    shown; the request itself is recorded in the audit trail."""

    def work(state: State) -> ExitCode:
        from ..runs.rights import person_events

        config = state.config()
        events = person_events(config, dossier)
        if state.json_mode:
            state.output.document({"command": "audit person", "exit_code": 0, "events": events})
            return ExitCode.OK
        state.output.table(
            None,
            ("time", "actor", "command", "site", "Rij-ID", "what", "exit"),
            (
                (
                    e["time"],
                    e["actor"],
                    e["command"],
                    e["site"] or "",
                    e["row_id"] or "",
                    ", ".join(e["reasons"]),
                    "" if e["exit_code"] is None else e["exit_code"],
                )
                for e in events
            ),
        )
        state.output.info(f"{len(events)} event(s)")
        return ExitCode.OK

    execute(ctx, work)
