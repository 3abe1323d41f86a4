"""Run operations for SAMS and SEPL: per-mask sums, unions and priority painting on mask runs.

Masks come as :class:`fma.io.masks.runs.MaskRuns`: foreground intervals ``[start, end)`` of the
column-major flat pixel index ``f = x * H + y``. Every per-pixel input is first turned into
that order (:func:`column_major`) and every per-pixel output back (:func:`row_major`).

* :func:`count_in` gives ``|M_k & A|`` for all masks from one int32 prefix sum of ``A``.
* :func:`float_sums` gives the sum of a float image over every mask from prefix sums restarted
  at every column, so the rounding error of a run stays relative to its column (at most H
  values), not to the whole image.
* :func:`cover` is the union of a subset of masks: +1 / -1 at the run ends of an int32 array
  over the pixels, then a cumulative sum.
* :func:`max_rank` is the highest painting rank of the masks covering each pixel (the last
  painted mask wins). It works on the elementary segments between run ends (marked in one pass
  over the pixels, M of them) and applies each run as a range maximum: with one scatter of all
  (run, segment) pairs when the runs cover each segment a few times on average
  (:data:`DIRECT_COVER`), else with a top-down sparse table (two blocks of a power of two per
  run): O(R log R + M log M + H W) time, O(R + H W) memory either way.

Memory per call stays a few bytes per pixel (int32 and bool arrays over H x W) plus O(R);
nothing builds a (K, H, W) array.
"""

from __future__ import annotations

import numpy as np

from fma.io.masks.counts import exclusive_prefix
from fma.io.masks.runs import MaskRuns, mask_sums

__all__ = [
    "DIRECT_COVER",
    "column_major",
    "count_in",
    "cover",
    "expand_segments",
    "float_sums",
    "max_rank",
    "max_rank_segments",
    "row_major",
]


def column_major(image: np.ndarray) -> np.ndarray:
    """(H, W) array -> (H*W,) copy in column-major order (the order of RLE runs)."""
    return np.ascontiguousarray(np.asarray(image).T).reshape(-1)


