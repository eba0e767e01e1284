"""The protocol window: personal data may only be pushed while the protocol runs."""

from __future__ import annotations

from datetime import date

from ..config import Municipality
from ..errors import SafetyStop


def require_protocol_active(m: Municipality, today: date) -> None:
    if m.protocol_ended(today):
        raise SafetyStop(
            f"{m.id}: the protocol ended on {m.protocol_end.isoformat()}; nothing may be pushed",
            hint="`agii-sync purge` is due: it removes every row of this municipality",
        )
    if today < m.protocol_start:
        raise SafetyStop(
            f"{m.id}: the protocol only starts on {m.protocol_start.isoformat()}; "
            "nothing may be pushed before",
        )
