"""SAMS: SAM-based seeding of FMA-WSSS (method-fma section 9), computed on the masks' runs.

Every SAM mask ("quasi-superpixel") takes one label from the CAM scores pooled inside it, and the
masks are painted into a seed map. With the final setting of the method (``norm_first=True``,
``gather="mean"``, ``bg_method="pow"``, ``priority=("level_bigger", "conf_bigger")``):

1. The CAM (P, h, w), at the patch resolution of the 16-aligned image, is upsampled bilinearly
   (``align_corners=False``) to the image size (H, W) of the masks; the small aspect change of
   the 16-alignment is ignored.
2. ``f_c = max(CAM_c, 0)``, then per-class min-max normalisation over the image's pixels
   (eps 1e-7), as the original code does (``cam2score_cuda`` -> ``min_max_norm(..., thresh=0.)``
   in FMA-WSSS ``src/libs/seeding/score.py``). The step is affine per class, so with
   ``gather="mean"`` the mask-level normalisation of step 4 cancels it up to the epsilon and
   only the clip at 0 matters; with ``gather="sum"`` it cancels only when the class's smallest
   clipped pixel is 0, because the shift is scaled by each mask's area.
3. ``a_kc = mean of f_c over the pixels of mask k``.
4. Per-class min-max normalisation across the masks of the image:
   ``a_kc = (a_kc - min_j a_jc) / (max_j a_jc - min_j a_jc + 1e-7)``.
5. Background score ``(1 - max_c a_kc) ** gamma``.
6. Mask label = argmax over (background, classes); confidence = that maximum. Exact ties go to
   the lower column: background first, then the CAM's channel order.
7. Masks are painted in ascending (level, confidence) order, so each pixel takes the label of
   its covering mask of highest level, then highest confidence. Masks with equal keys are painted
   in file order: **the later mask in the file wins**. Pixels no mask covers are background.
   The seed holds no ignore label (255).

``norm_first=False`` pools the raw (signed) upsampled CAM first and then applies ``max(., 0)``
and the across-mask normalisation, as the original code does. The other background methods
(``thresh``, ``no_bg``, ``alpha_bg``) and painting priorities are described with
:class:`fma.seeding.sams_options.SamsOptions` and :func:`add_background`.

Implementation: the masks are :class:`fma.io.masks.runs.MaskRuns` (never a (K, H, W) stack).
The per-mask CAM sums of step 3 are differences of column-restarted float64 prefix sums at the
run boundaries (:func:`fma.seeding.runs.float_sums`, O(runs) per class); the mask areas are the
run lengths; the painting of step 7 takes, for every pixel, the highest painting rank among its
covering masks (:func:`fma.seeding.runs.max_rank_segments`). Nothing loops over masks or pixels
in Python. Masks with no pixel take no part in the normalisation, get label 0 and paint nothing.
Decoded masks (:class:`~fma.io.masks.records.SamMasks`, (K, H, W) arrays) are converted to runs
first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from fma.io.cams import CamRecord
from fma.io.masks.records import SamMasks
from fma.io.masks.runs import MaskRuns, runs_from_dense, runs_from_sam_masks
from fma.seeding.runs import expand_segments, float_sums, max_rank, max_rank_segments, row_major
from fma.seeding.sams_options import (
    EPS,
    SamsOptions,
    check_cam,
    check_fg_cls,
    check_priority,
    to_numpy,
)
from fma.seeding.upsample import bilinear_resize

__all__ = [
    "SamsResult",
    "add_background",
    "label_and_order",
    "label_masks",
    "mask_fg_scores",
    "paint_masks",
    "painting_order",
    "sams_seed",
    "seed_from_scores",
    "seeds_from_masks",
    "top_mask",
    "upsample_cam",
]


@dataclasses.dataclass
class SamsResult:
    """Output of SAMS for one image.

    Attributes:
        seed: (H, W) uint8 label map, 0 = background, no 255.
        labels: (K,) uint8 label of every mask (file order).
        conf: (K,) float64 confidence of every mask.
        fg_score: (K, P) float64 normalised class scores (steps 1-4).
        order: (K,) int64 painting order (first painted first; the last wins).
    """

    seed: np.ndarray
    labels: np.ndarray
    conf: np.ndarray
    fg_score: np.ndarray
    order: np.ndarray


def upsample_cam(cam: Any, size: tuple[int, int]) -> np.ndarray:
    """Step 1: bilinear (``align_corners=False``) resize of a CAM to the image size.

    The numbers of ``F.interpolate`` on the CPU, computed without torch
    (:func:`fma.seeding.upsample.bilinear_resize`).

    Args:
        cam: (P, h, w) float CAM (numpy or torch, any float dtype).
        size: target (H, W).

    Returns:
        (P, H, W) float32 numpy array (a float32 copy when already at that size).
    """
    c = to_numpy(cam)
    if c.ndim != 3:
        raise ValueError(f"cam must be (P, h, w), got shape {c.shape}")
    H, W = int(size[0]), int(size[1])
    c = np.ascontiguousarray(c, dtype=np.float32)
    if c.shape[1:] == (H, W) or c.shape[0] == 0:
        return np.zeros((0, H, W), np.float32) if c.shape[0] == 0 else c.copy()
    return bilinear_resize(c, (H, W))


def _min_max(
    x: np.ndarray, axis: int, valid: np.ndarray | None = None, *, overwrite: bool = False
) -> np.ndarray:
    """``max(x, 0)`` then ``(x - min) / (max - min + EPS)`` along ``axis`` over ``valid`` rows
    (into ``x`` itself with ``overwrite``, for a caller that no longer needs it)."""
    x = np.maximum(x, x.dtype.type(0), out=x if overwrite else None)
    ref = x if valid is None else x[valid]
    if ref.shape[axis] == 0:
        return np.zeros_like(x)
    lo = ref.min(axis=axis, keepdims=True)
    hi = ref.max(axis=axis, keepdims=True)
    # In place on the clipped copy: the same two operations per element as
    # (x - lo) / (hi - lo + EPS), without two more arrays of x's size.
    out = np.subtract(x, lo, out=x)
    np.divide(out, hi - lo + x.dtype.type(EPS), out=out)
    if valid is not None:
        out[~valid] = 0
    return out


def mask_fg_scores(cam: Any, runs: MaskRuns, options: SamsOptions) -> np.ndarray:
    """Steps 1-4: normalised class scores of every mask.

    Scores depend on ``options.norm_first`` and ``options.gather`` only, so a sweep over the
    other options computes them once per image.

    Args:
        cam: (P, h, w) CAM (channel 0 is the background for ``no_bg``/``alpha_bg``).
        runs: the image's masks, which fix the size (H, W).
        options: the SAMS settings.

    Returns:
        (K, P) float64 scores in [0, 1); rows of empty masks are 0.
    """
    h, w = runs.shape
    score = upsample_cam(cam, (h, w)).reshape(-1, h * w)  # (P, N) float32
    if options.norm_first:
        score = _min_max(score, axis=1, overwrite=True)  # the upsampled copy is ours
    areas = runs.areas
    valid = areas > 0
    pooled = float_sums(runs, score.reshape(-1, h, w))  # (K, P) float64
    if options.gather == "mean":
        pooled[valid] /= areas[valid, None]
    return _min_max(pooled, axis=0, valid=valid)


def add_background(fg_score: np.ndarray, options: SamsOptions) -> np.ndarray:
    """Step 5: the score table whose column 0 is the background.

    * ``"pow"``: ``(1 - max_c a_kc) ** gamma`` (the final setting).
    * ``"thresh"``: a constant background score ``bg_thresh``; a mask is foreground when its
      best class score exceeds it.
    * ``"no_bg"``: the CAM carries its own background channel first, normalised like the
      classes; it competes directly.
    * ``"alpha_bg"``: as ``"no_bg"``, with the normalised background channel raised to ``alpha``.

    Args:
        fg_score: (K, P) normalised scores from :func:`mask_fg_scores`; for ``no_bg`` and
            ``alpha_bg`` column 0 already is the background channel.
        options: the SAMS settings.

    Returns:
        (K, 1 + P) float64 for ``pow``/``thresh``; (K, P) for ``no_bg``/``alpha_bg``.
    """
    fg = np.asarray(fg_score, dtype=np.float64)
    if fg.ndim != 2:
        raise ValueError(f"fg_score must be (K, P), got shape {fg.shape}")
    if options.bg_method == "pow":
        top = fg.max(axis=1) if fg.shape[1] else np.zeros(fg.shape[0])
        bg = np.power(1.0 - top, options.gamma)
    elif options.bg_method == "thresh":
        bg = np.full(fg.shape[0], options.bg_thresh)
    else:
        if fg.shape[1] == 0:
            raise ValueError(f"bg_method={options.bg_method!r} needs a background channel 0")
        if options.bg_method == "alpha_bg":
            fg = fg.copy()
            fg[:, 0] = np.power(fg[:, 0], options.alpha)
        return fg
    return np.concatenate([bg[:, None], fg], axis=1)


def label_masks(scores: np.ndarray, fg_cls: Any) -> tuple[np.ndarray, np.ndarray]:
    """Step 6: label and confidence of every mask.

    Args:
        scores: (K, 1 + P) table with the background in column 0 (:func:`add_background`).
        fg_cls: (P,) dataset class ids of columns 1..P.

    Returns:
        labels (K,) uint8 (0 = background) and confidences (K,) float64. Ties go to the lower
        column.
    """
    fg = check_fg_cls(fg_cls)
    if scores.ndim != 2 or scores.shape[1] != fg.shape[0] + 1:
        raise ValueError(
            f"score table {scores.shape} does not match {fg.shape[0]} classes plus background"
        )
    lut = np.concatenate([[0], fg]).astype(np.uint8)
    idx = np.argmax(scores, axis=1) if scores.shape[0] else np.zeros(0, np.int64)
    conf = scores[np.arange(scores.shape[0]), idx]
    return lut[idx], conf.astype(np.float64)


def painting_order(
    priority: str | Sequence[str],
    *,
    levels: np.ndarray | None = None,
    conf: np.ndarray | None = None,
    areas: np.ndarray | None = None,
) -> np.ndarray:
    """Step 7a: the order in which masks are painted (the last painted wins).

    Args:
        priority: keys, most significant first (``level_``, ``conf_`` or ``area_`` with
            ``bigger`` or ``smaller``; "bigger" means a bigger value is painted later and wins).
        levels: (K,) SAM levels (needed by ``level_*``).
        conf: (K,) confidences (needed by ``conf_*``).
        areas: (K,) pixel counts (needed by ``area_*``).

    Returns:
        (K,) int64 mask indices in ascending painting order. Masks equal in every key keep their
        file order, so the later one is painted later and wins.
    """
    prio = check_priority(priority)
    given = {"level": levels, "conf": conf, "area": areas}
    sizes = {k: np.asarray(v).reshape(-1).shape[0] for k, v in given.items() if v is not None}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"levels, conf and areas differ in length: {sizes}")
    K = next(iter(sizes.values()), 0)
    keys = []
    for p in prio:
        name, direction = p.split("_")
        value = given[name]
        if value is None:
            raise ValueError(f"priority {p!r} needs the mask {name}s")
        v = np.asarray(value, dtype=np.float64).reshape(-1)
        keys.append(v if direction == "bigger" else -v)
    # np.lexsort sorts by the last key first; the mask index makes the order total.
    return np.lexsort((np.arange(K), *reversed(keys))).astype(np.int64)


def label_and_order(
    fg_score: np.ndarray,
    fg_cls: Any,
    options: SamsOptions,
    areas: np.ndarray,
    levels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 5-7a: background score, each mask's label and confidence (empty masks ->
    background), and the painting order.

    Args:
        fg_score: (K, P) scores of :func:`mask_fg_scores` (P = len(fg_cls), +1 background).
        fg_cls: (P,) dataset class ids.
        options: the SAMS settings.
        areas: (K,) mask areas.
        levels: (K,) SAM levels; None means unknown (all equal).

    Returns:
        ``(labels, conf, order)``: (K,) uint8 class ids, (K,) float64 confidences, (K,) int64
        mask indices in painting order (painted first to last).
    """
    K = areas.shape[0]
    fg = check_fg_cls(fg_cls)
    want = fg.shape[0] + int(options.has_bg_channel)
    if fg_score.shape != (K, want):
        raise ValueError(f"fg_score has shape {fg_score.shape}, expected {(K, want)}")
    lv = np.full(K, -1, np.int64) if levels is None else np.asarray(levels).reshape(-1)
    if lv.shape[0] != K:
        raise ValueError(f"{lv.shape[0]} levels for {K} masks")
    labels, conf = label_masks(add_background(fg_score, options), fg)
    labels[areas == 0] = 0
    order = painting_order(options.priority, levels=lv, conf=conf, areas=areas)
    return labels, conf, order