def row_major(flat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H*W,) column-major array -> (H, W) C-contiguous array."""
    h, w = int(shape[0]), int(shape[1])
    return np.ascontiguousarray(flat.reshape(w, h).T)


def count_in(runs: MaskRuns, inside: np.ndarray) -> np.ndarray:
    """(K,) int64 ``|M_k & A|`` for a (H*W,) column-major bool ``A``."""
    csum = exclusive_prefix(inside, np.int32 if runs.num_pixels < 2**31 else np.int64)
    return mask_sums(runs, csum[runs.ends] - csum[runs.starts])


def float_sums(runs: MaskRuns, images: np.ndarray) -> np.ndarray:
    """(K, P) float64 sums of P float (H, W) images over the pixels of every mask.

    Prefix sums (float64) restart at every image column; a run inside one column is the
    difference of two of them, a run over several columns adds the column totals in between.

    Args:
        runs: the masks.
        images: (P, H, W) or (H, W) floats (one image gives a (K,) result).
    """
    h, w = runs.shape
    imgs = np.asarray(images)
    single = imgs.ndim == 2
    if single:
        imgs = imgs[None]
    if imgs.shape[1:] != (h, w):
        raise ValueError(f"images are {imgs.shape[1:]}, masks are {(h, w)}")
    p = imgs.shape[0]
    xs, ys = np.divmod(runs.starts, h)
    xe = (runs.ends - 1) // h
    ye = runs.ends - xe * h  # 1..h: the end stays in the column of the run's last pixel
    # prefix[y, c, x] = sum of column x of image c above row y (float64), prefix[0] = 0.
    # Row by row, all images at once: every column's running sum in the order of np.cumsum
    # down the column (the same float64 additions), one vector add per row instead of a
    # strided scan per column (about 1.5 times faster on VOC images, and the per-call cost of
    # the H adds is shared by the P images).
    prefix = np.zeros((h + 1, p, w), dtype=np.float64)
    prefix[1:] = imgs.transpose(1, 0, 2)
    rows = list(prefix[1:])  # the row views made once: half the cost of indexing per add
    add, above = np.add, rows[0]
    for row in rows[1:]:
        add(above, row, row)
        above = row
    flat = prefix.reshape(-1)
    lo, hi = ys * (p * w) + xs, ye * (p * w) + xe  # image 0; image c is c * w further
    span = np.flatnonzero(xe != xs)
    cols = np.zeros((p, w + 1), dtype=np.float64)
    np.cumsum(prefix[h], axis=1, out=cols[:, 1:])  # column totals, then their running sum
    out = np.zeros((len(runs), p), dtype=np.float64)
    for c in range(p):
        per_run = flat[hi + c * w] - flat[lo + c * w]
        if span.size:
            per_run[span] += cols[c, xe[span]] - cols[c, xs[span]]
        out[:, c] = mask_sums(runs, per_run)
    return out[:, 0] if single else out


def _segments(runs: MaskRuns, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, ...]:
    """Boundaries of the elementary segments between run ends, and each run's range [a, b).

    One pass over the pixels marks the boundaries (no sort): segment i is
    ``[bounds[i], bounds[i + 1])`` and run r covers the segments ``a[r] <= i < b[r]``. A run
    end's segment index is its place in ``bounds``, written at the boundaries of an
    uninitialised array and read back at the run ends (about 3 times faster than a cumulative
    count of the marks over all pixels).
    """
    n = runs.num_pixels
    mark = np.zeros(n + 1, dtype=bool)
    mark[starts] = True
    mark[ends] = True
    bounds = np.flatnonzero(mark)
    place = np.empty(n + 1, dtype=np.int32 if bounds.size < 2**31 else np.int64)
    place[bounds] = np.arange(bounds.size, dtype=place.dtype)
    return bounds, place[starts], place[ends]


def expand_segments(runs: MaskRuns, bounds: np.ndarray, per_segment: np.ndarray) -> np.ndarray:
    """(H*W,) pixels of elementary-segment values (0 outside every segment)."""
    out = np.zeros(runs.num_pixels, dtype=per_segment.dtype)
    if bounds.size:
        out[bounds[0] : bounds[-1]] = np.repeat(per_segment, np.diff(bounds))
    return out


def cover(runs: MaskRuns, select: np.ndarray | None = None) -> np.ndarray:
    """(H*W,) column-major bool: pixels covered by at least one selected mask.

    Args:
        runs: the masks.
        select: (K,) bool, or None for every mask.
    """
    starts, ends = runs.starts, runs.ends
    if select is not None:
        keep = np.repeat(np.asarray(select, dtype=bool), np.diff(runs.offsets))
        starts, ends = starts[keep], ends[keep]
    n = runs.num_pixels
    depth = np.zeros(n + 1, dtype=np.int32)
    np.add.at(depth, starts, np.int32(1))
    np.add.at(depth, ends, np.int32(-1))
    np.cumsum(depth, out=depth)
    return depth[:n] > 0


def max_rank(runs: MaskRuns, rank: np.ndarray) -> np.ndarray:
    """(H*W,) column-major: the largest ``rank`` among the masks covering each pixel.

    Args:
        runs: the masks.
        rank: (K,) non-negative integers; 0 paints nothing.

    Returns:
        (H*W,) array of ``rank``'s dtype, 0 where no mask with a positive rank covers the pixel.
    """
    bounds, table = max_rank_segments(runs, rank)
    return expand_segments(runs, bounds, table)


#: Runs that cover each elementary segment at most this many times on average are applied
#: with one scatter of all (run, segment) pairs (:func:`_scatter_max`: a few passes over the
#: pairs); runs that overlap more with the sparse table (two passes over the segments per
#: power of two, plus sorting the runs by length). Superpixel levels each tile the image, so
#: they cover every pixel once per level (3 times for the presets); there the scatter is about
#: twice as fast.
DIRECT_COVER = 8


def max_rank_segments(runs: MaskRuns, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`max_rank` per elementary segment: ``(bounds, table)``, segment i is the pixels
    ``bounds[i]:bounds[i + 1]`` (column-major) with the value ``table[i]``; pixels outside
    ``bounds[0]:bounds[-1]`` are 0. A caller that maps ranks to labels maps ``table`` (M values)
    before expanding, instead of H*W pixels after."""
    rank = np.asarray(rank)
    per_run = np.repeat(rank, np.diff(runs.offsets))
    keep = per_run > 0
    starts, ends, per_run = runs.starts[keep], runs.ends[keep], per_run[keep]
    if starts.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=rank.dtype)
    bounds, a, b = _segments(runs, starts, ends)
    m = bounds.size - 1  # elementary segments
    lengths = b - a  # segments per run, >= 1
    total = int(lengths.sum())
    if total <= DIRECT_COVER * m:
        return bounds, _scatter_max(a, lengths, total, per_run, m)
    # floor(log2(length)), exact: frexp's exponent of an integer below 2^53 (lengths are >= 1).
    level = (np.frexp(lengths.astype(np.float64))[1] - 1).astype(np.uint8)  # below 53
    # The runs of each level as one contiguous slice: a stable sort of uint8 keys (numpy's
    # radix sort, about 4 times faster than on int64 keys).
    by_level = np.argsort(level, kind="stable")
    a, b, per_run = a[by_level], b[by_level], per_run[by_level]
    top = int(level.max())
    edges = np.searchsorted(level[by_level], np.arange(top + 2))
    table = np.zeros(0, dtype=rank.dtype)
    for k in range(top, -1, -1):
        size, half = m - (1 << k) + 1, 1 << k
        level_k = np.zeros(size, dtype=rank.dtype)
        if table.size:  # push level k + 1 down: block i covers blocks i and i + 2^k here
            level_k[: table.size] = table
            np.maximum(level_k[half : half + table.size], table,
                       out=level_k[half : half + table.size])  # fmt: skip
        lo, hi = edges[k], edges[k + 1]
        if hi > lo:  # each run as two blocks of 2^k segments: [a, a + 2^k) and [b - 2^k, b)
            values = per_run[lo:hi]
            np.maximum.at(level_k, np.concatenate([a[lo:hi], b[lo:hi] - half]),
                          np.concatenate([values, values]))  # fmt: skip
        table = level_k
    return bounds, table


def _scatter_max(
    a: np.ndarray, lengths: np.ndarray, total: int, per_run: np.ndarray, m: int
) -> np.ndarray:
    """(m,) the largest ``per_run`` over the runs covering each segment, one ``maximum.at``
    over all ``total`` (run, segment) pairs; run r covers ``a[r] : a[r] + lengths[r]``."""
    # Segment indices of all pairs, run after run: steps of 1, and at each run's first pair
    # the jump from the previous run's last segment.
    step = np.ones(total, dtype=a.dtype)
    step[0] = a[0]
    firsts = exclusive_prefix(lengths)[1:-1]
    step[firsts] = a[1:] - (a[:-1] + lengths[:-1]) + 1
    np.cumsum(step, out=step)  # in a's dtype: every partial sum is a segment index
    table = np.zeros(m, dtype=per_run.dtype)
    np.maximum.at(table, step, np.repeat(per_run, lengths))
    return table
