"""Members of small, plain zip files in one read: the ``.npz`` files of the seeding stages.

``zipfile`` reads a member through a file object in 4 KiB pieces with a decompressor call
each, after parsing the central directory through more small reads; on the CAM and mask files
of one image (a few to a few hundred KiB) that costs about three times the inflate itself.
:func:`read_members` reads the whole file with one call and inflates each requested member
with one ``zlib`` call, checking the sizes and the CRC-32 of the central directory like
``zipfile`` does.

It handles only what ``numpy.savez`` / ``savez_compressed`` and ``zipfile`` write for files
below 4 GiB: one disk, no encryption, members stored or deflated, sizes and offsets in the
central directory (a ZIP64 extra field in a *local* header, which numpy forces, is skipped
like any extra field). For anything else it returns None and the caller uses ``zipfile``,
which also gives its own errors for damaged directories; a member whose data does not match
its directory entry raises :class:`zipfile.BadZipFile`.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Iterable

__all__ = ["MAX_BYTES", "read_members"]

#: Files above this size are left to ``zipfile`` (which streams them).
MAX_BYTES = 256 << 20

_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory record, 22 bytes
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # central directory entry, 46 bytes
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header, 30 bytes
_ZIP64_LOCATOR = b"PK\x06\x07"
_UNSUPPORTED_FLAGS = 0x1 | 0x40  # encrypted, strongly encrypted
_FULL = 0xFFFFFFFF  # a size or offset that lives in a ZIP64 extra field


#: (method, crc, compressed size, size, local header offset, name as stored)
_Entry = tuple[int, int, int, int, int, bytes]


def _directory(data: bytes) -> dict[str, _Entry] | None:
    """``{name: entry}`` from the central directory, or None (not a file for this reader)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - _EOCD.size - 0xFFFF))
    if end < 0 or len(data) < end + _EOCD.size:
        return None
    _, disk, cd_disk, n_here, n_all, cd_size, cd_offset, _ = _EOCD.unpack_from(data, end)
    if disk or cd_disk or n_here != n_all or data[end - 20 : end - 16] == _ZIP64_LOCATOR:
        return None
    if cd_offset + cd_size > end:
        return None
    entries: dict[str, _Entry] = {}
    pos = cd_offset
    for _ in range(n_all):
        if pos + _CENTRAL.size > end:
            return None
        (sig, _, _, flags, method, _, _, crc, csize, size, name_len, extra_len, comment_len,
         _, _, _, offset) = _CENTRAL.unpack_from(data, pos)  # fmt: skip
        if sig != b"PK\x01\x02" or flags & _UNSUPPORTED_FLAGS or method not in (0, 8):
            return None
        if _FULL in (csize, size, offset):
            return None
        raw = data[pos + _CENTRAL.size : pos + _CENTRAL.size + name_len]
        name = raw.decode("utf-8" if flags & 0x800 else "cp437")
        entries[name] = (method, crc, csize, size, offset, raw)
        pos += _CENTRAL.size + name_len + extra_len + comment_len
    return entries


def _member(data: bytes, name: str, entry: _Entry) -> bytes:
    """The checked, inflated bytes of one member."""
    method, crc, csize, size, offset, raw_name = entry
    if offset + _LOCAL.size > len(data):
        raise zipfile.BadZipFile(f"member {name!r}: local header beyond the end of the file")
    sig, *_, name_len, extra_len = _LOCAL.unpack_from(data, offset)
    start = offset + _LOCAL.size + name_len + extra_len
    if sig != b"PK\x03\x04" or data[offset + _LOCAL.size : start - extra_len] != raw_name:
        raise zipfile.BadZipFile(f"member {name!r}: bad local header")
    if start + csize > len(data):
        raise zipfile.BadZipFile(f"member {name!r}: data beyond the end of the file (truncated)")
    raw = data[start : start + csize]
    if method == 8:
        try:
            raw = zlib.decompress(raw, -15)
        except zlib.error as exc:
            raise zipfile.BadZipFile(f"member {name!r}: corrupt deflate data ({exc})") from exc
    if len(raw) != size:
        raise zipfile.BadZipFile(f"member {name!r}: {len(raw)} bytes, its entry says {size}")
    if zlib.crc32(raw) != crc:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {name!r}")
    return raw


def read_members(
    path: str | os.PathLike, names: Iterable[str] | None = None
) -> tuple[list[str], dict[str, bytes]] | None:
    """All member names of a zip file and the bytes of the requested ones.

    Args:
        path: the file.
        names: members to read (those the file lacks are left out); None reads every member.

    Returns:
        ``(member names in directory order, {name: bytes})``, or None when the file is not a
        plain zip this reader handles (see the module docstring): read it with ``zipfile``.

    Raises:
        OSError: the file cannot be read.
        zipfile.BadZipFile: a member's data is truncated, corrupt or fails its CRC-32.
    """
    with open(path, "rb", buffering=0) as f:  # one raw read of the whole file
        if os.fstat(f.fileno()).st_size > MAX_BYTES:
            return None
        data = f.readall()
    entries = _directory(data)
    if entries is None:
        return None
    wanted = list(entries) if names is None else [n for n in names if n in entries]
    return list(entries), {n: _member(data, n, entries[n]) for n in wanted}
