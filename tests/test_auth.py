from __future__ import annotations

import inspect
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import msal
import msal_extensions
import pytest
import requests
from keyring.backends import chainer, fail, null
from keyring.errors import NoKeyringError, PasswordSetError
from typer.testing import CliRunner

from agii_sync import auth
from agii_sync.auth import (
    CachedTokenProvider,
    KeyringFailed,
    KeyringUnavailable,
    certificate_key,
    certificate_token_provider,
    delete_secret,
    device_code_token_provider,
    logout,
    rowkey_secret,
    sharepoint_resource,
    store_secret,
)
from agii_sync.cli import app
from agii_sync.config import AuthSection
from agii_sync.errors import AuthFailure, ExitCode, SecretMissing, TemporaryFailure
from fixtures.secrets import TEST_ROWKEY_SECRET, MemoryKeyring

RESOURCE = "https://agii.sharepoint.com"
PEM = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.secret-token"


@pytest.fixture(autouse=True)
def no_secrets_in_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "AGII_SYNC_ROWKEY_SECRET",
        "AGII_SYNC_CERT_KEY",
        "AGII_SYNC_CERT_PASSWORD",
        "AGII_SYNC_ALLOW_PLAINTEXT_TOKEN_CACHE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the token cache's folder


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def certificate_auth() -> AuthSection:
    return AuthSection(
        tenant="agii.onmicrosoft.com",
        client_id="11111111-2222-3333-4444-555555555555",
        method="certificate",
        certificate_thumbprint="ABCDEF0123",
    )


def device_auth() -> AuthSection:
    return AuthSection(tenant="agii.onmicrosoft.com", client_id="client-1", method="device-code")


# --- secrets --------------------------------------------------------------------------------


def test_rowkey_secret_fixture_sets_the_environment(rowkey_secret: bytes) -> None:
    assert rowkey_secret == TEST_ROWKEY_SECRET.encode()
    assert auth.rowkey_secret() == rowkey_secret


