"""A person's sign-in, end to end: the real msal against a fake identity provider on
https://127.0.0.1 (fixtures/identity.py), the real SharePoint client against the emulator on
https://127.0.0.1, the real `agii-sync` in a subprocess. The identity provider hands out a token
only after the user code was typed in, and the test can only learn that code from agii-sync's
stderr: so the prompt reached the user."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agii_sync.cli import app
from agii_sync.demo_data import write_export
from agii_sync.emulator import Emulator
from fixtures.identity import FakeIdentityProvider, TlsFiles, self_signed
from fixtures.secrets import MemoryKeyring
from fixtures.workspace import person

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CODE_LINE = re.compile(r"open (https://127\.0\.0\.1:\d+/devicelogin) .* enter the code ([A-Z]+)")
CLI = [sys.executable, "-c", "from agii_sync.cli import main; main()"]


@pytest.fixture
def https_emulator(tmp_path: Path, tls_files: TlsFiles) -> Iterator[str]:
    emulator = Emulator(tmp_path / "emulator")
    url = emulator.start(tls=tls_files.server_context())
    yield url
    emulator.stop()


@pytest.fixture
def setup(
    tmp_path: Path,
    https_emulator: str,
    identity_provider: FakeIdentityProvider,
    tls_files: TlsFiles,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """A device-code config for one site on the https emulator; the environment of a person's
    laptop where the only unusual things are the test identity provider and its certificate."""
    config = tmp_path / "agii-sync.toml"
    config.write_text(
        f"""
[agii]
audit_log = "var/audit.jsonl"

[auth]
tenant = "{identity_provider.tenant}"
client_id = "{CLIENT_ID}"
method = "device-code"
sharepoint_hosts = ["127.0.0.1"]  # the emulator on https plays the tenant's SharePoint

