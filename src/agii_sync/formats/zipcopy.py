"""Write a zip package again with some parts replaced, copying every other part's compressed
bytes as they are (no unpacking, no packing again).

The standard library's ``zipfile`` has no public way to copy a member's compressed data; this
writes the member's local header with ``ZipInfo.FileHeader`` and registers it the way
``ZipFile.writestr`` does (the ``filelist``, ``NameToInfo`` and ``start_dir`` attributes that
every Python since 3.2 has). The layout is the ZIP application note's (PKWARE APPNOTE.TXT,
4.3.7 "Local file header"). A package is only copied this way after ``limits.inspect_xlsx``
has unpacked every part and checked its CRC-32, so the bytes copied are known to be sound.
"""

from __future__ import annotations

import copy
import io
import struct
import zipfile
from collections.abc import Iterable, Mapping

LOCAL_HEADER_SIZE = 30
LOCAL_HEADER_MAGIC = b"PK\x03\x04"
DATA_DESCRIPTOR_FLAG = 0x08  # sizes after the data: known here, so written in the header
# Parts rewritten by us are small, except the data sheet: level 1 packs XML about as well
# as level 6 (within some 20 %) at a third of the time.
REWRITE_LEVEL = 1


def compressed_bytes(content: bytes, info: zipfile.ZipInfo) -> bytes:
    """The member's data as stored in ``content`` (compressed)."""
    start = info.header_offset
    header = content[start : start + LOCAL_HEADER_SIZE]
    if len(header) != LOCAL_HEADER_SIZE or header[:4] != LOCAL_HEADER_MAGIC:
        raise zipfile.BadZipFile("a member's local header is missing")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    begin = start + LOCAL_HEADER_SIZE + name_length + extra_length
    data = content[begin : begin + info.compress_size]
    if len(data) != info.compress_size:
        raise zipfile.BadZipFile("a member's data is cut short")
    return data


def _write_compressed(target: zipfile.ZipFile, info: zipfile.ZipInfo, data: bytes) -> None:
    member = copy.copy(info)
    member.flag_bits &= ~DATA_DESCRIPTOR_FLAG
    fp = target.fp
    assert fp is not None
    fp.seek(target.start_dir)
    member.header_offset = fp.tell()
    fp.write(member.FileHeader())
    fp.write(data)
    target.start_dir = fp.tell()
    target.filelist.append(member)
    target.NameToInfo[member.filename] = member


Part = bytes | Iterable[bytes | memoryview]  # whole, or in pieces packed as they come


def rebuild(content: bytes, source: zipfile.ZipFile, replaced: Mapping[str, Part]) -> bytes:
    """``source`` (opened on ``content``) with the parts in ``replaced`` new or changed and
    every other part's entry and compressed bytes as they were, in the same order. A part in
    pieces is never joined: each piece is packed as it comes."""
    out = io.BytesIO()
    replaced = dict(replaced)
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = replaced.pop(info.filename, None)
            if data is None:
                _write_compressed(target, info, compressed_bytes(content, info))
            elif isinstance(data, bytes):
                target.writestr(copy.copy(info), data, compresslevel=REWRITE_LEVEL)
            else:
                _write_pieces(target, copy.copy(info), data)
        for name, data in replaced.items():  # new parts: small, whole
            whole = data if isinstance(data, bytes) else b"".join(data)
            target.writestr(
                name, whole, compress_type=zipfile.ZIP_DEFLATED, compresslevel=REWRITE_LEVEL
            )
    return out.getvalue()


def _write_pieces(
    target: zipfile.ZipFile, member: zipfile.ZipInfo, pieces: Iterable[bytes | memoryview]
) -> None:
    """As ``writestr`` with the same member settings, from pieces (a sheet stays under the
    ZIP64 limit: limits.py bounds it far below)."""
    member.file_size = 0
    member._compresslevel = REWRITE_LEVEL  # type: ignore[attr-defined]  # as writestr sets it
    with target.open(member, "w") as stream:
        for piece in pieces:
            stream.write(piece)


def same_member(
    old: bytes, old_info: zipfile.ZipInfo, new: bytes, new_info: zipfile.ZipInfo
) -> bool:
    """Whether two members are the same bytes, proven without unpacking them: the same
    compression method over the same compressed bytes gives the same content. False only
    means "not proven" (the same content may be packed differently)."""
    return (
        old_info.compress_type == new_info.compress_type
        and old_info.file_size == new_info.file_size
        and old_info.CRC == new_info.CRC
        and compressed_bytes(old, old_info) == compressed_bytes(new, new_info)
    )
