"""SEPL on mask runs: the merging rules of :mod:`fma.seeding.sepl` without decoding the masks.

:func:`refine_with_runs` gives the same label map as :func:`fma.seeding.sepl.refine_pseudo_label`
(every method and option, bit for bit) from :class:`fma.io.masks.runs.MaskRuns`. Per present
class ``c``, ``|M_k & P_c|`` for every mask is a difference of one int32 prefix sum of
``label == c`` at the run boundaries (O(runs), exact integers); the selected region and the CAM
fallback ("class pixels no available mask covers") are unions of runs
(:func:`fma.seeding.runs.cover`), and ``majority``'s "smallest covering mask wins" is a
priority painting (:func:`fma.seeding.runs.max_rank`). Work and memory are O(runs + H x W) per
class; the masks are never expanded to K x H x W.
"""

from __future__ import annotations

import numpy as np

from fma.io.masks.runs import MaskRuns
from fma.seeding.runs import column_major, count_in, cover, max_rank, row_major
from fma.seeding.sepl import (
    COVER_THRESHOLD,
    MAJORITY_MAX_AREA_RATIO,
    check_label,
    check_options,
    class_counts,
    majority_choice,
)

__all__ = ["refine_with_runs"]


def refine_with_runs(
    label: np.ndarray,
    runs: MaskRuns,
    num_classes: int,
    method: str = "max_iou_imp2",
    *,
    keep_ignore: bool = False,
    max_area_ratio: float | None = None,
    ignore_index: int = 255,
) -> np.ndarray:
    """Refine one pseudo label with its image's masks given as runs (SEPL).

    Args:
        label: (H, W) integer pseudo label (0 background, ``ignore_index`` ignore).
        runs: the image's K masks (:class:`~fma.io.masks.runs.MaskRuns` of shape (H, W)).
        num_classes, method, keep_ignore, max_area_ratio, ignore_index: as in
            :func:`fma.seeding.sepl.refine_pseudo_label`.

    Returns:
        (H, W) uint8 refined label, equal to ``refine_pseudo_label(label, runs.dense(), ...)``.

    Raises:
        ValueError: as :func:`fma.seeding.sepl.refine_pseudo_label`.
    """
    check_options(method, max_area_ratio)
    label = check_label(label, runs.shape, num_classes, ignore_index)
    flat = column_major(label)
    counts, present = class_counts(flat, num_classes, ignore_index)
    out = np.zeros(flat.shape[0], dtype=np.uint8)
    if present.size:
        size = counts[present].astype(np.int64)
        if method == "majority":
            ratio = MAJORITY_MAX_AREA_RATIO if max_area_ratio is None else max_area_ratio
            _majority(out, flat, runs, size, present, ratio)
        else:
            _published(out, flat, runs, size, present, method, max_area_ratio)
    if keep_ignore and counts[ignore_index]:
        out[(flat == ignore_index) & (out == 0)] = ignore_index
    return row_major(out, runs.shape)


def _published(
    out: np.ndarray,
    flat: np.ndarray,
    runs: MaskRuns,
    size: np.ndarray,
    present: np.ndarray,
    method: str,
    max_area_ratio: float | None,
) -> None:
    """The ascending class loop of the official mergers on runs; paints ``out`` (column-major)."""
    area = runs.areas
    used = np.zeros(len(runs), dtype=bool)
    for j, c in enumerate(present.tolist()):
        inside = flat == c
        inter = count_in(runs, inside)
        sel = (2 * inter - area) > 0
        if method == "max_iou_imp2":
            sel |= (inter / size[j]) >= COVER_THRESHOLD  # float64 division, as official
        if max_area_ratio is not None:
            sel &= area <= max_area_ratio * size[j]
        sel &= ~used
        region = cover(runs, sel)
        if method != "max_iou":
            region |= inside & ~cover(runs, ~used)
        used |= sel
        np.putmask(out, region, c)


def _majority(
    out: np.ndarray,
    flat: np.ndarray,
    runs: MaskRuns,
    size: np.ndarray,
    present: np.ndarray,
    max_area_ratio: float,
) -> None:
    """Order-independent assignment (see ``refine_pseudo_label``); paints ``out``."""
    area = runs.areas
    inter = np.zeros((len(runs), present.size), dtype=np.int64)
    uncovered = ~cover(runs)
    for j, c in enumerate(present.tolist()):
        inside = flat == c
        inter[:, j] = count_in(runs, inside)
        np.putmask(out, inside & uncovered, c)  # CAM fallback: no mask at all covers it
    chosen = majority_choice(inter, area, size, present, max_area_ratio)
    if chosen is None:
        return
    idx, cls = chosen
    # Rank 1..S in painting order, winner = the highest rank covering a pixel.
    rank = np.zeros(len(runs), dtype=np.int64)
    rank[idx] = np.arange(1, idx.size + 1)
    winner = max_rank(runs, rank)
    by_rank = np.concatenate([[0], cls]).astype(np.uint8)
    hit = winner > 0
    out[hit] = by_rank[winner[hit]]
