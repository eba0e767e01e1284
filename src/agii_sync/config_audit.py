"""Proof of the configuration in force (docs/protocol.md, art. 6).

Every audit line carries ``config``: the sha256 of the effective configuration (defaults
filled in, the config file's own path left out), so each run can be tied to the rules it ran
under. When the hash differs from the one of the previous run, a ``config`` audit line says
which keys changed: with their old and new values where those are not personal data (dates,
retention, the end and its reason, flags, sites), by key only where they could be (``allowed``
entries name staff, ``dpo`` and contact addresses name people). The last configuration seen is
kept beside the trail in ``<audit_log>.config`` (only that map: personal values as hashes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomic import write_atomically
from .config import Config

PERSONAL_KEYS = frozenset({"allowed", "dpo", "data_errors_contact"})


def effective(config: Config) -> dict[str, Any]:
    doc = config.model_dump(mode="json", by_alias=True, exclude={"source"})
    return doc


def config_hash(config: Config) -> str:
    text = json.dumps(effective(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def flatten(config: Config) -> dict[str, Any]:
    """``key → value`` for every setting; a personal value is replaced by a hash of it, so a
    change shows without the value."""
    doc = effective(config)
    flat: dict[str, Any] = {}
    for section in ("agii", "auth", "workbook"):
        for key, value in (doc.get(section) or {}).items():
            flat[f"{section}.{key}"] = _shown(key, value)
    for m in doc["municipality"]:
        for key, value in m.items():
            flat[f"municipality[{m['id']}].{key}"] = _shown(key, value)
    return flat


def _shown(key: str, value: Any) -> Any:
    if key in PERSONAL_KEYS and value is not None:
        text = json.dumps(value, sort_keys=True)
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return value


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The keys that differ; ``old``/``new`` only for values that are not personal data."""
    found = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        change: dict[str, Any] = {"key": key}
        if key.rsplit(".", 1)[-1] not in PERSONAL_KEYS:
            change.update(old=old, new=new)
        found.append(change)
    return found


class ConfigState:
    """The configuration a trail last recorded; ``change_event`` tells what differs now."""

    def __init__(self, trail: Path, config: Config) -> None:
        self.path = trail.with_name(trail.name + ".config")
        self.hash = config_hash(config)
        self.flat = flatten(config)

    def change_event(self, actor: str) -> dict[str, Any] | None:
        """The audit event for a change since the last recorded configuration (the first
        run records every key), or None. Called under the trail's lock."""
        previous = self._read()
        if previous is not None and previous.get("hash") == self.hash:
            return None
        before = previous.get("keys", {}) if previous else {}
        changed = changes(before, self.flat)
        return {  # the shape of every audit line (audit.audit_event), plus the changes
            "actor": actor,
            "command": "config",
            "site": None,
            "etag_before": None,
            "etag_after": None,
            "counts": {"changed": len(changed)},
            "rows": [],
            "previous_config": previous.get("hash") if previous else None,
            "changes": changed,
        }

    def recorded(self) -> None:
        doc = {"hash": self.hash, "keys": self.flat}
        write_atomically(self.path, json.dumps(doc, sort_keys=True).encode("utf-8"))

    def _read(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None
