"""The protocol window (docs/protocol.md, art. 5, 8, 12): personal data may only be pushed
while the protocol runs, and after its end only ``pull-status`` (a last time), ``purge`` and
``access-check`` touch the site."""

from __future__ import annotations

from datetime import date

from ..config import Municipality
from ..errors import SafetyStop

AFTER_THE_END = frozenset({"pull-status", "purge", "access-check"})


def ended_text(m: Municipality) -> str:
    if m.ended_on is not None and m.ended_on < m.protocol_end:
        return f"the protocol ended early on {m.last_day.isoformat()} ({m.end_reason})"
    return f"the protocol ended on {m.last_day.isoformat()}"


def refuse_after_the_end(m: Municipality, today: date, command: str) -> None:
    """Every command but the three of ``AFTER_THE_END`` stops (exit 5) for a site whose
    protocol has ended."""
    if m.protocol_ended(today) and command not in AFTER_THE_END:
        raise SafetyStop(
            f"{m.id}: {ended_text(m)}; after its end only pull-status, purge and access-check "
            f"run (not {command})",
            hint="`agii-sync purge` is due: it removes everything from this municipality's site",
        )


def require_protocol_active(m: Municipality, today: date) -> None:
    refuse_after_the_end(m, today, "push")
    if today < m.protocol_start:
        raise SafetyStop(
            f"{m.id}: the protocol only starts on {m.protocol_start.isoformat()}; "
            "nothing may be pushed before",
        )
