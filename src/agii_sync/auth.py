"""Secrets and sign-in (docs/sign-in.md, docs/sharepoint.md).

Secrets come from the environment first, then the OS keyring (service ``agii-sync``): the
row-key secret, the certificate's PEM private key (unless ``[auth] certificate_path`` names a
PEM/PFX file) and that file's password. They never appear in a message, a log line or an
exception's text. Any failure of the keyring backend is an authentication failure (exit 4) that
names the environment variable (or file) to use instead.

Sign-in to SharePoint is app-only with a certificate (cron) or a person's device-code flow,
whose token cache msal-extensions keeps encrypted by the platform's own store (DPAPI, Keychain,
libsecret); a plain-text cache file only when the user opts in. Client secrets and the retired
ACS path are deliberately not offered. Loopback emulator sites use a dummy token chosen by the
caller, not this module.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import AuthSection
from .errors import AuthFailure, ConfigError, ExitCode, SecretMissing, TemporaryFailure
from .siteurl import parse_http_site, test_seam_origin

if TYPE_CHECKING:  # imported when a command needs them: they cost most of a start-up
    import msal
    from keyring.backend import KeyringBackend

log = logging.getLogger(__name__)

SERVICE = "agii-sync"
ROWKEY_ENV = "AGII_SYNC_ROWKEY_SECRET"
ROWKEY_MIN_LENGTH = 16  # below this `login` warns: dossier numbers are few enough to try all
CERT_KEY_ENV = "AGII_SYNC_CERT_KEY"
CERT_PASSWORD_ENV = "AGII_SYNC_CERT_PASSWORD"
PLAINTEXT_CACHE_ENV = "AGII_SYNC_ALLOW_PLAINTEXT_TOKEN_CACHE"
# For tests only: an identity provider on a loopback https address instead of Entra ID.
TEST_LOGIN_HOST_ENV = "AGII_SYNC_TEST_LOGIN_HOST"
ROWKEY_ENTRY = "rowkey-secret"
CERT_KEY_ENTRY = "certificate-key"
CERT_PASSWORD_ENTRY = "certificate-password"
TOKEN_CACHE_ENTRY = "token-cache"  # where older versions kept the token cache; logout clears it
SECRET_ENTRIES = (ROWKEY_ENTRY, CERT_KEY_ENTRY, CERT_PASSWORD_ENTRY, TOKEN_CACHE_ENTRY)
TOKEN_CACHE_FILE = "msal-token-cache.bin"
REFRESH_MARGIN_SECONDS = 120
LOGIN_HOST = "https://login.microsoftonline.com"

TokenProvider = Callable[[], dict[str, Any]]
AppFactory = Callable[..., Any]


class KeyringUnavailable(SecretMissing):
    """No usable OS keyring here (headless cron, the ``fail``/``null`` backend)."""


class KeyringFailed(AuthFailure):
    """The keyring backend refused (a size limit, a locked store, no backend when storing)."""


@dataclass(frozen=True)
class _Secret:
    entry: str
    env: str
    label: str
    exit_code: ExitCode  # when it is missing


ROWKEY = _Secret(ROWKEY_ENTRY, ROWKEY_ENV, "row-key secret", ExitCode.USAGE)
# Without its key the app cannot sign in: an authentication failure (exit 4).
CERT_KEY = _Secret(CERT_KEY_ENTRY, CERT_KEY_ENV, "certificate private key", ExitCode.AUTH)


# --- secrets ------------------------------------------------------------------------------


def rowkey_secret() -> bytes:
    return _read_secret(ROWKEY).encode("utf-8")


def certificate_key() -> str:
    return _read_secret(CERT_KEY)


def _read_secret(secret: _Secret) -> str:
    value = _environment(secret.env)
    if value is not None:
        return value
    try:
        value = _keyring_get(secret.entry)
    except KeyringUnavailable as exc:
        raise _missing(
            KeyringUnavailable(
                f"the {secret.label} is not set and {exc.message}: set {secret.env} in the "
                "environment, or run `agii-sync login` on a machine with a keyring",
                hint="for cron, load the variable from a file only that account can read",
            ),
            secret,
        ) from None
    if not value or value.isspace():
        raise _missing(
            SecretMissing(
                f"the {secret.label} is not set: set {secret.env} or run `agii-sync login`",
                hint=f"`agii-sync login` stores it in the OS keyring (service {SERVICE!r})",
            ),
            secret,
        )
    return value


def _environment(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value and not value.isspace() else None  # blank is not set


def _missing(error: SecretMissing, secret: _Secret) -> SecretMissing:
    error.exit_code = secret.exit_code
    return error


# What to use instead when the keyring cannot keep an entry.
# Windows Credential Manager's limit per entry (CRED_MAX_CREDENTIAL_BLOB_SIZE, Microsoft Learn
# "CREDENTIALW structure"); keyring stores the text there as UTF-16, and the backend raises its
# platform's own error past it, not a KeyringError.
CREDENTIAL_MANAGER_MAX_BYTES = 2560

ALTERNATIVES = {
    ROWKEY_ENTRY: f"set {ROWKEY_ENV} in the environment instead",
    CERT_KEY_ENTRY: f"set {CERT_KEY_ENV} (PEM text) or [auth] certificate_path (a PEM/PFX file)",
    CERT_PASSWORD_ENTRY: f"set {CERT_PASSWORD_ENV} in the environment instead",
    TOKEN_CACHE_ENTRY: "nothing is needed: the token cache is kept in a file now",
}


def store_secret(name: str, value: str) -> None:
    _known_entry(name)
    if not value:
        raise ValueError(f"refusing to store an empty {name}")
    try:
        backend = _usable_keyring()
    except KeyringUnavailable as exc:
        raise KeyringFailed(
            f"{name} was not stored: {exc.message}", hint=ALTERNATIVES[name]
        ) from None
    try:
        backend.set_password(SERVICE, name, value)
    except Exception as exc:  # noqa: BLE001 - a backend's errors are its own (size limits...)
        what = f"did not store {name}"
        if len(value.encode("utf-16-le")) > CREDENTIAL_MANAGER_MAX_BYTES:
            what += (
                "; it is too big for Windows Credential Manager "
                f"(at most {CREDENTIAL_MANAGER_MAX_BYTES} bytes per entry)"
            )
        raise _backend_failed(what, exc, ALTERNATIVES[name]) from None


def delete_secret(name: str) -> bool:
    """Remove one of our keyring entries; False when it was not there (or there is no keyring,
    so nothing can be there)."""
    from keyring.errors import PasswordDeleteError

    _known_entry(name)
    try:
        backend = _usable_keyring()
    except KeyringUnavailable:
        return False
    try:
        backend.delete_password(SERVICE, name)
    except PasswordDeleteError:
        return False
    except Exception as exc:  # noqa: BLE001
        raise _backend_failed(
            f"did not remove {name}", exc, "remove it with the OS's own tool"
        ) from None
    return True


def logout() -> list[str]:
    """Remove every entry of ours from the keyring, and the token cache; returns what was there."""
    removed = [name for name in SECRET_ENTRIES if delete_secret(name)]
    if remove_token_cache():
        removed.append("token cache")
    return removed


def _known_entry(name: str) -> None:
    if name not in SECRET_ENTRIES:
        raise ValueError(f"unknown secret {name!r}; one of {', '.join(SECRET_ENTRIES)}")


def _keyring_get(name: str) -> str | None:
    from keyring.errors import NoKeyringError

    backend = _usable_keyring()
    try:
        return backend.get_password(SERVICE, name)
    except NoKeyringError:
        raise _no_keyring() from None
    except Exception as exc:  # noqa: BLE001
        raise _backend_failed("could not be read", exc, ALTERNATIVES[name]) from None


def _backend_failed(what: str, exc: Exception, alternative: str) -> KeyringFailed:
    """Only the class of the backend's error: its text may quote the entry."""
    return KeyringFailed(f"the OS keyring {what} ({type(exc).__name__})", hint=alternative)


