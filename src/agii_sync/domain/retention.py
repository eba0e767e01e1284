"""Retention arithmetic: how long a municipality may keep a person's data (docs/protocol.md,
art. 3)."""

from __future__ import annotations

import calendar
from datetime import date


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the end of the target month
    (2024-08-31 + 6 → 2025-02-28). ``months`` may be negative."""
    month_index = day.year * 12 + (day.month - 1) + months
    year, month_zero_based = divmod(month_index, 12)
    month = month_zero_based + 1
    last_day = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last_day))


def keep_until(attest: date | None, retention_months: int) -> date | None:
    """The ``Bewaren tot`` date: empty while there is no attest."""
    return None if attest is None else add_months(attest, retention_months)


def end_of_month(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def keep_until_without_attest(today: date, months: int, last_day: date) -> date:
    """``Bewaren tot`` of someone without an attest: the end of the month ``months`` after
    today (so a nightly push changes it once a month, not every night), never past the
    protocol's last day. A push that still shares the person moves it on; someone no longer
    pushed (a rejected export row, pushes that stopped) leaves when it passes."""
    return min(end_of_month(add_months(today, months)), last_day)
