"""SAM masks as runs: COCO RLE decoded into foreground intervals, never into (K, H, W) arrays.

A COCO RLE mask of an (H, W) image lists alternating run lengths (background first) over the
pixels in column-major order, flat index ``f = x * H + y``. :class:`MaskRuns` keeps, for every
mask, its foreground runs as half-open intervals ``[start, end)`` of ``f``; per-mask sums of any
per-pixel quantity are then differences of prefix sums at the run boundaries, and unions or
priority painting are run operations too (:mod:`fma.seeding.runs`). Memory is O(runs), about
the length of the ``counts`` strings, instead of K x H x W bytes.

The ``counts`` strings are decoded in numpy, all masks of an image at once
(:func:`fma.io.masks.counts.decode_counts`). A mask whose counts do not add up to H x W, or that
holds a negative count, is refused with :class:`~fma.io.masks.npz.SamMaskError` naming the file.

:func:`load_mask_runs` reads an fma ``sam_masks`` file (version 2's arrays as they are, through
:mod:`fma.io.masks.npz` and :mod:`fma.io.masks.counts` only, or version 1's plain or gzip'd
JSON, parsed once);
:func:`load_runs_any` reads any layout of :func:`fma.io.masks.layout.mask_layout` (amg.py folders
and JSON lists are decoded densely, then converted with :func:`runs_from_dense`);
:meth:`MaskRuns.dense` decodes back (tests, panels).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from fma.io.masks.counts import checked_prefix, decode_counts, exclusive_prefix
from fma.io.masks.layout import load_masks_any, mask_layout
from fma.io.masks.npz import SamMaskError, is_mask_npz, mask_file_id, read_npz_arrays
from fma.io.masks.records import SamMasks, read_sam_records

__all__ = [
    "MaskRuns",
    "decode_counts",
    "load_mask_runs",
    "load_runs_any",
    "mask_sums",
    "runs_from_counts",
    "runs_from_dense",
    "runs_from_sam_masks",
]


@dataclasses.dataclass
class MaskRuns:
    """The foreground runs of K masks of an (H, W) image, grouped by mask.

    Attributes:
        shape: (H, W).
        starts: (R,) int64 column-major flat index of each run's first pixel.
        ends: (R,) int64 one past its last pixel; ``ends > starts``, ascending within a mask.
        offsets: (K + 1,) int64; the runs of mask k are ``offsets[k]:offsets[k + 1]``.
        levels: (K,) int8, 0 sub-part / 1 part / 2 whole, -1 unknown.
        predicted_iou: (K,) float32.
        stability_score: (K,) float32.
        image_id: the image id ("" when unknown).
    """

    shape: tuple[int, int]
    starts: np.ndarray
    ends: np.ndarray
    offsets: np.ndarray
    levels: np.ndarray
    predicted_iou: np.ndarray
    stability_score: np.ndarray
    image_id: str = ""

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def num_pixels(self) -> int:
        return int(self.shape[0]) * int(self.shape[1])

    @property
    def run_mask(self) -> np.ndarray:
        """(R,) int64 mask index of every run."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.offsets))

    @functools.cached_property
    def areas(self) -> np.ndarray:
        """(K,) int64 pixel count of every mask (computed once: the runs are not changed)."""
        return mask_sums(self, self.ends - self.starts)

    def dense(self) -> np.ndarray:
        """(K, H, W) bool masks (row-major), for tests and panels; costs K x H x W bytes."""
        h, w = self.shape
        k = len(self)
        flat = np.zeros(k * (h * w) + 1, dtype=np.int8)
        base = self.run_mask * (h * w)
        np.add.at(flat, base + self.starts, 1)
        np.add.at(flat, base + self.ends, -1)
        cover = np.cumsum(flat[:-1], dtype=np.int8).astype(bool)
        return np.ascontiguousarray(cover.reshape(k, w, h).transpose(0, 2, 1))


