"""People whose export row was rejected: they are still shared, so no push may remove them.

A rejected row says nothing certain about its person, except what can still be read of it.
The rule (docs/safety.md, "A rejected row never removes a person"):

- a dossier number read exactly keeps that person's row on every site (the NIS code may be the
  very thing that is wrong, so the person could be on any of them);
- a dossier number that can only be guessed (a stray space, `*` or invisible character) keeps
  the guessed person's row, where one exists;
- a row that names no one push can find on a site it may concern (by its NIS code, else its
  postcode, else every site) makes that site's push stop rather than remove anyone as
  ``moved_away``: that person might be among them.

Removal as ``moved_away`` is only for people positively absent from a valid export.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

RowKey = Callable[[str, str], str]  # (nis, dossier) → Rij-ID


@dataclass(frozen=True)
class RejectedRow:
    """What could be read of one rejected export row (never shown: it is personal data)."""

    line: int
    nis: str | None  # read exactly
    dossier: str | None  # read exactly
    dossier_guess: str | None = None  # read leniently, when not exactly
    postcode: str | None = None  # read exactly

    def concerns(self, nis: str, postal_codes: Iterable[str]) -> bool:
        """Could this row be about someone on the site of municipality ``nis``?"""
        if self.nis is not None:
            return self.nis == nis
        if self.postcode is not None:
            return self.postcode in postal_codes
        return True


def guess_dossier(value: object) -> str | None:
    """The dossier number a garbled cell most likely meant: compatibility-normalised, only
    its ASCII letters and digits, upper case. Used only to *keep* a row, never to share one."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value))
    guess = "".join(char for char in text if char.isascii() and char.isalnum()).upper()
    return guess or None


@dataclass(frozen=True)
class SiteRejections:
    """The rejected rows as one site sees them."""

    keep: frozenset[str]  # Rij-IDs to keep as they are
    unsure: tuple[tuple[int, frozenset[str]], ...] = ()  # (line, Rij-IDs it may mean)

    def unaccounted_lines(self, current_ids: Iterable[str]) -> list[int]:
        """Lines of rejected rows that match no one on the site: their person may be anyone."""
        present = set(current_ids)
        return sorted(line for line, candidates in self.unsure if not candidates & present)


def for_site(
    rejected: Iterable[RejectedRow], *, nis: str, postal_codes: Iterable[str], key: RowKey
) -> SiteRejections:
    postal_codes = tuple(postal_codes)
    keep: set[str] = set()
    unsure: list[tuple[int, frozenset[str]]] = []
    for row in rejected:
        if row.dossier is not None:
            keep.add(key(nis, row.dossier))
            continue
        candidates = frozenset({key(nis, row.dossier_guess)} if row.dossier_guess else ())
        keep |= candidates
        if row.concerns(nis, postal_codes):
            unsure.append((row.line, candidates))
    return SiteRejections(frozenset(keep), tuple(unsure))