def _ranks(order: np.ndarray, k: int) -> np.ndarray:
    """(K,) int64 painting rank 1..K of every mask from a painting order (a permutation)."""
    order = np.asarray(order, dtype=np.int64).reshape(-1)
    if order.shape[0] != k or (k and not np.array_equal(np.sort(order), np.arange(k))):
        raise ValueError(f"order must be a permutation of the {k} masks")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(1, k + 1)
    return rank


def paint_masks(runs: MaskRuns, labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Step 7b: paint ``labels`` in ``order`` (the last wins); uncovered pixels are 0.

    Args:
        runs: the K masks.
        labels: (K,) uint8 mask labels.
        order: (K,) painting order (:func:`painting_order`).

    Returns:
        (H, W) uint8 label map.
    """
    k = len(runs)
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != k:
        raise ValueError(f"{labels.shape[0]} labels for {k} masks")
    rank = _ranks(order, k)
    lut = np.zeros(k + 1, dtype=np.uint8)
    lut[1:] = labels[np.asarray(order, dtype=np.int64).reshape(-1)]
    bounds, table = max_rank_segments(runs, rank)  # labels per segment, then one uint8 pass
    return row_major(expand_segments(runs, bounds, lut[table]), runs.shape)


def top_mask(runs: MaskRuns, order: np.ndarray) -> np.ndarray:
    """(H, W) int64 index of the covering mask painted last, -1 where no mask covers a pixel."""
    lut = np.concatenate([[-1], np.asarray(order, dtype=np.int64).reshape(-1)])
    return row_major(lut[max_rank(runs, _ranks(order, len(runs)))], runs.shape)


def seed_from_scores(
    runs: MaskRuns, fg_score: np.ndarray, fg_cls: Any, options: SamsOptions
) -> SamsResult:
    """Steps 5-7 from the scores of :func:`mask_fg_scores` (levels from ``runs``).

    Args:
        runs: the K masks.
        fg_score: (K, P) float64 scores (P = len(fg_cls), plus 1 for a background channel).
        fg_cls: (P,) dataset class ids.
        options: the SAMS settings.
    """
    levels = np.asarray(runs.levels, dtype=np.int64)
    labels, conf, order = label_and_order(fg_score, fg_cls, options, runs.areas, levels)
    return SamsResult(paint_masks(runs, labels, order), labels, conf, fg_score, order)


def sams_seed(cam: CamRecord, masks: MaskRuns | SamMasks, options: SamsOptions) -> SamsResult:
    """SAMS seed of one image from its CAM record and its masks.

    Args:
        cam: the image's :class:`~fma.io.cams.CamRecord` (``fg_cls`` dataset ids).
        masks: the image's masks at its original size, as runs or decoded (converted to runs).
        options: the SAMS settings.

    Returns:
        :class:`SamsResult`.

    Raises:
        ValueError: the CAM's ``ori_size`` differs from the mask size, or the CAM does not fit
            the classes and ``options.bg_method``.
    """
    runs = masks if isinstance(masks, MaskRuns) else runs_from_sam_masks(masks)
    if cam.ori_size is not None and tuple(cam.ori_size) != tuple(runs.shape):
        raise ValueError(
            f"CAM is for an image of size {tuple(cam.ori_size)}, masks are {tuple(runs.shape)}; "
            "the CAM and mask folders belong to different images or resizings"
        )
    c, fg = check_cam(cam.cam, cam.fg_cls, options)
    return seed_from_scores(runs, mask_fg_scores(c, runs, options), fg, options)


def seeds_from_masks(
    masks: Any, cam: Any, fg_cls: Any, options: SamsOptions, *, levels: Any = None
) -> SamsResult:
    """SAMS seed of one image from arrays.

    Args:
        masks: (K, H, W) bool SAM masks at the image's original size (file order; numpy or
            torch, non-zero numbers count as inside).
        cam: (P, h, w) float CAM at any resolution (upsampled to (H, W)); (1 + P, h, w) with a
            background channel first for ``bg_method`` ``no_bg``/``alpha_bg``.
        fg_cls: (P,) int dataset class ids (1..254) of the CAM's class channels.
        options: the SAMS settings.
        levels: (K,) int SAM levels (0 sub-part, 1 part, 2 whole); None: all unknown.

    Returns:
        :class:`SamsResult`; ``seed`` is (H, W) uint8 without 255.

    Raises:
        ValueError: invalid inputs or inconsistent shapes.
    """
    runs = runs_from_dense(to_numpy(masks), levels=None if levels is None else to_numpy(levels))
    c, fg = check_cam(cam, fg_cls, options)
    return seed_from_scores(runs, mask_fg_scores(c, runs, options), fg, options)
