"""Secrets and sign-in (README, Config, docs/sharepoint.md).

Secrets come from the environment first, then the OS keyring (service ``agii-sync``): the
row-key secret, the certificate's PEM private key and the delegated token cache. They never
appear in a message, a log line or an exception's text.

Sign-in to SharePoint is app-only with a certificate (cron) or a person's device-code flow.
Client secrets and the retired ACS path are deliberately not offered. Loopback emulator sites
use a dummy token chosen by the caller, not this module.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import keyring
import msal
import requests
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringError, NoKeyringError, PasswordDeleteError

from .config import AuthSection
from .errors import AuthFailure, ConfigError, ExitCode, SecretMissing, TemporaryFailure
from .siteurl import parse_http_site

log = logging.getLogger(__name__)

SERVICE = "agii-sync"
ROWKEY_ENV = "AGII_SYNC_ROWKEY_SECRET"
ROWKEY_MIN_LENGTH = 16  # below this `login` warns: dossier numbers are few enough to try all
CERT_KEY_ENV = "AGII_SYNC_CERT_KEY"
ROWKEY_ENTRY = "rowkey-secret"
CERT_KEY_ENTRY = "certificate-key"
TOKEN_CACHE_ENTRY = "token-cache"
SECRET_ENTRIES = (ROWKEY_ENTRY, CERT_KEY_ENTRY, TOKEN_CACHE_ENTRY)
REFRESH_MARGIN_SECONDS = 120
LOGIN_HOST = "https://login.microsoftonline.com"

TokenProvider = Callable[[], dict[str, Any]]
AppFactory = Callable[..., Any]


class KeyringUnavailable(SecretMissing):
    """No usable OS keyring here (headless cron, the ``fail``/``null`` backend)."""


class KeyringRefused(AuthFailure):
    """The OS keyring would not store a secret: Windows Credential Manager holds at most
    2,560 bytes per entry (``CRED_MAX_CREDENTIAL_BLOB_SIZE``, Microsoft Learn "CREDENTIALW
    structure"), and its backend raises its own error (``pywintypes.error`` 1783, "The stub
    received bad data"), not a ``KeyringError``."""


# Windows Credential Manager's limit per entry; keyring stores the text there as UTF-16.
CREDENTIAL_MANAGER_MAX_BYTES = 2560


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
    value = os.environ.get(secret.env)
    if value and not value.isspace():  # blank is not set (the value itself is used as is)
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


def _missing(error: SecretMissing, secret: _Secret) -> SecretMissing:
    error.exit_code = secret.exit_code
    return error


def store_secret(name: str, value: str) -> None:
    _known_entry(name)
    if not value:
        raise ValueError(f"refusing to store an empty {name}")
    backend = _usable_keyring()
    try:
        backend.set_password(SERVICE, name, value)
    except KeyringError as exc:
        raise KeyringUnavailable(
            f"the OS keyring did not store {name} ({type(exc).__name__})",
            hint=_environment_hint(),
        ) from None
    except Exception as exc:  # noqa: BLE001 - a backend raises its platform's own errors
        raise _refused(name, value, exc) from None


def _refused(name: str, value: str, exc: Exception) -> KeyringRefused:
    why = f"the OS keyring refused to store the {name} ({type(exc).__name__})"
    if len(value.encode("utf-16-le")) > CREDENTIAL_MANAGER_MAX_BYTES:
        why += (
            f"; it is too big for Windows Credential Manager "
            f"(at most {CREDENTIAL_MANAGER_MAX_BYTES} bytes per entry)"
        )
    alternative = {
        ROWKEY_ENTRY: f"set {ROWKEY_ENV} in the environment instead",
        CERT_KEY_ENTRY: f"keep the key out of the keyring: set {CERT_KEY_ENV} (PEM text) in "
        "the environment instead",
    }.get(name, "sign in again next time, or run where the keyring can hold it")
    return KeyringRefused(why, hint=alternative)


def delete_secret(name: str) -> bool:
    """Remove one of our keyring entries; False when it was not there."""
    _known_entry(name)
    backend = _usable_keyring()
    try:
        backend.delete_password(SERVICE, name)
    except PasswordDeleteError:
        return False
    except KeyringError as exc:
        raise KeyringUnavailable(
            f"the OS keyring did not remove {name} ({type(exc).__name__})"
        ) from None
    return True


def logout() -> list[str]:
    """Remove every entry of ours from the keyring; returns the names that were there."""
    return [name for name in SECRET_ENTRIES if delete_secret(name)]


def _known_entry(name: str) -> None:
    if name not in SECRET_ENTRIES:
        raise ValueError(f"unknown secret {name!r}; one of {', '.join(SECRET_ENTRIES)}")


def _keyring_get(name: str) -> str | None:
    backend = _usable_keyring()
    try:
        return backend.get_password(SERVICE, name)
    except NoKeyringError:
        raise _no_keyring() from None
    except KeyringError as exc:
        raise KeyringUnavailable(
            f"the OS keyring could not be read ({type(exc).__name__})",
            hint=_environment_hint(),
        ) from None


def _usable_keyring() -> KeyringBackend:
    try:
        backend = keyring.get_keyring()
    except (KeyringError, RuntimeError):
        raise _no_keyring() from None
    if _is_unusable(backend):
        raise _no_keyring()
    return backend


def _is_unusable(backend: KeyringBackend) -> bool:
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
        f"set {ROWKEY_ENV} and, for certificate sign-in, {CERT_KEY_ENV} (PEM text) in the "
        "environment instead"
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

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._expires_at - self._margin:
                result = self._fetch()
                self._token = result["access_token"]
                self._expires_at = now + int(result.get("expires_in", 0))
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
    auth: AuthSection, resource: str, *, prompt: Callable[[str], None]
) -> CachedTokenProvider:
    """The provider for ``auth.method``; ``prompt`` shows the device-code instructions."""
    if auth.method == "certificate":
        return certificate_token_provider(auth, resource)
    return device_code_token_provider(auth, resource, prompt=prompt)