def _usable_keyring() -> KeyringBackend:
    import keyring
    from keyring.errors import KeyringError

    try:
        backend = keyring.get_keyring()
    except (KeyringError, RuntimeError):
        raise _no_keyring() from None
    if _is_unusable(backend):
        raise _no_keyring()
    return backend


def _is_unusable(backend: KeyringBackend) -> bool:
    from keyring.backends import chainer, fail, null

    # fail raises on every call, null silently forgets, an empty chainer behaves like null.
    if isinstance(backend, fail.Keyring | null.Keyring):
        return True
    return isinstance(backend, chainer.ChainerBackend) and not backend.backends


def _no_keyring() -> KeyringUnavailable:
    return KeyringUnavailable(
        "this machine has no usable OS keyring (a headless session or cron?)",
        hint=_environment_hint(),
    )


def _environment_hint() -> str:
    return (
        f"set {ROWKEY_ENV} and, for certificate sign-in, {CERT_KEY_ENV} (PEM text) or "
        "[auth] certificate_path (a PEM/PFX file) instead"
    )


# --- tokens -------------------------------------------------------------------------------


class CachedTokenProvider:
    """Hands out one token until shortly before it expires, then fetches a new one.

    Thread-safe: several sites (and threads) share one provider and at most one fetch runs.
    """

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any]],
        *,
        clock: Callable[[], float] = time.monotonic,
        margin_seconds: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = margin_seconds
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.account: str | None = None  # the person signed in (UPN), once a token is fetched

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._expires_at - self._margin:
                result = self._fetch()
                self._token = result["access_token"]
                self._expires_at = now + int(result.get("expires_in", 0))
                self.account = signed_in_account(result) or self.account
            return {
                "access_token": self._token,
                "token_type": "Bearer",
                "expires_in": max(0, round(self._expires_at - now)),
            }

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"  # never the token


