"""SAMS on mask runs: the seeds of :mod:`fma.seeding.sams` without decoding the masks.

:func:`sams_seed_runs` takes the masks as :class:`fma.io.masks.runs.MaskRuns`. The per-mask CAM
sums (step 3 of :mod:`fma.seeding.sams`) are differences of column-restarted float64 prefix
sums of the upsampled, normalised CAM at the run boundaries (:func:`fma.seeding.runs.float_sums`,
O(runs) per class); the mask areas are the run lengths; the painting (step 7) takes, for every
pixel, the highest painting rank among its covering masks (:func:`fma.seeding.runs.max_rank`).
Every other step is the same function as in :mod:`fma.seeding.sams`.

The sums are the same real numbers as the dense path's segment sums, added in another order, so
they can differ in the last bits (relative 1e-16 per column a run crosses). Labels and painting
order follow from comparisons of these sums and agree unless two candidates differ by less than
that; masks over an all-zero CAM region sum to exactly 0 in both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fma.io.cams import CamRecord
from fma.io.masks.runs import MaskRuns
from fma.seeding.runs import expand_segments, float_sums, max_rank, max_rank_segments, row_major
from fma.seeding.sams import (
    GATHER_METHODS,
    GatherMethod,
    SamsOptions,
    SamsResult,
    _min_max,
    check_cam,
    label_and_order,
    upsample_cam,
)

__all__ = [
    "mask_fg_scores_runs",
    "paint_runs",
    "sams_seed_runs",
    "seed_from_scores_runs",
    "top_mask_runs",
]


def mask_fg_scores_runs(
    cam: Any, runs: MaskRuns, *, norm_first: bool = True, gather: GatherMethod = "mean"
) -> np.ndarray:
    """Steps 1-4 on runs: (K, P) float64 normalised class scores (rows of empty masks 0).

    Args:
        cam: (P, h, w) CAM, upsampled to the masks' (H, W).
        runs: the image's masks.
        norm_first, gather: see :class:`fma.seeding.sams.SamsOptions`.
    """
    if gather not in GATHER_METHODS:
        raise ValueError(f"unknown gather {gather!r}; choose one of {GATHER_METHODS}")
    h, w = runs.shape
    score = upsample_cam(cam, (h, w)).reshape(-1, h * w)  # (P, N) float32
    if norm_first:
        score = _min_max(score, axis=1, overwrite=True)  # the upsampled copy is ours
    areas = runs.areas
    valid = areas > 0
    pooled = float_sums(runs, score.reshape(-1, h, w))  # (K, P) float64
    if gather == "mean":
        pooled[valid] /= areas[valid, None]
    return _min_max(pooled, axis=0, valid=valid)


def paint_runs(runs: MaskRuns, labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Step 7b on runs: paint ``labels`` in ``order`` (the last wins); uncovered pixels are 0.

    Returns:
        (H, W) uint8 label map.
    """
    k = len(runs)
    rank = _ranks(order, k)
    lut = np.zeros(k + 1, dtype=np.uint8)
    lut[1:] = np.asarray(labels).reshape(-1)[np.asarray(order, dtype=np.int64).reshape(-1)]
    bounds, table = max_rank_segments(runs, rank)  # labels per segment, then one uint8 pass
    return row_major(expand_segments(runs, bounds, lut[table]), runs.shape)


def _ranks(order: np.ndarray, k: int) -> np.ndarray:
    """(K,) int64 painting rank 1..K of every mask from a painting order (a permutation)."""
    order = np.asarray(order, dtype=np.int64).reshape(-1)
    if order.shape[0] != k or (k and not np.array_equal(np.sort(order), np.arange(k))):
        raise ValueError(f"order must be a permutation of the {k} masks")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(1, k + 1)
    return rank


def top_mask_runs(runs: MaskRuns, order: np.ndarray) -> np.ndarray:
    """(H, W) int64 index of the covering mask painted last, -1 where no mask covers a pixel."""
    lut = np.concatenate([[-1], np.asarray(order, dtype=np.int64).reshape(-1)])
    return row_major(lut[max_rank(runs, _ranks(order, len(runs)))], runs.shape)


def seed_from_scores_runs(
    runs: MaskRuns, fg_score: np.ndarray, fg_cls: Any, options: SamsOptions
) -> SamsResult:
    """Steps 5-7 on runs from the scores of :func:`mask_fg_scores_runs` (levels from ``runs``)."""
    levels = np.asarray(runs.levels, dtype=np.int64)
    labels, conf, order = label_and_order(fg_score, fg_cls, options, runs.areas, levels)
    return SamsResult(paint_runs(runs, labels, order), labels, conf, fg_score, order)


def sams_seed_runs(cam: CamRecord, runs: MaskRuns, options: SamsOptions) -> SamsResult:
    """SAMS seed of one image from its CAM record and its masks as runs.

    Equals :func:`fma.seeding.sams.sams_seed` on the decoded masks (see the module docstring
    for the rounding of the sums).

    Raises:
        ValueError: the CAM's ``ori_size`` differs from the mask size, or the CAM does not fit
            the classes and ``options.bg_method``.
    """
    if cam.ori_size is not None and tuple(cam.ori_size) != tuple(runs.shape):
        raise ValueError(
            f"CAM is for an image of size {tuple(cam.ori_size)}, masks are {tuple(runs.shape)}; "
            "the CAM and mask folders belong to different images or resizings"
        )
    c, fg = check_cam(cam.cam, cam.fg_cls, options)
    score = mask_fg_scores_runs(c, runs, norm_first=options.norm_first, gather=options.gather)
    return seed_from_scores_runs(runs, score, fg, options)
