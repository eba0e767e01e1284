"""Custom document properties of an XLSX file, read and set at the zip level.

A custom property (``docProps/custom.xml``, ECMA-376 Part 1, §22.3 "Custom File Properties")
travels with the workbook through Excel, Excel for the web and SharePoint without being a
cell. Setting one here rewrites only that part (and, when the workbook had none, the package's
content types and root relationships); every other part is copied as it is, so this works
whatever wrote the workbook.
"""

from __future__ import annotations

import io
import zipfile
from xml.etree import ElementTree as ET  # noqa: N817 - building our own XML only
from xml.sax.saxutils import escape, quoteattr

from defusedxml.ElementTree import fromstring

from . import zipcopy

CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
REL_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"  # the one every custom property uses
DEFAULT_PART = "docProps/custom.xml"
ANCHOR_PROPERTY = "agii-sync audit anchor"  # the audit trail's anchor on the site (docs/audit.md)
MAX_PART_BYTES = 1 << 20  # a custom.xml holds a few short strings; more is not ours to read


class DocPropsError(ValueError):
    """The workbook's package or its custom properties cannot be read."""


def read_property(content: bytes, name: str) -> str | None:
    """The text of custom property ``name``, or None when the workbook has none."""
    with _open(content) as archive:
        part = _part_name(archive)
        if part is None or part not in archive.namelist():
            return None
        for prop in _root(archive, part).iter(f"{{{CUSTOM_NS}}}property"):
            if prop.get("name") == name:
                return "".join(prop.itertext())
    return None


def set_property(content: bytes, name: str, value: str) -> bytes:
    """The same workbook with string property ``name`` set to ``value``."""
    with _open(content) as archive:
        part = _part_name(archive)
        has_part = part is not None and part in archive.namelist()
        part = part or DEFAULT_PART
        root = _root(archive, part) if has_part else ET.Element(f"{{{CUSTOM_NS}}}Properties")
        _replace(root, name, value)
        new_parts = {part: _xml(root)}
        if not has_part:
            new_parts.update(_register(archive, part))
        return zipcopy.rebuild(content, archive, new_parts)


def _open(content: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DocPropsError(f"not an XLSX package ({type(exc).__name__})") from None


def _read(archive: zipfile.ZipFile, part: str) -> bytes:
    if archive.getinfo(part).file_size > MAX_PART_BYTES:
        raise DocPropsError(f"{part} is larger than {MAX_PART_BYTES} bytes")
    try:
        return archive.read(part)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DocPropsError(f"{part} cannot be unpacked ({type(exc).__name__})") from None


def _parse(data: bytes, part: str) -> ET.Element:
    try:
        root: ET.Element = fromstring(data)
        return root
    except Exception as exc:  # noqa: BLE001 - untrusted XML: any parser failure is "damaged"
        raise DocPropsError(f"{part} is not readable XML ({type(exc).__name__})") from None


def _root(archive: zipfile.ZipFile, part: str) -> ET.Element:
    return _parse(_read(archive, part), part)


def _part_name(archive: zipfile.ZipFile) -> str | None:
    """Where the package's root relationships put the custom properties (None: nowhere)."""
    if "_rels/.rels" not in archive.namelist():
        return None
    for rel in _root(archive, "_rels/.rels"):
        if rel.get("Type") == REL_TYPE:
            return (rel.get("Target") or DEFAULT_PART).lstrip("/")
    return None


def _replace(root: ET.Element, name: str, value: str) -> None:
    props = root.findall(f"{{{CUSTOM_NS}}}property")
    for prop in props:
        if prop.get("name") == name:
            root.remove(prop)
    pids = [int(p.get("pid", "1")) for p in props if (p.get("pid") or "").isdigit()]
    prop = ET.SubElement(
        root,
        f"{{{CUSTOM_NS}}}property",
        {"fmtid": FMTID, "pid": str(max(pids, default=1) + 1), "name": name},
    )
    ET.SubElement(prop, f"{{{VT_NS}}}lpwstr").text = value


def _register(archive: zipfile.ZipFile, part: str) -> dict[str, bytes]:
    """Content type and root relationship for a custom-properties part that is new."""
    types = _root(archive, "[Content_Types].xml")
    ns = _namespace(types.tag)
    ET.SubElement(types, f"{{{ns}}}Override", {"PartName": f"/{part}", "ContentType": CONTENT_TYPE})
    rels = _root(archive, "_rels/.rels")
    rel_ns = _namespace(rels.tag)
    taken = {rel.get("Id") for rel in rels}
    rel_id = next(f"rId{n}" for n in range(1, len(taken) + 2) if f"rId{n}" not in taken)
    ET.SubElement(
        rels, f"{{{rel_ns}}}Relationship", {"Id": rel_id, "Type": REL_TYPE, "Target": part}
    )
    return {
        "[Content_Types].xml": _xml(types),
        "_rels/.rels": _xml(rels),
    }


def _xml(root: ET.Element) -> bytes:
    """The part as OOXML writers make it: the root's namespace as the default one, every
    other one with a prefix declared on the root (``vt`` for the variant types)."""
    default = _namespace(root.tag)
    prefixes = {default: ""}
    for element in root.iter():
        namespace = _namespace(element.tag)
        if namespace not in prefixes:
            prefixes[namespace] = "vt" if namespace == VT_NS else f"ns{len(prefixes)}"
    declarations = "".join(
        f" xmlns{':' + prefix if prefix else ''}={quoteattr(ns)}" for ns, prefix in prefixes.items()
    )
    body = _element(root, prefixes, declarations)
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + body).encode("utf-8")


def _element(element: ET.Element, prefixes: dict[str, str], declarations: str = "") -> str:
    namespace, _, local = element.tag.rpartition("}")
    prefix = prefixes[namespace.lstrip("{")]
    tag = f"{prefix}:{local}" if prefix else local
    attributes = "".join(
        f" {name}={quoteattr(value)}" for name, value in element.items() if "}" not in name
    )
    inner = escape(element.text or "") + "".join(_element(c, prefixes) for c in element)
    return f"<{tag}{declarations}{attributes}>{inner}</{tag}>"


def _namespace(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""