def sharepoint_resource(site_url: str) -> str:
    """``https://agii.sharepoint.com/sites/x`` → ``https://agii.sharepoint.com``."""
    try:
        site = parse_http_site(site_url)
    except ValueError as exc:
        raise ConfigError(f"site URL: {exc}") from None
    if site.kind != "sharepoint":
        raise ConfigError("not a SharePoint Online site (https://…)")
    return site.origin


def token_provider(
    auth: AuthSection,
    resource: str,
    *,
    prompt: Callable[[str], None],
    certificate_file: Path | None = None,
) -> CachedTokenProvider:
    """The provider for ``auth.method``; ``prompt`` shows the device-code instructions;
    ``certificate_file`` is ``[auth] certificate_path`` resolved against the config."""
    if auth.method == "certificate":
        return certificate_token_provider(auth, resource, certificate_file=certificate_file)
    return device_code_token_provider(auth, resource, prompt=prompt)


def signed_in_account(result: Mapping[str, Any]) -> str | None:
    """The person's account (UPN) from a token result's ID token claims; None for an app."""
    claims = result.get("id_token_claims") or {}
    account = result.get("account") or {}
    name = claims.get("preferred_username") or claims.get("upn") or account.get("username")
    if isinstance(name, str) and re.fullmatch(r"[^\s\x00-\x1f\x7f]{1,256}", name):
        return name
    return None


# --- certificate (app-only) -----------------------------------------------------------------


