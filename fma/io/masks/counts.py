"""COCO compressed-RLE ``counts`` strings decoded in numpy, all masks of an image at once.

The characters of one concatenated buffer are split into values at the characters without the
continuation bit (0x20), the 5-bit groups are shifted and summed, the sign bit (0x10) of a
value's last character sign-extends it, and every count after the third adds the count two
places before it (pycocotools' ``rleFrString``). Used by the run reader
(:mod:`fma.io.masks.runs`) and by the version-2 mask writer (:mod:`fma.io.masks.npz`), which
share :func:`checked_prefix` with the record reader (:mod:`fma.io.masks.records`): the one check
that every mask's run lengths cover its image. :func:`exclusive_prefix` serves the seeding runs
(:mod:`fma.seeding.runs`). This module imports nothing of fma.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["checked_prefix", "decode_counts", "exclusive_prefix"]

_MAX_CHARS_PER_VALUE = 13  # 64-bit values need at most 13 5-bit groups


def decode_counts(counts: Sequence[str | bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Decode COCO compressed-RLE ``counts`` strings, all at once.

    Args:
        counts: K strings (str or ASCII bytes) in pycocotools' compressed format.

    Returns:
        values (V,) int64, the run lengths of all masks one after the other, and offsets
        (K + 1,) int64: mask k's run lengths are ``values[offsets[k]:offsets[k + 1]]``.

    Raises:
        ValueError: a string with characters outside the format, or ending inside a value.
    """
    parts = [c.encode("ascii") if isinstance(c, str) else bytes(c) for c in counts]
    k = len(parts)
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=k)
    c = np.frombuffer(b"".join(parts), dtype=np.uint8) - np.uint8(48)  # wraps below '0'
    if c.size == 0:
        return np.zeros(0, np.int64), np.zeros(k + 1, np.int64)
    if c.max() > 63:
        raise ValueError("RLE counts hold characters outside '0'..'o'")
    ends = np.flatnonzero((c & 0x20) == 0)  # a value ends at a character without 0x20
    char_end = np.cumsum(lengths)
    if (c[char_end[lengths > 0] - 1] & 0x20).any():
        raise ValueError("RLE counts string ends inside a value")
    begins = np.empty_like(ends)
    begins[0] = 0
    begins[1:] = ends[:-1] + 1
    n_chars = ends - begins + 1
    longest = int(n_chars.max())
    if longest > _MAX_CHARS_PER_VALUE:
        raise ValueError("RLE counts hold a value longer than 64 bits")
    low = (c & 0x1F).astype(np.int64)
    x = low[begins]
    for j in range(1, longest):  # values have few characters: one pass per position
        more = np.flatnonzero(n_chars > j)
        x[more] |= low[begins[more] + j] << (5 * j)
    negative = (c[ends] & 0x10) != 0
    x[negative] |= -1 << (5 * n_chars[negative])
    # A value belongs to the mask whose characters hold its last character.
    offsets = np.zeros(k + 1, dtype=np.int64)
    offsets[1:] = np.searchsorted(ends, char_end, side="left")
    return _undelta(x, offsets), offsets


def _position(offsets: np.ndarray) -> np.ndarray:
    """(V,) index of every value inside its mask."""
    n = int(offsets[-1])
    return np.arange(n, dtype=np.int64) - np.repeat(offsets[:-1], np.diff(offsets))


def _undelta(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``cnts[m] = x[m] + cnts[m - 2]`` for m > 2 within each mask (pycocotools' rleFrString).

    Along each stride-2 chain of the whole buffer, ``S[i] = x[i] + S[i - 2]``; a count with
    m >= 1 is ``S[i] - S[p]`` where p lies two places before its chain's head in the mask
    (m = 1 or m = 2), and the first count (m = 0) stays as it is.
    """
    if x.size == 0:
        return x
    chain = np.empty_like(x)
    chain[0::2] = np.cumsum(x[0::2])
    chain[1::2] = np.cumsum(x[1::2])
    m = _position(offsets)
    first = np.repeat(offsets[:-1], np.diff(offsets))
    before = first - (m % 2)  # m even: the mask's m = 0; m odd: the value before the mask
    padded = np.concatenate([[0], chain])  # padded[p + 1] = S[p], S[-1] = 0
    out = chain - padded[before + 1]
    out[m == 0] = x[m == 0]
    return out


def exclusive_prefix(values: np.ndarray, dtype: type = np.int64) -> np.ndarray:
    """(V + 1,) ``[0, v0, v0 + v1, ...]`` of (V,) integers or bools, in ``dtype``.

    The values are converted to ``dtype`` first: a cumulative sum that casts as it goes
    (uint32 or int32 into int64) is about 4 times slower.
    """
    csum = np.empty(values.shape[0] + 1, dtype=dtype)
    csum[0] = 0
    csum[1:] = values
    np.cumsum(csum[1:], out=csum[1:])
    return csum


def checked_prefix(values: np.ndarray, offsets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(V + 1,) int64 exclusive prefix sums of the run lengths of K masks of an (H, W) image.

    Args:
        values: (V,) run lengths, mask after mask (any integer dtype).
        offsets: (K + 1,) int64; mask k's lengths are ``values[offsets[k]:offsets[k + 1]]``.
        shape: (H, W).

    Raises:
        ValueError: a negative run length, or a mask whose lengths do not add up to H x W (the
            message names the first such mask).
    """
    n = int(shape[0]) * int(shape[1])
    if values.dtype.kind != "u" and values.size and values.min() < 0:
        bad = int(np.searchsorted(offsets, np.flatnonzero(values < 0)[0], side="right") - 1)
        raise ValueError(f"mask {bad} has a negative run length")
    csum = np.empty(values.shape[0] + 1, dtype=np.int64)  # exclusive_prefix(values), inline
    csum[0] = 0
    csum[1:] = values
    np.cumsum(csum[1:], out=csum[1:])
    totals = csum[offsets[1:]] - csum[offsets[:-1]]
    if (totals != n).any():
        bad = int(np.flatnonzero(totals != n)[0])
        raise ValueError(
            f"mask {bad} covers {int(totals[bad])} pixels, not {n} (the image is "
            f"{shape[0]}x{shape[1]})"
        )
    return csum