def mask_sums(runs: MaskRuns, per_run: np.ndarray) -> np.ndarray:
    """(K,) per-mask sums of a (R,) per-run quantity.

    Integers are summed exactly in int64 (a cumulative sum differenced at the mask boundaries);
    floats in float64 with one segment sum per mask, so the rounding error stays relative to
    each mask's own sum. Masks without runs sum to 0.
    """
    k = len(runs)
    if np.issubdtype(per_run.dtype, np.integer):
        csum = exclusive_prefix(per_run)
        return csum[runs.offsets[1:]] - csum[runs.offsets[:-1]]
    out = np.zeros(k, dtype=np.float64)
    nonempty = np.flatnonzero(np.diff(runs.offsets) > 0)
    if nonempty.size:
        out[nonempty] = np.add.reduceat(
            per_run.astype(np.float64, copy=False), runs.offsets[nonempty]
        )
    return out


def runs_from_counts(
    values: np.ndarray, offsets: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foreground runs from decoded run lengths (see :func:`decode_counts`).

    Returns:
        starts (R,), ends (R,) int64 and run offsets (K + 1,) int64, empty runs dropped.

    Raises:
        ValueError: a negative run length, or a mask whose run lengths do not add up to H x W
            (the message names the first such mask).
    """
    n = int(shape[0]) * int(shape[1])
    csum = checked_prefix(values, offsets, shape)
    # Foreground lengths sit at odd places inside their mask: place i - offsets[k] is odd
    # when the parity of i differs from the parity of the mask's first index (a bool per value
    # instead of an int64 position).
    lengths = np.diff(offsets)
    odd_index = np.zeros(values.size, dtype=bool)
    odd_index[1::2] = True
    odd_start = np.repeat((offsets[:-1] & 1).astype(bool), lengths)
    fg = np.flatnonzero((odd_index != odd_start) & (values != 0))
    run_offsets = np.searchsorted(fg, offsets).astype(np.int64)  # runs before each mask
    mask_of_run = np.repeat(np.arange(lengths.shape[0], dtype=np.int64), np.diff(run_offsets))
    # Mask k's counts start at pixel k * n of the concatenated masks.
    starts = csum[fg] - mask_of_run * n
    ends = starts + values[fg]
    return starts, ends, run_offsets


def _column(recs: list[dict[str, Any]], key: str, dtype: Any, default: float) -> np.ndarray:
    return np.asarray([r.get(key, default) for r in recs], dtype=dtype).reshape(-1)


def load_mask_runs(path: str | os.PathLike) -> MaskRuns:
    """Read an fma ``sam_masks`` file (version 2, or plain or gzip'd JSON parsed once) as runs.

    A version-2 file goes ``load_mask_runs`` -> :func:`~fma.io.masks.npz.is_mask_npz`,
    :func:`~fma.io.masks.npz.read_npz_arrays` -> :func:`runs_from_counts` -> ``checked_prefix``:
    its uint32 run lengths need no decoding.

    Raises:
        FileNotFoundError: no such file.
        SamMaskError: unreadable file, wrong format or version, or a corrupt record (names the
            file and the mask).
    """
    path = Path(path)
    if not (path.is_file() and is_mask_npz(path)):
        return _runs_from_json(path)
    header, counts, table, _ = read_npz_arrays(path)
    h, w = header["height"], header["width"]
    offsets = np.zeros(table.shape[0] + 1, dtype=np.int64)
    offsets[1:] = table["counts_end"]
    try:
        starts, ends, run_offsets = runs_from_counts(counts, offsets, (h, w))
    except ValueError as exc:
        raise SamMaskError(f"{path}: corrupt mask record ({exc}); delete it and re-run") from exc
    return MaskRuns(
        shape=(h, w),
        starts=starts,
        ends=ends,
        offsets=run_offsets,
        levels=table["level"].astype(np.int8),
        predicted_iou=table["predicted_iou"].astype(np.float32),
        stability_score=table["stability_score"].astype(np.float32),
        image_id=str(header["image_id"]),
    )


def _runs_from_json(path: Path) -> MaskRuns:
    """Runs of a version-1 file: its compressed counts strings decoded all at once."""
    doc = read_sam_records(path)
    recs = doc["masks"]
    try:
        h, w = int(doc["height"]), int(doc["width"])
        counts = []
        for i, r in enumerate(recs):
            seg = r["segmentation"]
            if [int(s) for s in seg["size"]] != [h, w]:
                raise ValueError(f"mask {i} has size {seg['size']}, the file header {[h, w]}")
            if not isinstance(seg["counts"], (str, bytes)):
                raise ValueError(f"mask {i} has uncompressed RLE counts")
            counts.append(seg["counts"])
        values, offsets = decode_counts(counts)
        starts, ends, run_offsets = runs_from_counts(values, offsets, (h, w))
        return MaskRuns(
            shape=(h, w),
            starts=starts,
            ends=ends,
            offsets=run_offsets,
            levels=_column(recs, "level", np.int8, -1),
            predicted_iou=_column(recs, "predicted_iou", np.float32, 1.0),
            stability_score=_column(recs, "stability_score", np.float32, 1.0),
            image_id=str(doc.get("image_id", mask_file_id(path))),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SamMaskError(f"{path}: corrupt mask record ({exc}); delete it and re-run") from exc


def runs_from_dense(
    masks: Any,
    *,
    levels: Any = None,
    predicted_iou: Any = None,
    stability_score: Any = None,
    image_id: str = "",
) -> MaskRuns:
    """Runs of (K, H, W) masks (bool, or numbers with non-zero inside).

    Memory: one (H, W) column-major copy of one mask at a time plus the runs.
    """
    m = np.asarray(masks)
    if m.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got shape {m.shape}")
    k, h, w = m.shape
    n = h * w
    starts, ends, counts = [], [], np.zeros(k, dtype=np.int64)
    for i in range(k):  # one pass per mask over its pixels, vectorised inside
        col = np.zeros(n + 2, dtype=np.int8)
        col[1:-1] = m[i].T.reshape(-1) != 0
        edges = np.flatnonzero(np.diff(col))
        starts.append(edges[0::2])
        ends.append(edges[1::2])
        counts[i] = edges.size // 2
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])

    def col(name: str, v: Any, dtype: Any, default: float) -> np.ndarray:
        if v is None:
            return np.full(k, default, dtype=dtype)
        out = np.asarray(v, dtype=dtype).reshape(-1)
        if out.shape[0] != k:
            raise ValueError(f"{out.shape[0]} {name} for {k} masks")
        return out

    return MaskRuns(
        shape=(h, w),
        starts=np.concatenate(starts).astype(np.int64) if k else np.zeros(0, np.int64),
        ends=np.concatenate(ends).astype(np.int64) if k else np.zeros(0, np.int64),
        offsets=offsets,
        levels=col("levels", levels, np.int8, -1),
        predicted_iou=col("predicted_iou", predicted_iou, np.float32, 1.0),
        stability_score=col("stability_score", stability_score, np.float32, 1.0),
        image_id=image_id,
    )


def runs_from_sam_masks(masks: SamMasks) -> MaskRuns:
    """Runs of decoded :class:`~fma.io.masks.records.SamMasks` (amg.py layouts)."""
    return runs_from_dense(
        masks.masks,
        levels=masks.levels,
        predicted_iou=masks.predicted_iou,
        stability_score=masks.stability_score,
        image_id=masks.image_id,
    )


def load_runs_any(
    mask_root: str | os.PathLike, image_id: str, *, image_size: tuple[int, int] | None = None
) -> MaskRuns:
    """One image's masks as runs from whichever layout ``mask_root`` uses.

    fma ``sam_masks`` files are read straight into runs (:func:`load_mask_runs`); amg.py PNG
    folders and RLE lists go through :func:`fma.io.masks.layout.load_masks_any`.

    Args:
        mask_root: folder of fma mask files or of amg.py outputs.
        image_id: the image id.
        image_size: (H, W) of the image, used only to shape an empty mask set.
    """
    kind, path = mask_layout(mask_root, image_id)
    if kind != "fma":
        return runs_from_sam_masks(load_masks_any(mask_root, image_id, image_size=image_size))
    runs = load_mask_runs(path)
    if image_size is not None and len(runs) == 0:
        runs.shape = (int(image_size[0]), int(image_size[1]))
    return runs
