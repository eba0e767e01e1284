"""The ``Toelichting`` sheet: what the municipality needs to know, in Dutch (docs/workbook.md)."""

from __future__ import annotations

from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from ..domain.codes import ACTIVITY_STATUSES, CEFR_LEVELS, DUTCH_UNKNOWN, INTERESTS, StatusMO
from ..domain.row import COLUMNS

TOELICHTING_SHEET = "Toelichting"

PARAGRAPHS: tuple[tuple[str, str], ...] = (
    (
        "Doel",
        "Dit werkblad bevat de gegevens van inburgeraars die in uw gemeente wonen, zodat u hen "
        "kunt begeleiden naar het participatie- en netwerktraject (minstens 40 uur participatie: "
        "buddyprojecten, vrijwilligerswerk, sport, ...). Gebruik de gegevens voor niets anders.",
    ),
    (
        "Rechtsgrond",
        "De verwerking steunt op art. 6.1.e van de AVG (een taak van algemeen belang). Het "
        "protocol voor de mededeling van persoonsgegevens tussen het Agentschap Integratie en "
        "Inburgering en uw gemeente (art. 8 §1 van het e-governmentdecreet van 18 juli 2008) "
        "regelt hoe ze gedeeld worden. Alleen de gegevens van art. 3 worden gedeeld; enkel de "
        "kolom 'Status activiteit' vult u zelf in.",
    ),
    (
        "Toegang",
        "Alleen de medewerkers die in het protocol genoemd zijn, hebben toegang. Deel dit bestand "
        "of een kopie ervan niet verder.",
    ),
    (
        "Bewaartermijn",
        "Een persoon blijft in dit werkblad tot de datum in 'Bewaren tot' ({months} na het "
        "behalen van het inburgeringsattest; zonder attest een beperkte termijn die het "
        "agentschap bij elke update verlengt zolang de persoon gedeeld wordt) en wordt daarna "
        "automatisch verwijderd. Na het einde van het protocol worden alle gegevens "
        "verwijderd, ook andere werkbladen, notities en oudere versies.",
    ),
    (
        "Status activiteit",
        "Kies een waarde uit de keuzelijst; laat leeg zolang de persoon niet opgevolgd is. "
        "Andere tekst kan niet: alleen de status gaat terug naar het agentschap. Voeg geen "
        "notities of werkbladen toe. Andere kolommen zijn vergrendeld en worden door het "
        "agentschap bijgewerkt.",
    ),
    (
        "Foute gegevens",
        "Kloppen gegevens niet? Meld het aan het Agentschap Integratie en Inburgering via uw "
        "contactpersoon (art. 7 van het protocol), met de naam van uw gemeente en het Rij-ID, "
        "zonder de gegevens zelf te mailen. Het agentschap verbetert ze binnen twee weken. "
        "Pas de gegevens niet zelf aan: ze worden bij de volgende update overschreven.",
    ),
)


def code_lists() -> list[tuple[str, list[str]]]:
    interests = [f"{code}. {label}" for code, label in INTERESTS.items()] + ["geen"]
    return [
        ("Kolommen (in deze volgorde)", list(COLUMNS)),
        ("Interesses en noden", interests),
        ("Niveau Nederlands", [*CEFR_LEVELS, DUTCH_UNKNOWN]),
        ("Status MO", [s.value for s in StatusMO]),
        ("Status activiteit", list(ACTIVITY_STATUSES)),
    ]


def write_toelichting(sheet: Any, *, retention_months: int) -> None:
    """Fill an empty sheet (normal or write-only) with the explanation."""
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    sheet.column_dimensions["A"].width = 24
    sheet.column_dimensions["B"].width = 100
    sheet.protection.sheet = True

    def line(title: str = "", text: str | None = None, *, font: Font = bold) -> None:
        parts: list[tuple[str, Font | None, Alignment | None]] = []
        if title:
            parts.append((title, font, None))
        if text is not None:
            parts.append((text, None, wrap))
        if isinstance(sheet, WriteOnlyWorksheet):
            sheet.append([_styled(WriteOnlyCell(sheet, value=v), f, a) for v, f, a in parts])
            return
        sheet.append([value for value, _, _ in parts])  # a normal sheet: values, then styles
        for column, (_, f, a) in enumerate(parts, start=1):
            _styled(sheet.cell(row=sheet.max_row, column=column), f, a)

    line("Toelichting bij het werkblad inburgeraars", font=Font(bold=True, size=14))
    line()
    for title, text in PARAGRAPHS:
        months = f"{retention_months} maand" + ("" if retention_months == 1 else "en")
        line(title, text.format(months=months))
    line()
    line("Codelijsten")
    for title, values in code_lists():
        line(title, "; ".join(values))


def _styled(cell: Any, font: Font | None, alignment: Alignment | None) -> Any:
    if font is not None:
        cell.font = font
    if alignment is not None:
        cell.alignment = alignment
    return cell
