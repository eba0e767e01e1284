"""The last statuses agii-sync saw per site, kept beside the audit trail: Rij-ID → status.

A row that someone deletes by hand from the workbook would otherwise come back on the next
push as a new row without its ``Status activiteit``. With this memory, push restores it with
its last known status and ``check`` reports it missing. Only the Rij-ID and a status from the
list are kept (a hand-typed text could say anything about a person, so it is kept as empty);
a person removed from the workbook by push or purge is removed from the memory too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .atomic import write_atomically
from .domain.codes import listed_status
from .domain.row import SharedRow


class StatusMemory:
    def __init__(self, audit_log: Path) -> None:
        self.folder = audit_log.with_name(audit_log.name + ".statuses")

    def _path(self, site: str) -> Path:
        return self.folder / f"{site}.json"

    def read(self, site: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in read_site_file(self._path(site)).items()}

    def replace(self, site: str, rows: Iterable[SharedRow]) -> None:
        """The workbook now holds exactly ``rows`` (after a push)."""
        statuses = {r.rij_id: _kept(r.status_activiteit) for r in rows}
        if not self._path(site).exists() or statuses != self.read(site):  # else no change
            self._write(site, statuses)

    def merge(self, site: str, rows: Iterable[SharedRow], removed: Iterable[str]) -> None:
        """Statuses of ``rows`` updated, ``removed`` forgotten; others kept (after a
        status-update or purge, which do not restore rows)."""
        known = self.read(site)
        known.update({r.rij_id: _kept(r.status_activiteit) for r in rows})
        for row_id in removed:
            known.pop(row_id, None)
        self._write(site, known)

    def _write(self, site: str, statuses: dict[str, str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        content = json.dumps(statuses, sort_keys=True).encode("utf-8")
        write_atomically(self._path(site), content, temp_prefix=f".{site}.")


def read_site_file(path: Path) -> dict[str, object]:
    """A site's file beside the audit trail, as a JSON object; empty when it is missing or
    unreadable (what it remembers is then as good as unknown)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _kept(status: str) -> str:
    return listed_status(status) or ""
