"""The rights of the people in the data (docs/protocol.md, GDPR art. 15-21): ``forget`` puts
a person on the suppression list; ``audit person`` finds every audit line about a person.

Both take a dossier number on the command line and never repeat it: the suppression list and
the audit trail hold keyed hashes (the person key, the Rij-IDs), never the number itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from ..audit import audit_event, current_actor, read, trail_for
from ..auth import rowkey_secret
from ..config import Config
from ..domain.export import Rejected, clean_text, parse_dossier
from ..domain.rowkey import person_key, row_key
from ..errors import UsageError
from ..suppression import Request, Suppression, SuppressionList


@dataclass(frozen=True)
class Person:
    key: str
    row_ids: dict[str, str]  # municipality id → Rij-ID


def identify(config: Config, dossier: str) -> Person:
    try:
        normalised = parse_dossier(clean_text(dossier))
    except Rejected:
        raise UsageError(
            "DOSSIER is not a dossier number (letters, digits, '-', '/' or '.')"
        ) from None
    secret = rowkey_secret()
    row_ids = {m.id: row_key(secret, m.nis, normalised) for m in config.municipalities}
    return Person(person_key(secret, normalised), row_ids)


@dataclass(frozen=True)
class ForgetReport:
    newly_listed: bool
    sites: int


def forget(config: Config, dossier: str, request: Request, today: date) -> ForgetReport:
    """Put the person on the suppression list (once) and record the request in the audit
    trail; the next push or purge removes them from every site and its old versions."""
    person = identify(config, dossier)
    listed = SuppressionList(config.suppression_list).add(
        Suppression(person.key, request, today, person.row_ids)
    )
    counts = {"newly_listed": int(listed), "sites": len(person.row_ids)}
    _record(config, "forget", person, counts, request=request, row_ids=person.row_ids)
    return ForgetReport(listed, len(person.row_ids))


def person_events(config: Config, dossier: str) -> list[dict[str, Any]]:
    """Every audit line about the person: by person key (forget, earlier access requests) or
    by their Rij-ID on that line's site. The request itself is recorded too."""
    person = identify(config, dossier)
    events = []
    for record in read(config.audit_log):
        event = _about(record, person)
        if event is not None:
            events.append(event)
    _record(config, "audit person", person, {"events": len(events)})
    return events


def _record(
    config: Config, command: str, person: Person, counts: dict[str, int], **fields: Any
) -> None:
    """An audit line about one person, who is named by their key only."""
    actor = current_actor(config)
    event = audit_event(actor=actor, command=command, site=None, counts=counts)
    trail_for(config, actor).append(event | {"person": person.key} | fields)


def _about(record: dict[str, Any], person: Person) -> dict[str, Any] | None:
    summary = {
        "time": record.get("time"),
        "actor": record.get("actor"),
        "command": record.get("command"),
        "site": record.get("site"),
        "exit_code": record.get("exit_code"),
    }
    if record.get("person") == person.key:
        return summary | {"row_id": None, "reasons": [record.get("request") or "request"]}
    row_id = person.row_ids.get(str(record.get("site")))
    reasons = [r.get("reason") for r in record.get("rows") or [] if r.get("row_id") == row_id]
    if row_id is None or not reasons:
        return None
    return summary | {"row_id": row_id, "reasons": reasons}
