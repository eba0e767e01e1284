"""Housekeeping commands: audit, login/logout, schema."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import AgiiError, ExitCode, UsageError
from . import State, app, execute

if TYPE_CHECKING:
    from .. import audit as audit_trail

# audit, auth (keyring, msal), schemas (pydantic models) are imported by the commands that
# use them, so that `--help` starts fast (see cli/sync.py).

audit_app = typer.Typer(help="The audit trail: hash-chained JSON lines.")
app.add_typer(audit_app, name="audit")

LogOption = Annotated[
    Path | None,
    typer.Option("--log", help="Audit file. Default: [agii] audit_log of the config."),
]


def _audit_path(state: State, log: Path | None) -> Path:
    path = log if log is not None else state.config().audit_log
    if path.is_dir():
        raise UsageError(f"audit trail {path} is a folder", hint="give the audit trail's file")
    return path


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    log: LogOption = None,
    sites: Annotated[
        bool,
        typer.Option(
            "--sites",
            help="Also cross-check the trail with the anchor each site's workbook carries: a "
            "trail cut below any site's last write fails.",
        ),
    ] = False,
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="With --sites: only this municipality (repeatable)."),
    ] = None,
) -> None:
    """Check the hash chain, the trail's head and the write-ahead notes. Exit 1 naming the
    first line that was changed, removed or reordered (or the site and the missing line)."""

    def work(state: State) -> ExitCode:
        from .. import audit as audit_trail
        from . import render

        path = _audit_path(state, log)
        # Without the trail, the sites' anchors still tell whether it ever had lines.
        if not path.exists() and not _has_head(path) and not (sites or site):
            raise UsageError(f"audit trail {path} does not exist")
        result = audit_trail.verify(path)  # a trail gone but for its head: lines removed
        trail = audit_trail.AuditTrail(path)
        notes = trail.pending_notes()
        bad_notes = [problem for _, _, problem in notes if problem is not None]
        checks, unread = _site_checks(state, path, notes, site) if sites or site else ([], [])
        code = ExitCode.OK if result.ok and not bad_notes else ExitCode.DATA
        if any(not c.ok for c in checks):
            code = ExitCode.DATA
        code = max([code, *(error.exit_code for _, error in unread)])
        render.audit_verify(state.output, code, result, bad_notes, checks, unread)
        return code

    execute(ctx, work)


def _has_head(path: Path) -> bool:
    from .. import audit as audit_trail

    return audit_trail.Head.path_for(path).exists()


def _site_checks(
    state: State,
    path: Path,
    notes: list[tuple[Path, dict[str, Any] | None, audit_trail.NoteProblem | None]],
    site_ids: list[str] | None,
) -> tuple[list[audit_trail.AnchorCheck], list[tuple[str, AgiiError]]]:
    from .. import audit as audit_trail
    from ..runs.anchors import read_anchors

    found = read_anchors(state.config(), site_ids)
    anchors = [read for _, read in found if isinstance(read, audit_trail.SiteAnchor)]
    unread = [(site_id, read) for site_id, read in found if isinstance(read, AgiiError)]
    pending = [event["write_id"] for _, event, _ in notes if event and "write_id" in event]
    return audit_trail.check_anchors(path, anchors, pending), unread


@audit_app.command("show")
def audit_show(ctx: typer.Context, log: LogOption = None) -> None:
    """Show the audit trail as a table (or JSON with --json)."""

    def work(state: State) -> ExitCode:
        from .. import audit as audit_trail

        path = _audit_path(state, log)
        if not path.exists():
            raise UsageError(f"audit trail {path} does not exist")
        records = audit_trail.read(path)
        if state.json_mode:
            state.output.document({"command": "audit show", "exit_code": 0, "records": records})
            return ExitCode.OK
        state.output.table(
            None,
            ("time", "actor", "command", "site", "counts", "rows", "exit"),
            (
                (
                    r.get("time"),
                    r.get("actor"),
                    r.get("command"),
                    r.get("site"),
                    ", ".join(f"{k}={v}" for k, v in (r.get("counts") or {}).items() if v),
                    len(r.get("rows") or []),
                    r.get("exit_code", ""),
                )
                for r in records
            ),
        )
        return ExitCode.OK

    execute(ctx, work)


@app.command()
def login(
    ctx: typer.Context,
    rowkey_secret_stdin: Annotated[
        bool,
        typer.Option("--rowkey-secret-stdin", help="Read the row-key secret from stdin."),
    ] = False,
    certificate_key: Annotated[
        Path | None,
        typer.Option("--certificate-key", help="PEM file with the app's private key."),
    ] = None,
    certificate_password_stdin: Annotated[
        bool,
        typer.Option(
            "--certificate-password-stdin",
            help="Read the password of [auth] certificate_path from stdin (after the row-key "
            "secret's line when both are given).",
        ),
    ] = False,
) -> None:
    """Store secrets in the OS keyring: the row-key secret (asked for when stdin is a
    terminal, or read from stdin with --rowkey-secret-stdin), the certificate's private key
    (--certificate-key), the password of the certificate file named by [auth]
    certificate_path (--certificate-password-stdin). With a device-code config, also signs
    you in (the code to enter is shown on stderr) and says who you are; the sign-in is kept
    in a token cache file, encrypted by the platform's own store (in plain text only where
    you allow it: [auth] allow_plaintext_token_cache; else login refuses, exit 4)."""

    def work(state: State) -> ExitCode:
        from .. import auth

        stored = _store_secrets(state, rowkey_secret_stdin, certificate_key)
        if certificate_password_stdin:
            auth.store_secret(auth.CERT_PASSWORD_ENTRY, _read_line("certificate password"))
            stored.append("certificate password")
        account = _sign_in(state)
        if not stored and account is None:
            raise UsageError("nothing to store", hint="see `agii-sync login --help`")
        if state.json_mode:
            state.output.document(
                {"command": "login", "exit_code": 0, "stored": stored, "signed_in_as": account}
            )
        if stored:
            state.output.info("stored in the keyring: " + ", ".join(stored))
        if account is not None:
            state.output.info(f"signed in as {account}")
        return ExitCode.OK

    execute(ctx, work)


def _store_secrets(state: State, rowkey_from_stdin: bool, key_file: Path | None) -> list[str]:
    from .. import auth

    stored = []
    pem = _read_private_key(key_file) if key_file is not None else None
    secret = _read_rowkey_secret(state, rowkey_from_stdin)
    if secret:
        if len(secret) < auth.ROWKEY_MIN_LENGTH:
            state.output.warn(
                f"the row-key secret has fewer than {auth.ROWKEY_MIN_LENGTH} characters: "
                "Rij-IDs made with a short secret can be linked back to dossier numbers "
                'by trying them all; use a long random one (e.g. `python3 -c "import '
                'secrets; print(secrets.token_urlsafe(32))"`)'
            )
        auth.store_secret(auth.ROWKEY_ENTRY, secret)
        stored.append("row-key secret")
    if pem is not None:
        auth.store_secret(auth.CERT_KEY_ENTRY, pem)
        stored.append("certificate key")
    return stored


def _sign_in(state: State) -> str | None:
    """With a device-code config (when one is found), sign the person in; their account."""
    from .. import auth
    from ..config import find_config

    if not find_config(state.config_path).exists():
        return None
    config = state.config()
    if config.auth is None or config.auth.method != "device-code":
        return None
    sites = [m.site for m in config.municipalities if m.kind == "sharepoint"]
    if not sites:
        raise UsageError("the config's [auth] is for https:// sites, and it has none")
    provider = auth.device_code_token_provider(
        config.auth,
        auth.sharepoint_resource(sites[0]),
        prompt=state.output.sign_in,
        must_keep=True,
    )
    provider()
    return provider.account or "an account without a user name in its token"


def _read_line(what: str) -> str:
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise UsageError(f"no {what} on stdin")
    return value


def _read_private_key(path: Path) -> str:
    """The PEM text of ``--certificate-key``; never quoted in a message (it is a secret)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--certificate-key {path}: cannot read it ({type(exc).__name__})"
        ) from None
    if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text or not _loads(text):
        raise UsageError(
            f"--certificate-key {path}: not a readable, unencrypted PEM private key",
            hint="give the file that starts with '-----BEGIN PRIVATE KEY-----'",
        )
    return text