def certificate_credential(auth: AuthSection, certificate_file: Path | None) -> dict[str, Any]:
    """msal's ``client_credential``: a PEM/PFX file when ``[auth] certificate_path`` names one
    (its password from the environment or the keyring), else the PEM key from the environment
    or the keyring. The key is checked to load now, so a wrong password fails early (exit 4)."""
    if certificate_file is None:
        if not auth.certificate_thumbprint:
            raise ConfigError("[auth] certificate_thumbprint is needed for method 'certificate'")
        return {"thumbprint": auth.certificate_thumbprint, "private_key": certificate_key()}
    data = _read_certificate_file(certificate_file)
    password = certificate_password()
    if is_pfx(certificate_file):
        _check_pfx(certificate_file, data, password)
        credential: dict[str, Any] = {"private_key_pfx_path": str(certificate_file)}
    else:
        _check_pem(certificate_file, data, password)
        if not auth.certificate_thumbprint:
            raise ConfigError("[auth] certificate_thumbprint is needed with a PEM certificate_path")
        credential = {"thumbprint": auth.certificate_thumbprint, "private_key": data.decode()}
    if password:
        credential["passphrase"] = password
    return credential


def is_pfx(path: Path) -> bool:
    return path.suffix.lower() in (".pfx", ".p12")


def certificate_password() -> str | None:
    """The certificate file's password: the environment, else the keyring, else none."""
    value = _environment(CERT_PASSWORD_ENV)
    if value is not None:
        return value
    try:
        return _keyring_get(CERT_PASSWORD_ENTRY) or None
    except KeyringUnavailable:
        return None


def _read_certificate_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuthFailure(
            f"[auth] certificate_path {path}: cannot read it ({type(exc).__name__})",
            hint="give a PEM or PFX file this account can read",
        ) from None


def _check_pem(path: Path, data: bytes, password: str | None) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError):
        raise _unreadable_key(path, password) from None


def _check_pfx(path: Path, data: bytes, password: str | None) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, _cert, _more = pkcs12.load_key_and_certificates(
            data, password.encode() if password else None
        )
    except (ValueError, TypeError):
        raise _unreadable_key(path, password) from None
    if key is None:
        raise AuthFailure(f"[auth] certificate_path {path}: the file holds no private key")


def _unreadable_key(path: Path, password: str | None) -> AuthFailure:
    given = "the password given does not open it" if password else "no password was given"
    return AuthFailure(
        f"[auth] certificate_path {path}: not a readable private key ({given})",
        hint=f"set {CERT_PASSWORD_ENV}, or store the password with "
        "`agii-sync login --certificate-password-stdin`",
    )


def certificate_token_provider(
    auth: AuthSection,
    resource: str,
    *,
    certificate_file: Path | None = None,
    app_factory: AppFactory | None = None,
) -> CachedTokenProvider:
    """App-only tokens with the certificate; the key is read now, so a missing one fails early."""
    credential = certificate_credential(auth, certificate_file)
    scopes = [_scope(resource)]
    app: Any = None

    def fetch() -> Mapping[str, Any]:
        nonlocal app
        if app is None:  # msal discovers the tenant over the network when built
            factory = app_factory or _msal().ConfidentialClientApplication
            app = _call_msal(
                lambda: factory(auth.client_id, client_credential=credential, **_authority(auth))
            )
        result = _call_msal(lambda: app.acquire_token_for_client(scopes=scopes))
        return _token_or_failure(result, hint=_certificate_hint())

    return CachedTokenProvider(fetch)


# --- device code (a person) -----------------------------------------------------------------


def device_code_token_provider(
    auth: AuthSection,
    resource: str,
    *,
    prompt: Callable[[str], None],
    app_factory: AppFactory | None = None,
    must_keep: bool = False,
) -> CachedTokenProvider:
    """A person's token: silently from the token cache, else by device code. ``must_keep``
    (``login``): refuse before any prompt when the token cache cannot be kept."""
    scopes = [_scope(resource)]
    app: Any = None
    shown = prompt

    def fetch() -> Mapping[str, Any]:
        nonlocal app, shown
        if app is None:
            cache = open_token_cache(auth, must_keep=must_keep)
            if not isinstance(cache, _persisted_cache_class()):
                shown = _with_note(prompt, NOT_KEPT_NOTE)
            factory = app_factory or _msal().PublicClientApplication
            app = _call_msal(lambda: factory(auth.client_id, token_cache=cache, **_authority(auth)))
        result = _acquire_silent(app, scopes) or _acquire_by_device_code(app, scopes, shown)
        return _token_or_failure(result, hint="run again and finish the sign-in in the browser")

    return CachedTokenProvider(fetch)


