"""``doctor``: prove each SharePoint site behaves as agii-sync relies on (docs/sharepoint.md)."""

from __future__ import annotations

import typer

from ..errors import ExitCode
from . import State, app, execute
from .sync import SiteOption


@app.command("doctor")
def doctor(ctx: typer.Context, site: SiteOption = None) -> None:
    """Prove on each SharePoint site, with a scratch file next to the workbook that is removed
    afterwards, every behaviour agii-sync relies on: sign-in and token audience, the document
    library, read with eTag, a write with the current eTag accepted and with a stale one
    refused (412), the new eTag in the upload's answer, check-out state, versions listed and
    deleted, permissions and sharing links readable. One line per check: pass, fail, or not
    allowed with the Sites.Selected role to ask for. Exit 0 only when every check passes (4:
    not allowed or sign-in; 2: the library is missing; 5: anything else that failed). Run it
    first on a new tenant."""

    def work(state: State) -> ExitCode:
        from ..outcome import worst
        from ..runs.doctor import checks_of, doctor_site
        from . import render

        config = state.config()
        run = state.run(config, "doctor")  # a device-code sign-in shows its code
        outcomes = run.for_each_site(config.select(site), lambda m: doctor_site(run, m))
        code = worst(outcomes)
        if state.json_mode:
            sites = [render.doctor_site_doc(o, checks_of(o)) for o in outcomes]
            state.output.document({"command": "doctor", "exit_code": int(code), "sites": sites})
        else:
            for o in outcomes:
                render.doctor_lines(state.output, o, checks_of(o))
        return code

    execute(ctx, work)
