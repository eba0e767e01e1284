"""Who may not be shared whatever the export says (docs/protocol.md, art. 3 and the rights of
the people): people on the suppression list (``forget``), and people whose contact language
is a sign language, which reveals a disability (GDPR art. 9) unless the DPOs agreed
(``[agii] allow_sign_languages``). Pure: the caller gives the person keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

import pycountry

from .export import Record
from .plan import Reason
from .problems import Problem, ProblemCode
from .rejections import RejectedRow

# Markers in a language's English or own name (ISO 639-3 via pycountry): 157 "... Sign
# Language"s, "Vlaamse Gebarentaal" (vgt), "Langue des signes de Belgique Francophone" (sfb),
# "International Sign" (ils).
SIGN_MARKERS = ("sign language", "gebarentaal", "langue des signes", "international sign")
SIGN_COLLECTIVE = frozenset({"sgn"})  # ISO 639-2 "Sign Languages"


@cache
def sign_languages() -> frozenset[str]:
    found = {language.alpha_3 for language in pycountry.languages if _is_sign(language.name)}
    return frozenset(found | SIGN_COLLECTIVE)


@cache  # a few dozen codes over thousands of rows; no walk through all 7,900 languages
def is_sign_language(code: str) -> bool:
    """Whether ``code`` is in ``sign_languages()``, looked up on its own."""
    code = code.casefold()
    if code in SIGN_COLLECTIVE:
        return True
    language = pycountry.languages.get(alpha_3=code)
    return language is not None and _is_sign(language.name)


def _is_sign(name: str) -> bool:
    return any(marker in name.casefold() for marker in SIGN_MARKERS)


@dataclass
class Screened:
    records: list[Record]
    withheld: list[tuple[str | None, str, Reason]] = field(default_factory=list)  # nis, dossier
    problems: list[Problem] = field(default_factory=list)
    suppressed: int = 0  # export rows of people on the suppression list


@dataclass(frozen=True)
class Screen:
    suppressed: frozenset[str] = frozenset()  # person keys on the suppression list
    person_key: Callable[[str], str] | None = None
    allow_sign_languages: bool = False

    def is_suppressed(self, dossier: str) -> bool:
        if not self.suppressed or self.person_key is None:
            return False
        return self.person_key(dossier) in self.suppressed

    def records(self, records: Iterable[Record]) -> Screened:
        screened = Screened([])
        for record in records:
            identity = (record.nis_code, record.dossiernummer)
            if self.is_suppressed(record.dossiernummer):
                screened.withheld.append((*identity, "suppressed"))
                screened.suppressed += 1
            elif not self.allow_sign_languages and is_sign_language(record.contacttaal):
                screened.withheld.append((*identity, "special_category"))
                screened.problems.append(
                    Problem.of(ProblemCode.SIGN_LANGUAGE, line=record.line, column="contacttaal")
                )
            else:
                screened.records.append(record)
        return screened

    def rejected(self, rejected: Iterable[RejectedRow]) -> tuple[list[RejectedRow], list[str]]:
        """Split the rejected rows into those whose person is kept as they are on their site
        and the dossier numbers of suppressed people (read exactly, or as best guessed)."""
        kept, suppressed = [], []
        for row in rejected:
            dossier = row.dossier or row.dossier_guess
            if dossier is not None and self.is_suppressed(dossier):
                suppressed.append(dossier)
            else:
                kept.append(row)
        return kept, suppressed
