"""``list``: the people on one site, filtered, for staff matching them with activities.

A read of personal data is an access worth logging: the audit line says who read how many rows
of which site (never which people)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_atomically
from ..config import Config, Municipality
from ..domain.codes import CEFR_LEVELS, INTERESTS
from ..domain.row import SharedRow
from ..engine import Run
from ..errors import UsageError
from ..outcome import SiteOutcome
from .status import match_status, suggest_status

LABEL_CODES = {label: code for code, label in INTERESTS.items()}


@dataclass(frozen=True)
class ListFilter:
    status: str | None = None  # a list value, or "" for "not yet followed up"
    interests: frozenset[int] = frozenset()  # any of these
    min_dutch: str | None = None

    @classmethod
    def parse(cls, status: str | None, interests: list[str], min_dutch: str | None) -> ListFilter:
        return cls(
            status=_status(status) if status is not None else None,
            interests=frozenset(_interest(i) for i in interests),
            min_dutch=_level(min_dutch) if min_dutch is not None else None,
        )

    def keeps(self, row: SharedRow) -> bool:
        if self.status is not None and row.status_activiteit.lower() != self.status.lower():
            return False
        if self.interests and not (self.interests & row_interests(row)):
            return False
        return self.min_dutch is None or _at_least(row.niveau_nederlands, self.min_dutch)


def row_interests(row: SharedRow) -> frozenset[int]:
    labels = (part.strip() for part in row.interesses.split(";"))
    return frozenset(LABEL_CODES[label] for label in labels if label in LABEL_CODES)


def _at_least(level: str, minimum: str) -> bool:
    return level in CEFR_LEVELS and CEFR_LEVELS.index(level) >= CEFR_LEVELS.index(minimum)


def _status(text: str) -> str:
    matched = match_status(text)
    if matched is None:
        hint = suggest_status(text)
        raise UsageError(
            "--status: not a status in the list" + (f"; did you mean {hint!r}?" if hint else "")
        )
    return matched


def _interest(text: str) -> int:
    from ..domain.export import interest_code  # phonenumbers, pycountry: only for --interest

    code = interest_code(text)
    if code is None:
        raise UsageError("--interest: not a code 1-11 or a label of the protocol's list")
    return code


def _level(text: str) -> str:
    level = text.strip().upper()
    if level not in CEFR_LEVELS:
        raise UsageError("--min-dutch: one of " + ", ".join(CEFR_LEVELS))
    return level


def list_site(run: Run, m: Municipality, keep: ListFilter) -> tuple[SiteOutcome, list[SharedRow]]:
    outcome, loaded = run.read_only(m)
    rows = [r for r in (loaded.shared_rows if loaded else []) if keep.keeps(r)]
    outcome.audited_rows = len(rows)
    return outcome, rows


def people_file(config: Config, rows: list[SharedRow], fmt: str) -> bytes:
    """The list as a csv, json or xlsx file."""
    from ..formats.people import people_file as render_file

    sheet, months = config.workbook.sheet, config.agii.retention_months
    return render_file(rows, fmt, sheet=sheet, retention_months=months)


def write_people(config: Config, rows: list[SharedRow], fmt: str, out: Path) -> None:
    """The list in the file the user named (it holds personal data): whole or not at all."""
    try:
        write_atomically(out, people_file(config, rows, fmt))
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write it ({type(exc).__name__})") from None