def _acquire_silent(app: Any, scopes: list[str]) -> Mapping[str, Any] | None:
    accounts = _call_msal(app.get_accounts)
    if not accounts:
        return None
    result = _call_msal(lambda: app.acquire_token_silent(scopes, account=accounts[0]))
    if not result or "access_token" not in result:
        return None
    # A token from the cache comes without ID token claims: the account names the person.
    return {**result, "account": accounts[0]}


def _acquire_by_device_code(
    app: Any, scopes: list[str], prompt: Callable[[str], None]
) -> Mapping[str, Any]:
    flow: dict[str, Any] = _call_msal(lambda: app.initiate_device_flow(scopes=scopes))
    if "user_code" not in flow:
        return flow  # an error result; _token_or_failure reports its code
    prompt(device_code_message(flow))
    result: Mapping[str, Any] = _call_msal(lambda: app.acquire_token_by_device_flow(flow))
    return result


NOT_KEPT_NOTE = (
    "This sign-in is not kept (no encrypted store for the token cache here); set "
    f"[auth] allow_plaintext_token_cache = true or {PLAINTEXT_CACHE_ENV}=1 to keep it in a file"
)


def _with_note(prompt: Callable[[str], None], note: str) -> Callable[[str], None]:
    return lambda message: prompt(f"{message}\n{note}")


def _persisted_cache_class() -> type:
    from msal_extensions import PersistedTokenCache

    cache_class: type = PersistedTokenCache
    return cache_class


def device_code_message(flow: Mapping[str, Any]) -> str:
    """What the person must do, in our words: the identity provider's own message is only
    shown when the flow lacks the two fields (it says the same in the tenant's language)."""
    url = flow.get("verification_uri") or flow.get("verification_url")
    code = flow.get("user_code")
    if not (isinstance(url, str) and isinstance(code, str)):
        return str(flow.get("message") or "finish the sign-in in a browser")
    return f"To sign in, open {url} in a browser and enter the code {code}"


# --- the token cache ------------------------------------------------------------------------


class PlaintextCacheRefused(AuthFailure):
    """No encrypted store for the token cache here, and no opt-in to a plain-text file."""


def token_cache_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("agii-sync", appauthor=False)) / TOKEN_CACHE_FILE


def plaintext_allowed(auth: AuthSection) -> bool:
    return auth.allow_plaintext_token_cache or _environment(PLAINTEXT_CACHE_ENV) in ("1", "true")


def open_token_cache(auth: AuthSection, *, must_keep: bool = False) -> msal.SerializableTokenCache:
    """msal-extensions' persisted cache, encrypted by the platform (DPAPI on Windows, the
    Keychain on macOS, libsecret on Linux). Without such a store, a plain-text file (mode 0600)
    only when the user opted in; otherwise the cache lives in memory for this run (a warning;
    the person signs in again next time) or, with ``must_keep`` (``login``), exit 4."""
    from msal_extensions import PersistedTokenCache

    try:
        return PersistedTokenCache(_persistence(auth))
    except PlaintextCacheRefused:
        if must_keep:
            raise
        log.warning("auth.token_cache_in_memory")
        return _msal().SerializableTokenCache()


