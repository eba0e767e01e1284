"""``access-check``: who can reach each municipality's site, compared with ``allowed``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ..errors import ExitCode
from . import State, app, execute
from .sync import SiteOption

if TYPE_CHECKING:
    from ..outcome import SiteOutcome


@app.command("access-check")
def access_check(ctx: typer.Context, site: SiteOption = None) -> None:
    """Compare who has access to each site with the municipality's `allowed` list: users,
    SharePoint groups and their members, security groups, and sharing links.

    An allowed entry matches an e-mail address, a login name (whole, or the part after the
    last '|'), or a group title; case is ignored. A group in `allowed` covers its members;
    another group's members are checked one by one. Reported: unexpected principals, allowed
    entries that reach nobody (missing), and critical access that `allowed` cannot excuse:
    Everyone / Everyone except external users / All Users, guests not covered by `allowed`,
    anonymous and organisation-wide links, and principals above the level of their allowed
    entry. Exit 1 if anything is found. A critical finding is a possible data breach: it is
    recorded as an incident (detection time, 48-hour deadline), the DPOs to tell are named,
    and the exit code is 5. With -v, also lists everyone who has access."""

    def work(state: State) -> ExitCode:
        from ..outcome import worst
        from ..runs.access import access_check, incidents_of, report_of
        from . import render

        config = state.config()
        run = state.run(config, "access-check")
        outcomes = access_check(run, config.select(site))
        code = worst(outcomes)
        if state.json_mode:
            sites = [
                render.access_site_doc(o, report_of(o)) | render.incident_doc(incidents_of(o))
                for o in outcomes
            ]
            state.output.document(
                {"command": "access-check", "exit_code": int(code), "sites": sites}
            )
        else:
            _show(state, outcomes)
        for o in outcomes:
            render.incident(state.output, incidents_of(o))
        return code

    execute(ctx, work)


def _show(state: State, outcomes: list[SiteOutcome]) -> None:
    from ..runs.access import report_of
    from . import render

    out = state.output
    if out.quiet:  # -q: only the sites that need a look
        outcomes = [o for o in outcomes if o.exit_code != ExitCode.OK]
        if not outcomes:
            return
    render.access_summary(out, [(o, report_of(o)) for o in outcomes])
    for o in outcomes:
        report = report_of(o)
        if o.error is not None:
            out.error(o.error, site=o.site)
        if report is None:
            continue
        render.access_findings(out, o.site, report.findings)
        if state.verbose:
            render.access_grants(out, o.site, report.grants)