def test_environment_wins_over_keyring(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_secret("rowkey-secret", "from-keyring")
    monkeypatch.setenv("AGII_SYNC_ROWKEY_SECRET", "from-env")

    assert rowkey_secret() == b"from-env"


def test_keyring_is_used_when_environment_is_empty(memory_keyring: MemoryKeyring) -> None:
    store_secret("rowkey-secret", "from-keyring")
    store_secret("certificate-key", PEM)

    assert rowkey_secret() == b"from-keyring"
    assert certificate_key() == PEM
    assert memory_keyring.entries[("agii-sync", "certificate-key")] == PEM


@pytest.mark.parametrize(
    ("read", "variable", "exit_code"),
    [
        (rowkey_secret, "AGII_SYNC_ROWKEY_SECRET", ExitCode.USAGE),
        (certificate_key, "AGII_SYNC_CERT_KEY", ExitCode.AUTH),  # no key, no sign-in
    ],
)
def test_missing_secret_names_variable_and_login(
    memory_keyring: MemoryKeyring, read: Any, variable: str, exit_code: ExitCode
) -> None:
    with pytest.raises(SecretMissing) as caught:
        read()

    assert variable in caught.value.message
    assert "agii-sync login" in caught.value.message
    assert caught.value.exit_code == exit_code


@pytest.mark.parametrize("blank", [" ", "\t\n"])
def test_a_blank_secret_is_no_secret(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    monkeypatch.setenv("AGII_SYNC_ROWKEY_SECRET", blank)
    with pytest.raises(SecretMissing):
        rowkey_secret()
    memory_keyring.set_password("agii-sync", "rowkey-secret", blank)
    with pytest.raises(SecretMissing):
        rowkey_secret()


def test_no_keyring_backend_gives_a_clear_message(no_keyring: None) -> None:
    with pytest.raises(SecretMissing) as caught:
        rowkey_secret()

    message = caught.value.message
    assert isinstance(caught.value, KeyringUnavailable)
    assert "no usable OS keyring" in message
    assert "AGII_SYNC_ROWKEY_SECRET" in message
    assert "agii-sync login" in message
    assert "Traceback" not in message and "keyrings.alt" not in message
    assert caught.value.__suppress_context__  # the keyring's own error is not chained in


@pytest.mark.parametrize("backend", [null.Keyring, "empty-chainer"])
def test_backends_that_store_nothing_count_as_no_keyring(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = keyring.get_keyring()
    if backend == "empty-chainer":
        monkeypatch.setattr(chainer.ChainerBackend, "backends", [])
        keyring.set_keyring(chainer.ChainerBackend())
    else:
        keyring.set_keyring(backend())
    try:
        with pytest.raises(KeyringFailed, match="no usable OS keyring") as caught:
            store_secret("rowkey-secret", "x")
        assert caught.value.exit_code == ExitCode.AUTH
        assert "AGII_SYNC_ROWKEY_SECRET" in (caught.value.hint or "")
        with pytest.raises(KeyringUnavailable, match="AGII_SYNC_CERT_KEY"):
            certificate_key()
    finally:
        keyring.set_keyring(previous)


def test_environment_works_without_a_keyring(
    no_keyring: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGII_SYNC_CERT_KEY", PEM)

    assert certificate_key() == PEM


def test_store_and_delete_only_our_entries(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(ValueError, match="unknown secret"):
        store_secret("password", "x")

    store_secret("rowkey-secret", "s")
    assert delete_secret("rowkey-secret") is True
    assert delete_secret("rowkey-secret") is False


def test_logout_removes_all_of_ours_and_nothing_else(memory_keyring: MemoryKeyring) -> None:
    for name in ("rowkey-secret", "certificate-key", "token-cache"):
        store_secret(name, "value")
    memory_keyring.set_password("other-tool", "token-cache", "keep me")

    removed = logout()

    assert removed == ["rowkey-secret", "certificate-key", "token-cache"]
    assert memory_keyring.entries == {("other-tool", "token-cache"): "keep me"}
    assert logout() == []


@pytest.mark.parametrize("secret, warned", [("kort-geheim", True), (TEST_ROWKEY_SECRET, False)])
def test_login_warns_about_a_short_rowkey_secret_and_stores_it(
    memory_keyring: MemoryKeyring, secret: str, warned: bool
) -> None:
    result = CliRunner().invoke(app, ["login", "--rowkey-secret-stdin"], input=secret + "\n")

    assert result.exit_code == 0
    assert ("fewer than 16 characters" in result.stderr) is warned
    assert secret not in result.output
    assert memory_keyring.get_password("agii-sync", "rowkey-secret") == secret


def test_login_stores_a_real_certificate_key_and_refuses_a_broken_one(
    memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    good, broken = tmp_path / "app.pem", tmp_path / "broken.pem"
    good.write_text(pem, encoding="ascii")
    broken.write_text(pem.replace(pem.splitlines()[3], "A" * 64), encoding="ascii")

    refused = CliRunner().invoke(app, ["login", "--certificate-key", str(broken)])
    assert refused.exit_code == 2 and "not a readable" in refused.output
    assert "AAAA" not in refused.output
    assert CliRunner().invoke(app, ["login", "--certificate-key", str(good)]).exit_code == 0
    assert memory_keyring.get_password("agii-sync", "certificate-key") == pem


# --- token caching -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cached_token_is_reused_until_shortly_before_expiry() -> None:
    clock = Clock()
    fetched: list[int] = []

    def fetch() -> dict:
        fetched.append(1)
        return {"access_token": f"t{len(fetched)}", "expires_in": 3600}

    provider = CachedTokenProvider(fetch, clock=clock, margin_seconds=120)

    first = provider()
    clock.now += 3000
    second = provider()
    clock.now += 500  # 100 s left: inside the margin
    third = provider()

    assert first == {"access_token": "t1", "token_type": "Bearer", "expires_in": 3600}
    assert second == {"access_token": "t1", "token_type": "Bearer", "expires_in": 600}
    assert third["access_token"] == "t2"
    assert len(fetched) == 2
    assert "t1" not in repr(provider) and "t2" not in repr(provider)


def test_cached_token_fetches_once_for_many_threads() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def slow_fetch() -> dict:
        calls.append(1)
        gate.wait(1)
        return {"access_token": "t", "expires_in": 3600}

    provider = CachedTokenProvider(slow_fetch)
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(provider())) for _ in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join()

    assert len(calls) == 1
    assert [r["access_token"] for r in results] == ["t"] * 8


# --- certificate (app-only) -----------------------------------------------------------------


class FakeConfidentialApp:
    instances: list[FakeConfidentialApp] = []
    result: dict[str, Any] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3599}

    def __init__(self, client_id: str, **kwargs: Any) -> None:
        self.client_id = client_id
        self.kwargs = kwargs
        self.scopes: list[list[str]] = []
        FakeConfidentialApp.instances.append(self)

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        self.scopes.append(scopes)
        return dict(self.result)


@pytest.fixture
def fake_confidential() -> Iterator[type[FakeConfidentialApp]]:
    FakeConfidentialApp.instances = []
    yield FakeConfidentialApp
    FakeConfidentialApp.result = {"access_token": TOKEN, "expires_in": 3599}


def test_certificate_provider_builds_msal_app_with_thumbprint_and_key(
    monkeypatch: pytest.MonkeyPatch, fake_confidential: type[FakeConfidentialApp]
) -> None:
    monkeypatch.setenv("AGII_SYNC_CERT_KEY", PEM)

    provider = certificate_token_provider(
        certificate_auth(), RESOURCE, app_factory=fake_confidential
    )
    token = provider()
    provider()

    (app,) = fake_confidential.instances
    assert app.client_id == "11111111-2222-3333-4444-555555555555"
    assert app.kwargs == {
        "authority": "https://login.microsoftonline.com/agii.onmicrosoft.com",
        "client_credential": {"thumbprint": "ABCDEF0123", "private_key": PEM},
    }
    assert app.scopes == [["https://agii.sharepoint.com/.default"]]  # second call: cached
    assert token == {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3599}


def test_certificate_provider_needs_the_key_up_front(
    memory_keyring: MemoryKeyring, fake_confidential: type[FakeConfidentialApp]
) -> None:
    with pytest.raises(SecretMissing, match="AGII_SYNC_CERT_KEY"):
        certificate_token_provider(certificate_auth(), RESOURCE, app_factory=fake_confidential)
    assert fake_confidential.instances == []


def test_msal_error_becomes_auth_failure_with_the_code_only(
    monkeypatch: pytest.MonkeyPatch, fake_confidential: type[FakeConfidentialApp]
) -> None:
    monkeypatch.setenv("AGII_SYNC_CERT_KEY", PEM)
    fake_confidential.result = {
        "error": "invalid_client",
        "error_description": "AADSTS700027: jan.peeters@example.be key mismatch",
        "error_codes": [700027],
    }
    provider = certificate_token_provider(
        certificate_auth(), RESOURCE, app_factory=fake_confidential
    )

    with pytest.raises(AuthFailure) as caught:
        provider()

    assert caught.value.exit_code == ExitCode.AUTH
    assert caught.value.message == "sign-in failed: invalid_client (AADSTS700027)"
    assert "jan.peeters" not in str(caught.value) + (caught.value.hint or "")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (requests.ConnectionError("https://login.microsoftonline.com refused"), TemporaryFailure),
        (ValueError(f"Unable to load key {PEM}"), AuthFailure),
    ],
)
def test_msal_exceptions_are_mapped_without_their_text(
    monkeypatch: pytest.MonkeyPatch, error: Exception, expected: type[Exception]
) -> None:
    monkeypatch.setenv("AGII_SYNC_CERT_KEY", PEM)

    def failing_factory(*args: Any, **kwargs: Any) -> Any:
        raise error

    provider = certificate_token_provider(certificate_auth(), RESOURCE, app_factory=failing_factory)

    with pytest.raises(expected) as caught:
        provider()

    assert "not-a-real-key" not in str(caught.value)
    assert caught.value.__suppress_context__


# --- device code (a person) -----------------------------------------------------------------


class FakePublicApp:
    """Behaves like msal.PublicClientApplication against a real SerializableTokenCache."""

    instances: list[FakePublicApp] = []

    def __init__(self, client_id: str, *, authority: str, token_cache: Any, **kwargs: Any) -> None:
        self.client_id = client_id
        self.authority = authority
        self.cache = token_cache
        self.calls: list[str] = []
        self.device_result: dict[str, Any] = {"access_token": TOKEN, "expires_in": 3600}
        FakePublicApp.instances.append(self)

    def get_accounts(self) -> list[dict]:
        self.calls.append("get_accounts")
        accounts = list(self.cache.search(msal.TokenCache.CredentialType.ACCOUNT))
        return [{"username": "someone"}] if accounts else []

    def acquire_token_silent(self, scopes: list[str], account: dict) -> dict | None:
        self.calls.append("silent")
        return {"access_token": "silent-token", "expires_in": 3000}

    def initiate_device_flow(self, scopes: list[str]) -> dict:
        self.calls.append("initiate")
        return {
            "user_code": "ABC123",
            "verification_uri": "https://microsoft.com/devicelogin",
            "message": "Ga naar https://microsoft.com/devicelogin",
        }

    def acquire_token_by_device_flow(self, flow: dict) -> dict:
        self.calls.append("device_flow")
        if "access_token" in self.device_result:
            self.cache.add(
                {
                    "client_id": self.client_id,
                    "scope": ["https://agii.sharepoint.com/.default"],
                    "token_endpoint": "https://login.microsoftonline.com/t/oauth2/v2.0/token",
                    "response": {
                        "access_token": TOKEN,
                        "refresh_token": "refresh",
                        "expires_in": 3600,
                        "token_type": "Bearer",
                        "client_info": "eyJ1aWQiOiJ1IiwidXRpZCI6InQifQ",
                    },
                }
            )
        return dict(self.device_result)


@pytest.fixture
def fake_public() -> Iterator[type[FakePublicApp]]:
    FakePublicApp.instances = []
    yield FakePublicApp


@pytest.fixture
def plaintext_cache(monkeypatch: pytest.MonkeyPatch) -> Path:
    """This Linux test machine has no libsecret: the user opts in to a plain-text cache."""
    monkeypatch.setenv("AGII_SYNC_ALLOW_PLAINTEXT_TOKEN_CACHE", "1")
    return auth.token_cache_path()


@pytest.fixture
def no_encrypted_store(monkeypatch: pytest.MonkeyPatch) -> None:
    import msal_extensions

    def unavailable(location: str) -> Any:
        raise ImportError("no libsecret here")

    monkeypatch.setattr(msal_extensions, "build_encrypted_persistence", unavailable)


DEVICE_PROMPT = (
    "To sign in, open https://microsoft.com/devicelogin in a browser and enter the code ABC123"
)


def test_device_code_first_time_prompts_and_saves_the_cache(
    plaintext_cache: Path, no_encrypted_store: None, fake_public: type[FakePublicApp]
) -> None:
    prompts: list[str] = []

    token = device_code_token_provider(
        device_auth(), RESOURCE, prompt=prompts.append, app_factory=fake_public
    )()

    (app,) = fake_public.instances
    assert app.authority == "https://login.microsoftonline.com/agii.onmicrosoft.com"
    assert isinstance(app.cache, msal_extensions.PersistedTokenCache)
    assert app.calls == ["get_accounts", "initiate", "device_flow"]
    assert prompts == [DEVICE_PROMPT]
    assert token["access_token"] == TOKEN and token["token_type"] == "Bearer"
    saved = json.loads(plaintext_cache.read_text())
    assert saved["Account"] and saved["RefreshToken"]
    if hasattr(os, "getuid"):
        assert plaintext_cache.stat().st_mode & 0o077 == 0  # only the user can read it


def test_device_code_next_time_is_silent_from_the_cache(
    plaintext_cache: Path, no_encrypted_store: None, fake_public: type[FakePublicApp]
) -> None:
    device_code_token_provider(device_auth(), RESOURCE, prompt=print, app_factory=fake_public)()
    prompts: list[str] = []

    token = device_code_token_provider(
        device_auth(), RESOURCE, prompt=prompts.append, app_factory=fake_public
    )()

    assert fake_public.instances[1].calls == ["get_accounts", "silent"]
    assert prompts == []
    assert token["access_token"] == "silent-token"


def test_the_platforms_encrypted_store_is_used_when_there_is_one(
    monkeypatch: pytest.MonkeyPatch, fake_public: type[FakePublicApp]
) -> None:
    import msal_extensions

    class SealedPersistence(msal_extensions.FilePersistence):
        """Stands in for DPAPI/Keychain/libsecret: what it keeps is not the plain cache."""

        is_encrypted = True

        def save(self, content: str) -> None:
            super().save(content[::-1])

        def load(self) -> str:
            return super().load()[::-1]

    monkeypatch.setattr(msal_extensions, "build_encrypted_persistence", SealedPersistence)
    prompts: list[str] = []
    device_code_token_provider(
        device_auth(), RESOURCE, prompt=prompts.append, app_factory=fake_public
    )()

    assert prompts == [DEVICE_PROMPT]  # no "not kept" note
    assert "RefreshToken" not in auth.token_cache_path().read_text()
    again = device_code_token_provider(
        device_auth(), RESOURCE, prompt=prompts.append, app_factory=fake_public
    )()
    assert again["access_token"] == "silent-token"


def test_without_encrypted_store_or_opt_in_the_cache_is_never_written_in_plain_text(
    no_encrypted_store: None, fake_public: type[FakePublicApp]
) -> None:
    prompts: list[str] = []

    token = device_code_token_provider(
        device_auth(), RESOURCE, prompt=prompts.append, app_factory=fake_public
    )()

    assert token["access_token"] == TOKEN  # this run goes on
    (prompt,) = prompts
    assert prompt.startswith(DEVICE_PROMPT) and "AGII_SYNC_ALLOW_PLAINTEXT_TOKEN_CACHE" in prompt
    assert not auth.token_cache_path().exists()
    with pytest.raises(auth.PlaintextCacheRefused) as caught:  # login: refused before a prompt
        device_code_token_provider(
            device_auth(), RESOURCE, prompt=prompts.append, app_factory=fake_public, must_keep=True
        )()
    assert caught.value.exit_code == ExitCode.AUTH
    assert "allow_plaintext_token_cache" in (caught.value.hint or "")
    assert len(prompts) == 1


def test_device_code_failure_is_auth_failure(
    plaintext_cache: Path,
    no_encrypted_store: None,
    fake_public: type[FakePublicApp],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        FakePublicApp,
        "acquire_token_by_device_flow",
        lambda self, flow: {"error": "expired_token", "error_description": "for a@b.be"},
    )
    provider = device_code_token_provider(
        device_auth(), RESOURCE, prompt=lambda _: None, app_factory=fake_public
    )

    with pytest.raises(AuthFailure, match=r"^sign-in failed: expired_token$"):
        provider()
    assert not plaintext_cache.exists()


def test_our_msal_calls_match_the_real_msal_signatures() -> None:
    bind = inspect.signature
    bind(msal.ConfidentialClientApplication).bind("id", authority="a", client_credential={})
    bind(msal.PublicClientApplication).bind("id", authority="a", token_cache=None)
    bind(msal.ConfidentialClientApplication.acquire_token_for_client).bind(None, scopes=[])
    bind(msal.PublicClientApplication.acquire_token_silent).bind(None, [], account={})
    bind(msal.PublicClientApplication.initiate_device_flow).bind(None, scopes=[])
    bind(msal.PublicClientApplication.acquire_token_by_device_flow).bind(None, {})


def test_sharepoint_resource() -> None:
    assert sharepoint_resource("https://agii.sharepoint.com/sites/pnt-x") == RESOURCE


# --- keyring backends that fail -------------------------------------------------------------


class RefusingKeyring(MemoryKeyring):
    """A real backend whose store refuses, as Windows Credential Manager does past 2,560 bytes
    (its own error type, not a keyring error) or a locked store does (PasswordSetError)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def set_password(self, service: str, username: str, password: str) -> None:
        raise self.error

    def get_password(self, service: str, username: str) -> str | None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        PasswordSetError("Can't store password on keychain: jan.peeters"),
        OSError(1783, "The stub received bad data: jan.peeters"),
        NoKeyringError("No recommended backend was available"),
    ],
)
def test_a_failing_keyring_backend_is_a_clean_exit_4_naming_the_alternative(
    error: Exception, tmp_path: Path
) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(RefusingKeyring(error))
    pem = tmp_path / "app.pem"
    pem.write_text(_real_pem(), encoding="ascii")
    try:
        stored = CliRunner().invoke(app, ["login", "--rowkey-secret-stdin"], input="x" * 40 + "\n")
        key = CliRunner().invoke(app, ["login", "--certificate-key", str(pem)])
        with pytest.raises((AuthFailure, SecretMissing)) as read:
            certificate_key()
    finally:
        keyring.set_keyring(previous)

    assert stored.exit_code == 4 and "AGII_SYNC_ROWKEY_SECRET" in stored.stderr
    assert key.exit_code == 4 and "certificate_path" in key.stderr
    assert read.value.exit_code == ExitCode.AUTH
    assert "AGII_SYNC_CERT_KEY" in read.value.message + (read.value.hint or "")
    for text in (stored.output, key.output, str(read.value)):
        assert "jan.peeters" not in text and "Traceback" not in text


def _real_pem(password: bytes | None = None) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def test_a_pem_certificate_path_with_its_password_from_the_environment(
    tmp_path: Path, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = tmp_path / "app.pem"
    pem.write_text(_real_pem(b"geheim-wachtwoord"), encoding="ascii")
    section = certificate_auth().model_copy(update={"certificate_path": pem})

    with pytest.raises(AuthFailure, match="no password was given") as missing:
        auth.certificate_credential(section, pem)
    assert "AGII_SYNC_CERT_PASSWORD" in (missing.value.hint or "")
    monkeypatch.setenv("AGII_SYNC_CERT_PASSWORD", "fout")
    with pytest.raises(AuthFailure, match="does not open it"):
        auth.certificate_credential(section, pem)
    monkeypatch.delenv("AGII_SYNC_CERT_PASSWORD")
    memory_keyring.set_password("agii-sync", "certificate-password", "geheim-wachtwoord")

    credential = auth.certificate_credential(section, pem)

    assert credential["thumbprint"] == "ABCDEF0123"
    assert credential["passphrase"] == "geheim-wachtwoord"
    assert credential["private_key"] == pem.read_text()
    assert set(memory_keyring.entries) == {("agii-sync", "certificate-password")}  # no key