def _loads(pem: str) -> bool:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(pem.encode("ascii", "replace"), password=None)
    except (ValueError, TypeError):  # garbled, unsupported, or protected by a password
        return False
    return True


def _read_rowkey_secret(state: State, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().strip()
    if not sys.stdin.isatty():
        return ""
    import getpass

    return getpass.getpass("Row-key secret (empty to skip): ").strip()


@app.command()
def logout(ctx: typer.Context) -> None:
    """Remove every secret and token agii-sync keeps in the OS keyring."""

    def work(state: State) -> ExitCode:
        from .. import auth

        removed = auth.logout()
        if state.json_mode:
            state.output.document({"command": "logout", "exit_code": 0, "removed": removed})
        state.output.info("removed: " + (", ".join(removed) if removed else "nothing was stored"))
        return ExitCode.OK

    execute(ctx, work)


@app.command()
def schema(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Fail (exit 1) if schemas/ is out of date.")
    ] = False,
    out: Annotated[Path, typer.Option("--out", help="Folder to write.")] = Path("schemas"),
) -> None:
    """Write JSON Schemas of the export record and the shared row, and the code lists, from
    the models (for developers). With --check, change nothing and fail when they drift."""

    def work(state: State) -> ExitCode:
        from ..schemas import write_schemas

        stale = write_schemas(out, check_only=check)
        code = ExitCode.DATA if check and stale else ExitCode.OK
        if state.json_mode:
            key = "out_of_date" if check else "written"
            doc = {"command": "schema", "exit_code": int(code), "folder": str(out), key: stale}
            state.output.document(doc)
        elif code:
            state.output.failure("out of date: " + ", ".join(stale) + " (run `agii-sync schema`)")
        else:
            state.output.info("schemas up to date" if check else f"wrote {out}")
        return code

    execute(ctx, work)


