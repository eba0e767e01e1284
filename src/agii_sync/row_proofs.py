"""The row proofs of each site, kept beside the audit trail (domain/proof.py; docs/workbook.md):
Rij-ID → two keyed digests, no value. A person removed from the workbook (by push, purge or at
the protocol's end) is removed from here in the same run; an unreadable file is as good as none
(every row is then validated, as on a first push).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .atomic import write_atomically
from .domain.proof import PROOF_BYTES, Stored
from .status_memory import read_site_file

_HEX = 2 * PROOF_BYTES


class RowProofs:
    def __init__(self, audit_log: Path) -> None:
        self.folder = audit_log.with_name(audit_log.name + ".proofs")
        # What this run read or wrote: a push that changes nothing has nothing to write.
        self._read: dict[str, Stored] = {}

    def _path(self, site: str) -> Path:
        return self.folder / f"{site}.json"

    def read(self, site: str) -> dict[str, tuple[bytes, bytes | None]]:
        data = read_site_file(self._path(site))
        found = {str(k): pair for k, v in data.items() if (pair := _pair(v)) is not None}
        self._read[site] = found
        return found

    def replace(self, site: str, proofs: Stored) -> None:
        """The site's rows now are those of ``proofs`` (after a push; none: at the end)."""
        if not proofs:
            self._path(site).unlink(missing_ok=True)
        elif proofs != self._read.get(site):
            self._write(site, proofs)
        self._read[site] = dict(proofs)

    def forget(self, site: str, row_ids: Iterable[str]) -> None:
        """These rows left the workbook (after a purge)."""
        gone = set(row_ids)
        if not gone or not self._path(site).exists():
            return
        kept = {k: v for k, v in self.read(site).items() if k not in gone}
        self.replace(site, kept)

    def _write(self, site: str, proofs: Stored) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {row_id: raw.hex() + (cells or b"").hex() for row_id, (raw, cells) in proofs.items()}
        content = json.dumps(data, sort_keys=True).encode("utf-8")
        write_atomically(self._path(site), content, temp_prefix=f".{site}.")


def _pair(value: object) -> tuple[bytes, bytes | None] | None:
    """``raw`` + ``cells`` in hex, or ``raw`` alone (a row past retention)."""
    if not isinstance(value, str) or len(value) not in (_HEX, 2 * _HEX):
        return None
    try:
        both = bytes.fromhex(value)
    except ValueError:
        return None
    return both[:PROOF_BYTES], both[PROOF_BYTES:] or None


def raw_digests(stored: Iterable[Stored]) -> frozenset[bytes]:
    return frozenset(raw for proofs in stored for raw, _ in proofs.values())
