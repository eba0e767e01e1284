"""The suppression list: people who objected (GDPR art. 21) or asked for erasure (art. 17),
kept on AgII's side (docs/protocol.md, rights of the people).

One JSON object per line: the person's key (``rowkey.person_key``: a keyed hash, never the
dossier number), the request (``objection`` or ``erasure``), the day it was recorded, and the
person's Rij-ID per municipality configured then. ``push`` never shares a listed person again
and removes them, like ``purge``, from every site; the row IDs let ``purge`` find them without
an export.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from filelock import FileLock

from .errors import SafetyStop

Request = Literal["objection", "erasure"]


@dataclass(frozen=True)
class Suppression:
    person: str
    request: Request
    recorded: date
    row_ids: dict[str, str] = field(default_factory=dict)  # municipality id → Rij-ID

    def to_json(self) -> str:
        doc = {
            "person": self.person,
            "request": self.request,
            "recorded": self.recorded.isoformat(),
            "row_ids": dict(sorted(self.row_ids.items())),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))


class SuppressionList:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: list[Suppression] | None = None

    def entries(self) -> list[Suppression]:
        if self._entries is None:
            self._entries = _read(self.path)
        return self._entries

    def persons(self) -> frozenset[str]:
        return frozenset(e.person for e in self.entries())

    def row_ids(self, site_id: str) -> frozenset[str]:
        return frozenset(e.row_ids[site_id] for e in self.entries() if site_id in e.row_ids)

    def add(self, entry: Suppression) -> bool:
        """Append ``entry``; False when the person was already listed (nothing written)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(self.path.with_name(self.path.name + ".lock"), timeout=30):
            self._entries = _read(self.path)
            if entry.person in self.persons():
                return False
            with open(self.path, "a", encoding="ascii") as file:
                file.write(entry.to_json() + "\n")
                file.flush()
                os.fsync(file.fileno())
            self._entries.append(entry)
            return True


def _read(path: Path) -> list[Suppression]:
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            entries.append(
                Suppression(
                    str(doc["person"]),
                    doc["request"],
                    date.fromisoformat(doc["recorded"]),
                    {str(k): str(v) for k, v in doc.get("row_ids", {}).items()},
                )
            )
        except (ValueError, KeyError, TypeError):
            raise SafetyStop(
                f"{path}: line {number} of the suppression list is not readable",
                hint="restore it from the backup: without it, forgotten people would be shared "
                "again",
            ) from None
    return entries