[[municipality]]
id = "sint-pieters-leeuw"
name = "Sint-Pieters-Leeuw"
nis = "23077"
postal_codes = ["1600"]
site = "{https_emulator}/sites/spl"
protocol_start = 2024-01-01
protocol_end = 2099-12-31
allowed = ["staff@spl.be"]
""",
        encoding="utf-8",
    )
    write_export(tmp_path / "export.csv", [person(n, 0) for n in range(1, 4)], "csv")
    env = {
        "AGII_SYNC_CONFIG": str(config),
        "AGII_SYNC_TEST_LOGIN_HOST": identity_provider.base_url,
        "AGII_SYNC_TEST_GRAPH_HOST": https_emulator,  # the emulator's Graph plays Microsoft's
        "REQUESTS_CA_BUNDLE": str(tls_files.certificate),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "AGII_SYNC_ALLOW_PLAINTEXT_TOKEN_CACHE": "1",  # no libsecret on the test machine
        "AGII_SYNC_ROWKEY_SECRET": "sign-in-test-rowkey-secret-0123456789",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "NO_COLOR": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env | {"SITE_ORIGIN": https_emulator}


def run_as_person(
    idp: FakeIdentityProvider, env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], list[tuple[str, str]]]:
    """Run agii-sync; whenever stderr shows a verification URL and code, type the code in."""
    process = subprocess.Popen(
        [*CLI, *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[tuple[str, str]] = []
    stderr: list[str] = []

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            stderr.append(line)
            found = CODE_LINE.search(line)
            if found:
                seen.append((found[1], found[2]))
                assert idp.approve(found[2])

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert process.stdout is not None
    output: list[str] = []  # read here, not by communicate(), which would read stderr too
    out_reader = threading.Thread(target=lambda: output.append(process.stdout.read()), daemon=True)
    out_reader.start()
    try:
        process.wait(timeout=90)
    finally:
        process.kill()
    out_reader.join(10)
    reader.join(10)
    stdout = "".join(output)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, "".join(stderr))
    return result, seen


def audit_actors(tmp_path: Path) -> list[tuple[str, str]]:
    lines = (tmp_path / "var" / "audit.jsonl").read_text().splitlines()
    return [(json.loads(line)["command"], json.loads(line)["actor"]) for line in lines]


class WatchedRunner(CliRunner):
    """``CliRunner`` whose captured stderr can be read while the command still runs."""

    stderr: io.BytesIO | None = None

    @contextlib.contextmanager
    def isolation(self, *args: Any, **kwargs: Any) -> Iterator[tuple[io.BytesIO, ...]]:
        with super().isolation(*args, **kwargs) as streams:
            self.stderr = streams[1]
            yield streams


def invoke_as_person(idp: FakeIdentityProvider, *args: str) -> tuple[Result, list[tuple[str, str]]]:
    """Run agii-sync in-process while a "person" reads its stderr and types in any code shown
    there; without that the identity provider never hands out a token (the flow expires)."""
    runner = WatchedRunner()
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            try:
                shown = runner.stderr.getvalue().decode() if runner.stderr else ""
            except ValueError:  # the command has ended and its captured stderr is closed
                return
            for found in CODE_LINE.finditer(shown):
                if (found[1], found[2]) not in seen:
                    seen.append((found[1], found[2]))
                    assert idp.approve(found[2])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = runner.invoke(app, list(args))
    finally:
        done.set()
        watcher.join(5)
    return result, seen


def test_device_code_push_shows_the_code_under_json_and_audits_the_person(
    tmp_path: Path, setup: dict[str, str], identity_provider: FakeIdentityProvider
) -> None:
    done, seen = invoke_as_person(identity_provider, "--json", "push", str(tmp_path / "export.csv"))

    assert done.exit_code == 0, done.stderr
    assert seen == [
        (f"{identity_provider.base_url}/devicelogin", identity_provider.flows[0].user_code)
    ]
    doc = json.loads(done.stdout)  # stdout is exactly one JSON document
    assert doc["command"] == "push" and doc["sites"][0]["written"]
    # the run's configuration is recorded first, by the same person
    assert audit_actors(tmp_path) == [
        ("config", "user:an.claes@gemeente.test"),
        ("push", "user:an.claes@gemeente.test"),
    ]
    (flow,) = identity_provider.flows  # Graph's token came from the same sign-in
    assert flow.client_id == CLIENT_ID
    site_scope = f"{setup['SITE_ORIGIN']}/.default"
    assert site_scope in flow.scope.split()  # a token for the site's host only
    refreshed = [r for r in identity_provider.token_requests if r["grant_type"] == "refresh_token"]
    assert {r["scope"].split()[0] for r in refreshed} == {"https://graph.microsoft.com/.default"}


def test_login_signs_in_says_who_and_later_runs_are_silent(
    tmp_path: Path,
    setup: dict[str, str],
    identity_provider: FakeIdentityProvider,
    memory_keyring: MemoryKeyring,
) -> None:
    done, seen = run_as_person(identity_provider, setup, "login")

    assert done.returncode == 0, done.stderr
    assert len(seen) == 1
    assert "signed in as an.claes@gemeente.test" in done.stderr
    cache = tmp_path / "data" / "agii-sync" / "msal-token-cache.bin"
    assert cache.exists()

    runner = CliRunner()
    pushed = runner.invoke(app, ["--json", "push", str(tmp_path / "export.csv")])
    listed = runner.invoke(app, ["--json", "list", "--site", "sint-pieters-leeuw"])
    assert pushed.exit_code == 0, pushed.output
    assert listed.exit_code == 0 and json.loads(listed.stdout)["count"] == 3
    row_id = json.loads(listed.stdout)["people"][0]["Rij-ID"]
    updated = runner.invoke(
        app, ["status-update", "--site", "sint-pieters-leeuw", row_id, "Gecontacteerd"]
    )

    assert updated.exit_code == 0, updated.output
    outputs = pushed.stderr + listed.stderr + updated.stderr
    assert "sign-in" not in outputs  # from the token cache: no prompt
    assert len(identity_provider.flows) == 1
    assert audit_actors(tmp_path) == [
        ("config", "user:an.claes@gemeente.test"),
        ("push", "user:an.claes@gemeente.test"),
        ("list", "user:an.claes@gemeente.test"),
        ("status-update", "user:an.claes@gemeente.test"),
    ]
    out = runner.invoke(app, ["--json", "logout"])
    assert "token cache" in json.loads(out.stdout)["removed"] and not cache.exists()


@pytest.mark.parametrize(
    ("seam", "elsewhere"),
    [
        ("AGII_SYNC_TEST_LOGIN_HOST", "https://login.example.org"),
        ("AGII_SYNC_TEST_GRAPH_HOST", "https://graph.example.org"),
        ("AGII_SYNC_TEST_GRAPH_HOST", "http://127.0.0.1:8080"),
    ],
)
def test_a_test_seam_is_refused_unless_loopback_https(
    seam: str,
    elsewhere: str,
    setup: dict[str, str],
    identity_provider: FakeIdentityProvider,
    monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
) -> None:
    """A seam never sends a token off the machine, nor in the clear."""
    monkeypatch.setenv(seam, elsewhere)
    result, seen = invoke_as_person(identity_provider, "list", "--site", "sint-pieters-leeuw")
    assert result.exit_code == 2 and f"{seam} is for tests" in result.stderr
    assert "only https://127.0.0.1" in result.stderr


def make_pfx(path: Path, password: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(key, "agii-sync")
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"agii-sync", key, cert, None, BestAvailableEncryption(password)
        )
    )


def test_certificate_from_a_pfx_file_signs_in_as_the_app(
    tmp_path: Path,
    setup: dict[str, str],
    identity_provider: FakeIdentityProvider,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "agii-sync.toml"
    (tmp_path / "keys").mkdir()
    make_pfx(tmp_path / "keys" / "app.pfx", b"pfx-wachtwoord")
    text = config.read_text().replace(
        'method = "device-code"', 'method = "certificate"\ncertificate_path = "keys/app.pfx"'
    )
    config.write_text(text)
    runner = CliRunner()

    refused = runner.invoke(app, ["list", "--site", "sint-pieters-leeuw"])
    assert refused.exit_code == 4 and "AGII_SYNC_CERT_PASSWORD" in refused.stderr
    monkeypatch.setenv("AGII_SYNC_CERT_PASSWORD", "pfx-wachtwoord")
    listed = runner.invoke(app, ["list", "--site", "sint-pieters-leeuw"])

    assert listed.exit_code == 0, listed.output
    grants = [
        r for r in identity_provider.token_requests if r["grant_type"] == "client_credentials"
    ]
    assert grants and {g["client_id"] for g in grants} == {CLIENT_ID}
    # tokens for the site's host or for Graph, nothing else
    site_or_graph = {f"{setup['SITE_ORIGIN']}/.default", "https://graph.microsoft.com/.default"}
    assert {g["scope"] for g in grants} <= site_or_graph
    assert (
        audit_actors(tmp_path)
        == [("config", f"app:{CLIENT_ID}")] + [("list", f"app:{CLIENT_ID}")] * 2
    )  # the refusal too
    assert memory_keyring.entries == {}  # the key stays in its file
    assert "pfx-wachtwoord" not in refused.output + listed.output