@app.command()
def demo(
    ctx: typer.Context,
    keep: Annotated[
        Path | None,
        typer.Option("--keep", help="Keep the demo's folder (config, export, emulator sites)."),
    ] = None,
) -> None:
    """A complete run with no network and no credentials: the bundled SharePoint emulator on
    127.0.0.1, three municipalities, a synthetic export; init, push, status-update,
    pull-status, then one protocol ends and purge empties that workbook."""
    from ..runs.demo import Step, run_demo

    def work(state: State) -> ExitCode:
        from . import render

        def show(step: Step) -> None:
            if not state.json_mode:
                state.output.line(
                    f"== {step.name}" + (f": {step.note}" if step.note else ""), style="bold"
                )
                render.outcomes(state.output, step.outcomes, show_changes=False)

        report = run_demo(keep, state.today(), show)
        if state.json_mode:
            state.output.document(
                {
                    "command": "demo",
                    "exit_code": int(report.exit_code),
                    "folder": str(report.folder) if report.kept else None,
                    "steps": [
                        {
                            "step": s.name,
                            "note": s.note,
                            "sites": [render.outcome_doc(o, changes=False) for o in s.outcomes],
                        }
                        for s in report.steps
                    ],
                }
            )
        elif report.kept:
            state.output.info(f"kept in {report.folder} (config: agii-sync.toml)")
        return report.exit_code

    execute(ctx, work)