def certificate_token_provider(
    auth: AuthSection, resource: str, *, app_factory: AppFactory | None = None
) -> CachedTokenProvider:
    """App-only tokens with the certificate; the key is read now, so a missing one fails early."""
    if not auth.certificate_thumbprint:
        raise ConfigError("[auth] certificate_thumbprint is needed for method 'certificate'")
    credential = {"thumbprint": auth.certificate_thumbprint, "private_key": certificate_key()}
    factory = app_factory or msal.ConfidentialClientApplication
    scopes = [_scope(resource)]
    app: Any = None

    def fetch() -> Mapping[str, Any]:
        nonlocal app
        if app is None:  # msal discovers the tenant over the network when built
            app = _call_msal(
                lambda: factory(
                    auth.client_id, authority=_authority(auth), client_credential=credential
                )
            )
        result = _call_msal(lambda: app.acquire_token_for_client(scopes=scopes))
        return _token_or_failure(result, hint=_certificate_hint())

    return CachedTokenProvider(fetch)


def device_code_token_provider(
    auth: AuthSection,
    resource: str,
    *,
    prompt: Callable[[str], None],
    app_factory: AppFactory | None = None,
) -> CachedTokenProvider:
    """A person's token: silently from the keyring's token cache, else by device code."""
    factory = app_factory or msal.PublicClientApplication
    scopes = [_scope(resource)]
    cache: msal.SerializableTokenCache | None = None
    app: Any = None

    def fetch() -> Mapping[str, Any]:
        nonlocal app, cache
        if app is None:
            cache = _load_token_cache()
            app = _call_msal(
                lambda: factory(auth.client_id, authority=_authority(auth), token_cache=cache)
            )
        result = _acquire_silent(app, scopes) or _acquire_by_device_code(app, scopes, prompt)
        _save_token_cache(cache)
        return _token_or_failure(result, hint="run again and finish the sign-in in the browser")

    return CachedTokenProvider(fetch)


def _acquire_silent(app: Any, scopes: list[str]) -> Mapping[str, Any] | None:
    accounts = _call_msal(app.get_accounts)
    if not accounts:
        return None
    result = _call_msal(lambda: app.acquire_token_silent(scopes, account=accounts[0]))
    return result if result and "access_token" in result else None


def _acquire_by_device_code(
    app: Any, scopes: list[str], prompt: Callable[[str], None]
) -> Mapping[str, Any]:
    flow = _call_msal(lambda: app.initiate_device_flow(scopes=scopes))
    if "user_code" not in flow:
        return flow  # an error result; _token_or_failure reports its code
    prompt(flow["message"])
    return _call_msal(lambda: app.acquire_token_by_device_flow(flow))


def _load_token_cache() -> msal.SerializableTokenCache:
    cache = msal.SerializableTokenCache()
    try:
        serialized = _keyring_get(TOKEN_CACHE_ENTRY)
    except KeyringUnavailable:
        log.warning("auth.token_cache_unavailable")
        return cache
    if serialized:
        try:
            cache.deserialize(serialized)
        except ValueError:
            log.warning("auth.token_cache_unreadable")
            return msal.SerializableTokenCache()
    return cache


def _save_token_cache(cache: msal.SerializableTokenCache | None) -> None:
    if cache is None or not cache.has_state_changed:
        return
    try:
        store_secret(TOKEN_CACHE_ENTRY, cache.serialize())
    except (KeyringUnavailable, KeyringRefused):
        # The run can go on; the person signs in again next time.
        log.warning("auth.token_cache_not_saved")
        return
    cache.has_state_changed = False


def _call_msal(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except requests.RequestException as exc:
        raise TemporaryFailure(
            f"cannot reach the Microsoft sign-in service ({type(exc).__name__})",
            hint="check the network and run again",
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
        f"uploaded to the app registration, and the key in {CERT_KEY_ENV} or the keyring"
    )


def _authority(auth: AuthSection) -> str:
    return f"{LOGIN_HOST}/{auth.tenant}"


def _scope(resource: str) -> str:
    return f"{resource.rstrip('/')}/.default"
