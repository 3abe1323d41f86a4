"""Reading ``.npz`` members fast: the file in one read, one inflate per member, headers without ast.

``np.load`` streams each member through ``zipfile``'s reader in small pieces and parses every
``.npy`` header with ``ast.literal_eval``; on the small per-image files of the seeding stages
(CAMs, version-2 masks) that is most of the reading time. :func:`read_npz` reads the same
standard files (and nothing else: no pickles) through :func:`fma.io.zip_members.read_members`
(``zipfile`` for files that reader leaves to it); a header that is exactly what numpy writes
for a plain dtype, or for one of the expected structured dtypes of that member, is parsed with
a regular expression, any other through numpy's own parser. The arrays are equal to
``np.load(path, allow_pickle=False)``'s (tested).
"""

from __future__ import annotations

import functools
import io
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from fma.io.zip_members import read_members

__all__ = ["read_npz"]

_MAGIC_1_0 = b"\x93NUMPY\x01\x00"
_SHAPE = re.compile(r"((?:\d+, )*(?:\d+,?)?)\), \}\s*")
# A header numpy writes for a plain (not structured, not object) C-order array.
_PLAIN = re.compile(r"\{'descr': '([<>|=]?[biufcSU]\d+)', 'fortran_order': False, 'shape': \(")


@functools.lru_cache(maxsize=64)
def _prefix(dtype: np.dtype) -> str:
    """The start of the header numpy writes for a C-order array of ``dtype``."""
    descr = np.lib.format.dtype_to_descr(dtype)
    return f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': ("


def _fast_array(data: bytes, dtypes: Sequence[np.dtype]) -> np.ndarray | None:
    """The member's array when its header is numpy's for a plain dtype or one of ``dtypes``
    (structured dtypes), else None."""
    if data[:8] != _MAGIC_1_0:
        return None
    hlen = int.from_bytes(data[8:10], "little")
    text = data[10 : 10 + hlen].decode("latin1")
    plain = _PLAIN.match(text)
    if plain is not None:
        dtype, start = np.dtype(plain[1]), plain.end()
    else:
        dtype = next((d for d in dtypes if text.startswith(_prefix(d))), None)
        if dtype is None:
            return None
        start = len(_prefix(dtype))  # cached
    match = _SHAPE.fullmatch(text, start)
    if match is None:
        return None
    shape = tuple(int(v) for v in match[1].split(",") if v.strip())
    count = int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(data, dtype=dtype, count=count, offset=10 + hlen).reshape(shape)


def _array(data: bytes, name: str) -> np.ndarray:
    """A member's array through numpy's header parser (object arrays refused)."""
    fmt = np.lib.format
    fp = io.BytesIO(data)
    major, _ = fmt.read_magic(fp)
    read_header = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
    shape, fortran, dtype = read_header(fp)
    if dtype.hasobject:
        raise ValueError(f"member {name!r} is an object array (a pickle); not read")
    count = int(np.prod(shape, dtype=np.int64))
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=fp.tell())
    return arr.reshape(shape, order="F" if fortran else "C")


def read_npz(
    path: str | os.PathLike,
    names: Iterable[str] | None = None,
    *,
    dtypes: Mapping[str, Sequence[np.dtype]] | None = None,
    writable: bool = False,
) -> dict[str, np.ndarray]:
    """Members of an ``.npz`` file.

    Args:
        path: the file.
        names: the members to read (without ``.npy``); those the file lacks are left out of the
            result. None: every member.
        dtypes: structured dtypes a member is expected to have, whose headers then skip
            numpy's parser (headers of plain dtypes always do).
        writable: give writable arrays (one more copy of each member); else read-only views.

    Returns:
        ``{name: array}``.

    Raises:
        OSError, zipfile.BadZipFile, ValueError: unreadable or truncated file, a corrupt
            member, or an object array.
    """
    hints = dtypes or {}
    got = read_members(path, None if names is None else [f"{n}.npy" for n in names])
    if got is None:  # not a plain small zip: zipfile reads it (and names what is wrong)
        with zipfile.ZipFile(path) as zf:
            members = zf.namelist()
            wanted = _wanted(members, names)
            blobs = {f"{n}.npy": zf.read(f"{n}.npy") for n in wanted}
    else:
        members, blobs = got
        wanted = _wanted(members, names)
    out = {}
    for name in wanted:
        data = blobs[f"{name}.npy"]
        if writable:
            data = bytearray(data)
        arr = _fast_array(data, hints.get(name, ()))
        out[name] = arr if arr is not None else _array(data, name)
    return out


def _wanted(members: list[str], names: Iterable[str] | None) -> list[str]:
    """The array names to read: ``names`` that the file has, or all its ``.npy`` members."""
    present = [n[:-4] for n in members if n.endswith(".npy")]
    if names is None:
        return present
    have = set(present)
    return [n for n in names if n in have]
