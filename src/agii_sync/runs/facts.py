"""What each command records about a site beyond its plan (``outcome.Facts``): counts for the
audit line, the log and the report; Rij-IDs and cell references (never values) for the report.
Light on imports: the report reads them."""

from __future__ import annotations

from dataclasses import dataclass

from ..outcome import Facts


class AlreadyPresent(Facts):
    """``init`` found a workbook on the site and left it as it is."""

    def counts(self) -> dict[str, int]:
        return {"already_present": 1}


@dataclass(frozen=True)
class Emptied(Facts):
    """The protocol's end: the sheets and notes someone added that the template replaced."""

    sheets_removed: int
    notes_removed: int

    def counts(self) -> dict[str, int]:
        return {"sheets_removed": self.sheets_removed, "notes_removed": self.notes_removed}


@dataclass(frozen=True)
class Remaining(Facts):
    """What the site still held after the protocol's end (``REMAINS``)."""

    remains: dict[str, int]

    def counts(self) -> dict[str, int]:
        return {f"remaining_{key}": count for key, count in self.remains.items()}


@dataclass(frozen=True)
class Pushed(Facts):
    """Export rows past retention that were not added; Rij-IDs whose status cell holds
    something outside the list (flagged, never repeated)."""

    past_retention_not_added: int
    not_in_list_rows: list[str]

    def counts(self) -> dict[str, int]:
        counts = {"past_retention_not_added": self.past_retention_not_added}
        return counts | (
            {"not_in_list": len(self.not_in_list_rows)} if self.not_in_list_rows else {}
        )

    def listed(self) -> dict[str, list[str]]:
        return {"not_in_list_rows": list(self.not_in_list_rows)} if self.not_in_list_rows else {}


@dataclass(frozen=True)
class Pulled(Facts):
    """Statuses passed on; rows that match no export row; Rij-IDs whose status is outside
    the list (passed on as empty, never repeated); rows of people on the suppression list
    (nothing of them passed on)."""

    pulled: int
    unmatched: int
    not_in_list_rows: list[str]
    suppressed: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "pulled": self.pulled,
            "unmatched": self.unmatched,
            "not_in_list": len(self.not_in_list_rows),
            "suppressed": self.suppressed,
        }

    def listed(self) -> dict[str, list[str]]:
        return {"not_in_list_rows": list(self.not_in_list_rows)}


@dataclass(frozen=True)
class StatusLinesDone(Facts):
    """How many lines changed a status, changed nothing; the Rij-IDs someone else changed
    meanwhile (left as they are). Lines with problems write nothing: ``DataRejected``."""

    changed: int
    unchanged: int
    conflict_rows: list[str]

    def counts(self) -> dict[str, int]:
        counts = {"lines_changed": self.changed, "lines_unchanged": self.unchanged}
        counts["lines_with_problems"] = 0
        return counts | ({"conflicts": len(self.conflict_rows)} if self.conflict_rows else {})

    def listed(self) -> dict[str, list[str]]:
        return {"conflict_rows": list(self.conflict_rows)} if self.conflict_rows else {}
