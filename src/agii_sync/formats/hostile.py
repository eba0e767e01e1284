"""What must never be in a shared workbook: code or links that run or call out when someone
opens it (a macro project, external links, a data connection, a formula that calls out).

A workbook holding any of these is a layout stop for every write (exit 5) and a ``check``
finding; the findings name the part, the defined name's number or the cell, never content.
"""

from __future__ import annotations

import re

from .xlsx_package import Package, attributes, unescape

CALLING_OUT = (
    "WEBSERVICE",
    "FILTERXML",
    "HYPERLINK",
    "DDE",
    "DDEAUTO",
    "CALL",
    "REGISTER",
    "REGISTER.ID",
    "RTD",
    "EXEC",
    "IMAGE",
    "SQL.REQUEST",
)
FUNCTION = re.compile(
    r"(?<![A-Za-z0-9_.])(?:_xlfn\.|_xlws\.)?("
    + "|".join(re.escape(f) for f in CALLING_OUT)
    + r")\s*\(",
    re.I,
)
DDE_LINK = re.compile(r"[A-Za-z0-9_.]+\|")  # application|topic!item
STRING_LITERAL = re.compile(r'"(?:[^"]|"")*"')
FORMULA_ELEMENT = re.compile(rb"<(f|formula|formula1|formula2)\b[^>]*>(.*?)</\1>", re.S)
FORBIDDEN_PARTS = (
    (re.compile(r"(^|/)vbaProject\.bin$", re.I), "a macro project"),
    (re.compile(r"^xl/macrosheets/", re.I), "a macro sheet"),
    (re.compile(r"^xl/externalLinks/", re.I), "an external link"),
    (re.compile(r"^xl/connections\.xml$", re.I), "a data connection"),
    (re.compile(r"^xl/queryTables/", re.I), "a data connection (query table)"),
)


def calls_out(formula: str) -> str | None:
    """The function (or ``DDE``) through which a formula reaches outside the workbook."""
    bare = STRING_LITERAL.sub('""', formula)
    found = FUNCTION.search(bare)
    if found:
        return found.group(1).upper()
    if DDE_LINK.search(bare.replace("'", "")):
        return "DDE"
    return None


def hostile_content(package: Package) -> list[str]:
    found = [
        f"{what} ({name})"
        for name in package.names
        for pattern, what in FORBIDDEN_PARTS
        if pattern.search(name)
    ]
    found.extend(_defined_names(package))
    for entry in package.sheets():
        if entry.part and package.has(entry.part):
            found.extend(_formulas(entry.name, package.read(entry.part)))
    return found


def _defined_names(package: Package) -> list[str]:
    xml = package.read(package.workbook_part)
    found = []
    pattern = re.compile(rb"<definedName\b([^>]*)>(.*?)</definedName>", re.S)
    for number, match in enumerate(pattern.finditer(xml), start=1):
        function = calls_out(unescape(match.group(2)))
        if function:
            hidden = attributes(match.group(1)).get("hidden") in ("1", "true")
            found.append(f"defined name #{number}{' (hidden)' if hidden else ''} calls {function}")
    return found


def _formulas(sheet: str, xml: bytes) -> list[str]:
    if b"<f" not in xml:
        return []
    found = []
    for match in FORMULA_ELEMENT.finditer(xml):
        function = calls_out(unescape(match.group(2)))
        if function is None:
            continue
        cell = xml.rfind(b"<c ", 0, match.start())
        where = re.search(rb"""\sr\s*=\s*["']([A-Z]+[0-9]+)["']""", xml[cell : match.start()])
        if match.group(1) == b"f" and where:
            found.append(f"cell {sheet}!{where.group(1).decode()} calls {function}")
        else:
            found.append(f"a rule on sheet {sheet} calls {function}")
    return found
