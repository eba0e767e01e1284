"""The ``Rij-ID`` (docs/workbook.md): a pseudonymous key for one person in one municipality.

``HMAC-SHA256(secret, "<nis>:<DOSSIER>")`` over UTF-8, where ``nis`` is exactly five ASCII
digits (so the first ``:`` always ends it and no two (nis, dossier) pairs share a message) and
``DOSSIER`` is the dossier number stripped and upper-cased. The first 50 bits of the digest,
in Crockford base32, are shown as ``XXXXX-XXXXX``. Because the NIS code is inside the MAC, the
same person has unrelated keys in two municipalities; without the secret the key reveals
nothing about the dossier number.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KEY_BITS = 50


def row_key(secret: bytes, nis: str, dossier: str) -> str:
    if not secret:
        raise ValueError("the row-key secret is empty")
    if not (len(nis) == 5 and nis.isascii() and nis.isdigit()):
        raise ValueError("nis must be five digits")
    message = f"{nis}:{normalize_dossier(dossier)}".encode()
    digest = hmac.digest(secret, message, "sha256")  # one-shot: the C implementation
    return _shown(digest)


KEY_CHECK_SALT = b"agii-sync row-key check"
KEY_CHECK_ROUNDS = 200_000  # slow on purpose: the check value must not help guess the secret


@lru_cache(maxsize=4)
def key_check(secret: bytes) -> str:
    """A value that tells whether two secrets are the same without revealing either: stored in
    each workbook, so a push with another secret (which would re-key every row and drop every
    status) is refused. Slow (PBKDF2), so it is no shortcut for trying secrets."""
    digest = hashlib.pbkdf2_hmac("sha256", secret, KEY_CHECK_SALT, KEY_CHECK_ROUNDS)
    return _shown(digest)


def normalize_dossier(dossier: str) -> str:
    return dossier.strip().upper()


_PAIRS = tuple(a + b for a in CROCKFORD_ALPHABET for b in CROCKFORD_ALPHABET)  # 10 bits each


def _shown(digest: bytes) -> str:
    """The first ``KEY_BITS`` bits of ``digest`` as ``XXXXX-XXXXX`` (Crockford base32)."""
    bits = int.from_bytes(digest[:7], "big") >> (7 * 8 - KEY_BITS)
    return f"{_group(bits >> 25)}-{_group(bits & 0x1FFFFFF)}"


def _group(bits: int) -> str:
    """25 bits as five symbols, most significant first."""
    return _PAIRS[bits >> 15] + _PAIRS[(bits >> 5) & 0x3FF] + CROCKFORD_ALPHABET[bits & 0x1F]


def person_key(secret: bytes, dossier: str) -> str:
    """The key of a person on the suppression list (``forget``): HMAC-SHA256 of
    ``"person:<DOSSIER>"``, in hex. The same in every municipality (a request covers them all),
    never the dossier number; ``person:`` cannot start a Rij-ID's message (five digits do)."""
    if not secret:
        raise ValueError("the row-key secret is empty")
    message = f"person:{normalize_dossier(dossier)}".encode()
    return hmac.digest(secret, message, "sha256").hex()
