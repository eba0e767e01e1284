"""The few cell formats the data sheet needs from the workbook's stylesheet (ECMA-376 Part 1,
§18.8): which formats show a date, and the formats agii-sync writes new cells with (a date in
``DD/MM/YYYY``, an unlocked status cell). A missing one is appended; nothing else changes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .sheet_xml import Styles, attr_value, set_attr
from .xlsx_package import escape_attr

DATE_FORMAT = "DD/MM/YYYY"
XF = re.compile(rb"<xf\b[^>]*?(?:/>|>.*?</xf>)", re.S)
NUM_FMT = re.compile(rb"<numFmt\b([^>]*?)/?>")
CELL_XFS = re.compile(rb"<cellXfs\b[^>]*?(?:/>|>(.*?)</cellXfs>)", re.S)


@dataclass(frozen=True)
class WriteStyles:
    date: int
    unlocked: int


def read_styles(xml: bytes | None) -> Styles:
    if xml is None:
        return Styles(frozenset(), frozenset())
    from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format

    formats = dict(BUILTIN_FORMATS)
    formats.update(_custom_formats(xml))
    dates, unlocked = set(), set()
    for index, xf in enumerate(_cell_xfs(xml)):
        code = formats.get(int(attr_value(xf, b"numFmtId") or 0))
        if code and is_date_format(code):
            dates.add(index)
        if re.search(rb"<protection\b[^>]*\slocked\s*=\s*[\"'](0|false)[\"']", xf):
            unlocked.add(index)
    return Styles(frozenset(dates), frozenset(unlocked))


def _custom_formats(xml: bytes) -> dict[int, str]:
    found = {}
    for match in NUM_FMT.finditer(xml):
        number, code = (
            attr_value(match.group(0), b"numFmtId"),
            attr_value(match.group(0), b"formatCode"),
        )
        if number is not None and number.isdigit() and code is not None:
            found[int(number)] = code
    return found


def _cell_xfs(xml: bytes) -> list[bytes]:
    block = CELL_XFS.search(xml)
    return [m.group(0) for m in XF.finditer(block.group(1) or b"")] if block else []


def ensure_write_styles(xml: bytes) -> tuple[bytes, WriteStyles]:
    """The stylesheet holding a plain date format and an unlocked format (appended when
    missing), and their indexes."""
    xfs = _cell_xfs(xml)
    formats = _custom_formats(xml)
    date_ids = [n for n, code in formats.items() if code.upper() == DATE_FORMAT]
    date_index = next(
        (
            i
            for i, xf in enumerate(xfs)
            if _plain(xf) and int(attr_value(xf, b"numFmtId") or 0) in date_ids
        ),
        None,
    )
    unlocked_index = next(
        (
            i
            for i, xf in enumerate(xfs)
            if int(attr_value(xf, b"numFmtId") or 0) == 0
            and re.search(rb"<protection\b[^>]*\slocked\s*=\s*[\"'](0|false)[\"']", xf)
            and _plain(xf, protection_ok=True)
        ),
        None,
    )
    if date_index is None:
        if not date_ids:
            number = max([163, *formats]) + 1
            xml = _add_num_fmt(xml, number)
        else:
            number = date_ids[0]
        xml, date_index = _add_xf(
            xml,
            f'<xf numFmtId="{number}" fontId="0" fillId="0" borderId="0" xfId="0" '
            'applyNumberFormat="1"/>',
        )
    if unlocked_index is None:
        xml, unlocked_index = _add_xf(
            xml,
            '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" applyProtection="1">'
            '<protection locked="0"/></xf>',
        )
    return xml, WriteStyles(date_index, unlocked_index)


def _plain(xf: bytes, *, protection_ok: bool = False) -> bool:
    """A format with the default font, fill and border (nothing the municipality chose)."""
    if any(attr_value(xf, name) not in (None, "0") for name in (b"fontId", b"fillId", b"borderId")):
        return False
    return protection_ok or b"<protection" not in xf


def _add_num_fmt(xml: bytes, number: int) -> bytes:
    element = f'<numFmt numFmtId="{number}" formatCode="{escape_attr(DATE_FORMAT)}"/>'.encode()
    block = re.search(rb"<numFmts\b([^>]*?)(/?)>", xml)
    if block is None:
        opening = re.search(rb"<styleSheet\b[^>]*>", xml)
        assert opening is not None
        at = opening.end()
        return xml[:at] + b'<numFmts count="1">' + element + b"</numFmts>" + xml[at:]
    count = len(NUM_FMT.findall(xml))
    tag = set_attr(b"<numFmts" + block.group(1), b"count", str(count + 1))
    if block.group(2):  # <numFmts/>
        return xml[: block.start()] + tag + b">" + element + b"</numFmts>" + xml[block.end() :]
    end = xml.index(b"</numFmts>", block.end())
    return xml[: block.start()] + tag + b">" + xml[block.end() : end] + element + xml[end:]


def _add_xf(xml: bytes, element: str) -> tuple[bytes, int]:
    block = CELL_XFS.search(xml)
    if block is None or block.group(1) is None:
        raise ValueError("a stylesheet without cell formats")
    index = len(XF.findall(block.group(1)))
    end = block.start(1) + len(block.group(1))
    opening = xml[block.start() : block.start(1)]
    opening = set_attr(opening[:-1], b"count", str(index + 1)) + b">"
    new = xml[: block.start()] + opening + block.group(1) + element.encode() + xml[end:]
    return new, index


def only_formats_added(before: bytes, after: bytes) -> bool:
    """Whether ``after`` is ``before`` with cell formats (and number formats) appended."""
    old_xfs, new_xfs = _cell_xfs(before), _cell_xfs(after)
    old_fmts, new_fmts = NUM_FMT.findall(before), NUM_FMT.findall(after)
    if new_xfs[: len(old_xfs)] != old_xfs or new_fmts[: len(old_fmts)] != old_fmts:
        return False
    strip = re.compile(rb"<(numFmts|cellXfs)\b[^>]*?(?:/>|>.*?</\1>)", re.S)
    return strip.sub(b"", before) == strip.sub(b"", after)