def _persistence(auth: AuthSection) -> Any:
    from msal_extensions import FilePersistence, build_encrypted_persistence

    location = token_cache_path()
    location.parent.mkdir(parents=True, exist_ok=True)
    try:
        return build_encrypted_persistence(str(location))
    except Exception as exc:  # noqa: BLE001 - ImportError (no gi), no D-Bus, no Keychain...
        reason = type(exc).__name__
    if not plaintext_allowed(auth):
        raise PlaintextCacheRefused(
            f"this machine offers no encrypted store for the sign-in token cache ({reason}); "
            "a plain-text cache is only kept when you allow it",
            hint="set [auth] allow_plaintext_token_cache = true (or "
            f"{PLAINTEXT_CACHE_ENV}=1) to keep it in {location} (only you can read it), or "
            "sign in again at every run",
        )
    log.warning("auth.token_cache_plaintext")
    return FilePersistence(str(location))


def remove_token_cache() -> bool:
    """Delete the token cache (and the encrypted store's entry behind it); True when there
    was one."""
    location = token_cache_path()
    if not location.exists():
        return False
    try:
        from msal_extensions import build_encrypted_persistence

        build_encrypted_persistence(str(location)).save(
            "{}"
        )  # the secret itself, not only the file
    except Exception:  # noqa: BLE001, S110 - no encrypted store: the file holds it all
        pass
    for path in (location, location.with_name(location.name + ".lockfile")):
        path.unlink(missing_ok=True)
    return True


# --- msal -----------------------------------------------------------------------------------


def _msal() -> Any:
    import msal

    return msal


def _call_msal(call: Callable[[], Any]) -> Any:
    import requests
    from msal_extensions.persistence import PersistenceError

    try:
        return call()
    except requests.RequestException as exc:
        raise TemporaryFailure(
            f"cannot reach the Microsoft sign-in service ({type(exc).__name__})",
            hint="check the network and run again",
        ) from None
    except PersistenceError as exc:
        raise AuthFailure(
            f"the token cache could not be kept ({type(exc).__name__})",
            hint=f"run `agii-sync logout` and sign in again; or set {PLAINTEXT_CACHE_ENV}=1",
        ) from None
    except ValueError as exc:
        # msal raises ValueError for an unknown tenant or an unreadable key; its text may
        # quote configuration, so only the class is shown.
        raise AuthFailure(
            f"msal refused the sign-in setup ({type(exc).__name__})",
            hint="check [auth] tenant and client_id, and the certificate key",
        ) from None


def _token_or_failure(result: Mapping[str, Any] | None, *, hint: str) -> Mapping[str, Any]:
    if result and result.get("access_token"):
        return result
    raise AuthFailure(f"sign-in failed: {_error_code(result)}", hint=hint)


def _error_code(result: Mapping[str, Any] | None) -> str:
    """msal's error code and AADSTS numbers only: descriptions can name the account."""
    if not result:
        return "no_result"
    error = str(result.get("error") or "unknown_error")
    code = error if re.fullmatch(r"[a-z_]{1,64}", error) else "unknown_error"
    numbers = [f"AADSTS{n}" for n in result.get("error_codes") or [] if isinstance(n, int)]
    return f"{code} ({', '.join(numbers)})" if numbers else code


def _certificate_hint() -> str:
    return (
        "check [auth] tenant, client_id and certificate_thumbprint, that the certificate is "
        f"uploaded to the app registration, and the key ({CERT_KEY_ENV}, the keyring or "
        "[auth] certificate_path)"
    )


def _authority(auth: AuthSection) -> dict[str, Any]:
    """msal's ``authority`` (and, for a test identity provider on loopback, no instance
    discovery: msal would ask Entra ID whether that host is a known authority)."""
    test_host = test_seam_origin(TEST_LOGIN_HOST_ENV)
    if test_host is None:
        return {"authority": f"{LOGIN_HOST}/{auth.tenant}"}
    return {"authority": f"{test_host}/{auth.tenant}", "instance_discovery": False}


def _scope(resource: str) -> str:
    return f"{resource.rstrip('/')}/.default"
