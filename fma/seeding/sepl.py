"""SEPL: SAM-enhanced pseudo labels (Chen, Mai et al., arXiv 2305.05803).

A training-free refinement of a class-aware pseudo label with class-agnostic SAM masks: for every
foreground class present in the pseudo label, the SAM masks that agree with that class's region
are selected and their union is painted with the class; class pixels no SAM mask touches keep the
pseudo label ("trust the CAM where SAM says nothing"); everything else is background.

Published variants (bit-exact with ``merge/{max_iou,max_iou_imp,max_iou_imp2}.py`` of the
official code ``cskyl/SAM_WSSS``). Notation: ``P_c = [label == c]``, ``M_k`` a mask, ``|.|`` a
pixel count, ``I = |M_k & P_c|``.

1. Loop over the classes ``c = 1 .. num_classes - 1`` in ascending order; skip absent classes.
2. The pool ``U`` holds the masks no earlier class has selected.
3. Select ``S_c = {k in U : 2 * I - |M_k| > 0}`` (strictly more than half of the mask inside the
   class, integer test); ``max_iou_imp2`` also selects ``I / |P_c| >= 0.85`` (float division, as
   the official code). A selected mask leaves the pool for later classes.
4. ``R_c = union(M_k, k in S_c)``; ``max_iou_imp`` and ``max_iou_imp2`` add the CAM fallback
   ``P_c - union(M_k, k in U)`` (class pixels no pool mask covers).
5. ``out[R_c] = c``: a later class overwrites an earlier one. Pixels equal to the ignore index
   become background unless a selected mask covers them; the output never holds the ignore index.

| method          | selection                         | CAM fallback |
|-----------------|-----------------------------------|--------------|
| ``max_iou``     | inside > 50 %                     | no           |
| ``max_iou_imp`` | inside > 50 %                     | yes          |
| ``max_iou_imp2``| inside > 50 % or coverage >= 85 % | yes (default)|

Opt-in deviations (off by default; not part of the published method):

* ``keep_ignore=True``: input pixels equal to ``ignore_index`` that no selected mask covers stay
  ``ignore_index`` instead of becoming background.
* ``max_area_ratio=r`` with a published method: a mask with ``|M_k| > r * |P_c|`` cannot be
  selected for class ``c`` (it stays in the pool and still counts as coverage).
* ``method="majority"``: an order-independent assignment; see :func:`refine_pseudo_label`.

Implementation: the masks are :class:`fma.io.masks.runs.MaskRuns` (decoded (K, H, W) masks
are converted to runs first). Per present class ``c``, ``|M_k & P_c|`` for every mask is a
difference of one int32 prefix sum of ``label == c`` at the run boundaries (O(runs), exact
integers, :func:`fma.seeding.runs.count_in`); the selected region and the CAM fallback are
unions of runs (:func:`fma.seeding.runs.cover`), and ``majority``'s "smallest covering mask
wins" is a priority painting (:func:`fma.seeding.runs.max_rank`). Nothing loops over masks or
pixels in Python; work and memory are O(runs + H x W) per class, the masks are never expanded
to K x H x W.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fma.io.masks.runs import MaskRuns, runs_from_dense
from fma.seeding.runs import column_major, count_in, cover, max_rank, row_major

__all__ = [
    "COVER_THRESHOLD",
    "MAJORITY_MAX_AREA_RATIO",
    "METHODS",
    "PUBLISHED_METHODS",
    "refine_pseudo_label",
]

#: Published variants of the official code, in the order of its ``merge/`` folder.
PUBLISHED_METHODS = ("max_iou", "max_iou_imp", "max_iou_imp2")
#: All accepted ``method`` values; ``majority`` is an fma extension.
METHODS = (*PUBLISHED_METHODS, "majority")
#: Coverage threshold of ``max_iou_imp2`` (inclusive): ``|M & P_c| / |P_c| >= 0.85``.
COVER_THRESHOLD = 0.85
#: Area cap used by ``method="majority"`` when ``max_area_ratio`` is None.
MAJORITY_MAX_AREA_RATIO = 2.0


def check_label(
    label: np.ndarray, mask_shape: tuple[int, ...], num_classes: int, ignore_index: int
) -> np.ndarray:
    """Validate a pseudo label against the masks' (H, W); returns it as uint8.

    Raises:
        ValueError: not 2-D, a size other than the masks', a bad class count or ignore index,
            or values outside 0..255.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be an (H, W) array, got shape {label.shape}")
    if tuple(mask_shape) != label.shape:
        raise ValueError(
            f"masks are {mask_shape[0]}x{mask_shape[1]} (HxW) but the pseudo label is "
            f"{label.shape[0]}x{label.shape[1]}; SEPL never resizes, give masks of the label's size"
        )
    if not 2 <= int(num_classes) <= 255:
        raise ValueError(f"num_classes must lie in 2..255, got {num_classes}")
    if not int(num_classes) <= ignore_index <= 255:
        raise ValueError(
            f"ignore_index must lie in {num_classes}..255 (not a class id), got {ignore_index}"
        )
    if not (np.issubdtype(label.dtype, np.integer) or label.dtype == bool):
        raise ValueError(f"label must hold integer class ids, got dtype {label.dtype}")
    if label.dtype != np.uint8 and label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError("label values must lie in 0..255")
    return label.astype(np.uint8, copy=False)


def check_options(method: str, max_area_ratio: float | None) -> None:
    """Raise ValueError for an unknown ``method`` or a ``max_area_ratio`` that is not > 0."""
    if method not in METHODS:
        raise ValueError(f"unknown SEPL method {method!r}; choose one of {', '.join(METHODS)}")
    if max_area_ratio is not None and not max_area_ratio > 0:
        raise ValueError(f"max_area_ratio must be > 0 (or None), got {max_area_ratio}")


def class_counts(
    flat_label: np.ndarray, num_classes: int, ignore_index: int
) -> tuple[np.ndarray, np.ndarray]:
    """(256,) int64 pixel count of every value and the present classes 1..C-1, ascending.

    Raises:
        ValueError: values that are neither classes nor ``ignore_index``.
    """
    counts = np.bincount(flat_label, minlength=256)
    bad = np.flatnonzero(counts[num_classes:] > 0) + num_classes
    bad = bad[bad != ignore_index]
    if bad.size:
        raise ValueError(
            f"label holds values {bad[:10].tolist()} that are neither classes 0..{num_classes - 1} "
            f"nor ignore {ignore_index}; check num_classes"
        )
    return counts, np.flatnonzero(counts[1:num_classes] > 0) + 1


def _check_masks(masks: Any) -> np.ndarray:
    """(K, H, W) masks as an array; raises ValueError for another rank or dtype."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be a (K, H, W) array, got shape {masks.shape}")
    if masks.dtype != bool and not (
        np.issubdtype(masks.dtype, np.integer) or np.issubdtype(masks.dtype, np.floating)
    ):
        raise ValueError(f"masks must be bool (or 0/1 numbers), got dtype {masks.dtype}")
    return masks


def refine_pseudo_label(
    label: np.ndarray,
    masks: MaskRuns | Any,
    num_classes: int,
    method: str = "max_iou_imp2",
    *,
    keep_ignore: bool = False,
    max_area_ratio: float | None = None,
    ignore_index: int = 255,
) -> np.ndarray:
    """Refine one pseudo label with the SAM masks of its image (SEPL).

    With the defaults the result equals the official ``max_iou_imp2`` merger bit for bit; see
    the module docstring for the published algorithm.

    ``method="majority"`` (fma extension; independent of the mask order and, except for ties, of
    the class order). For each mask ``k`` and present class ``c`` let ``I = |M_k & P_c|``:

    1. ``c`` is a candidate of ``k`` when ``2 * I > |M_k|`` (``c`` is the strict majority
       pseudo label of the mask) or ``I / |P_c| >= 0.85`` (coverage path of ``max_iou_imp2``),
       and ``|M_k| <= max_area_ratio * |P_c|`` (area cap; ``max_area_ratio=None`` uses
       :data:`MAJORITY_MAX_AREA_RATIO` = 2.0, ``math.inf`` disables the cap). Since
       ``2 * I > |M_k|`` implies ``|M_k| < 2 * |P_c|``, a cap of 2 leaves the majority path
       untouched and stops masks holding >= 85 % of a class from flooding more than twice the
       class's area.
    2. Each mask goes to its candidate class with the largest ``I`` (ties: the lower class id),
       or to no class when it has no candidate. Masks are judged independently: no pool.
    3. Where masks of different classes overlap, the pixel takes the class of the smallest
       covering assigned mask (ties in area: the higher class id).
    4. CAM fallback: pixels of ``P_c`` that no mask at all covers keep class ``c``.
    5. Everything else is background (or ignore, with ``keep_ignore``).

    Args:
        label: (H, W) integer pseudo label, 0 = background, 1..num_classes-1 = classes,
            ``ignore_index`` = ignore (treated as no class).
        masks: the K SAM masks of the same image (K may be 0) as
            :class:`~fma.io.masks.runs.MaskRuns`, or (K, H, W) bool (0/1 numbers accepted).
        num_classes: number of classes C including background (21 for VOC, 81 for COCO).
        method: ``max_iou_imp2`` (default, the official default), ``max_iou_imp``, ``max_iou``
            or ``majority``.
        keep_ignore: keep ``ignore_index`` where the input has it and no selected mask covers
            the pixel (deviation from the published method, which writes background there).
        max_area_ratio: masks larger than this times the class area are not selected for that
            class. None: no cap for the published methods (published behaviour), 2.0 for
            ``majority``.
        ignore_index: ignore label of the input (and of the output with ``keep_ignore``).

    Returns:
        (H, W) uint8 refined label with values in 0..C-1 (plus ``ignore_index`` only when
        ``keep_ignore`` is set).

    Raises:
        ValueError: unknown method, shape mismatch, bad dtypes, or label values that are neither
            classes nor ``ignore_index``.
    """
    check_options(method, max_area_ratio)
    runs = masks if isinstance(masks, MaskRuns) else runs_from_dense(_check_masks(masks))
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
    """Order-independent assignment (see :func:`refine_pseudo_label`); paints ``out``."""
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


def majority_choice(
    inter: np.ndarray,
    area: np.ndarray,
    size: np.ndarray,
    present: np.ndarray,
    max_area_ratio: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The masks the ``majority`` rule paints, their classes, in painting order.

    Args:
        inter: (K, P) int64 pixels of mask k inside present class j.
        area: (K,) mask areas.
        size: (P,) pixel counts of the present classes.
        present: (P,) the present class ids.
        max_area_ratio: a mask larger than this many times a class's size is not a candidate.

    Returns:
        ``(idx, cls)``: (S,) mask indices and their classes, larger masks first (the smallest
        covering mask is painted last), equal areas with the higher class later; None when no
        mask is a candidate. A mask takes the candidate class it overlaps most (the lowest class
        on ties).
    """
    cand = (2 * inter - area[:, None]) > 0
    cand |= (inter / size[None, :]) >= COVER_THRESHOLD
    cand &= area[:, None] <= max_area_ratio * size[None, :]
    idx = np.flatnonzero(cand.any(axis=1))
    if idx.size == 0:
        return None
    best = np.argmax(np.where(cand, inter, -1), axis=1)  # first (lowest class) on ties
    cls = present[best[idx]]
    order = np.lexsort((cls, -area[idx]))
    return idx[order], cls[order]
