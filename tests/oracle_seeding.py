"""Dense oracles of SAMS and SEPL for tests: the masks as a (K, H, W) bool stack.

fma computes both algorithms on the masks' runs (``fma.seeding.sams``, ``fma.seeding.sepl``);
these references compute the same label maps from decoded masks in the most direct vectorised
numpy, so the tests can compare the two on random, hand-made and real cases:

* :func:`sams_dense`: steps 1-4 as one gather of the normalised CAM at the covered pixels of
  every mask and a segment sum per mask (the (K, H*W) x (H*W, P) product with the masks), the
  painting as one scatter-max of painting ranks over those pixels. Steps 5-7a (background,
  labels, painting order) are fma's ``label_and_order``, which works on K-vectors only.
* :func:`sepl_dense`: the class loop of the published mergers (and the ``majority`` rule) with
  mask-by-class pixel counts, unions as ``any`` over mask rows and the ``majority`` painting as a
  Python ``sorted`` of the assigned masks.

Import as ``from oracle_seeding import ...`` (``tests/`` is on ``sys.path`` through the rootdir
conftest).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fma.io.cams import CamRecord
from fma.io.masks.records import SamMasks
from fma.seeding.sams import SamsResult, label_and_order, upsample_cam
from fma.seeding.sams_options import EPS, SamsOptions, check_cam
from fma.seeding.sepl import COVER_THRESHOLD, MAJORITY_MAX_AREA_RATIO

__all__ = ["dense_scores", "sams_dense", "sams_record_dense", "sepl_dense"]


def _min_max(x: np.ndarray, axis: int, valid: np.ndarray | None = None) -> np.ndarray:
    """``max(x, 0)``, then min-max along ``axis`` over the ``valid`` rows (others 0)."""
    x = np.maximum(x, x.dtype.type(0))
    ref = x if valid is None else x[valid]
    if ref.shape[axis] == 0:
        return np.zeros_like(x)
    lo = ref.min(axis=axis, keepdims=True)
    hi = ref.max(axis=axis, keepdims=True)
    out = (x - lo) / (hi - lo + x.dtype.type(EPS))
    if valid is not None:
        out[~valid] = 0
    return out


def dense_scores(cam: Any, masks: np.ndarray, options: SamsOptions) -> np.ndarray:
    """Steps 1-4: (K, P) float64 normalised class scores of (K, H, W) bool masks."""
    k, h, w = masks.shape
    score = upsample_cam(cam, (h, w)).reshape(-1, h * w)  # (P, N) float32
    if options.norm_first:
        score = _min_max(score, axis=1)
    rows, cols = np.divmod(np.flatnonzero(masks.reshape(k, h * w)), h * w)
    areas = np.bincount(rows, minlength=k)
    valid = areas > 0
    starts = np.concatenate([[0], np.cumsum(areas)[:-1]]).astype(np.int64)
    pooled = np.zeros((k, score.shape[0]), dtype=np.float64)
    if score.shape[0] and cols.size:
        sums = np.add.reduceat(score[:, cols], starts[valid], axis=1, dtype=np.float64)
        pooled[valid] = sums.T
    if options.gather == "mean":
        pooled[valid] /= areas[valid, None]
    return _min_max(pooled, axis=0, valid=valid)


def _paint(masks: np.ndarray, labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    """(H, W) uint8: at each pixel the label of the covering mask painted last (0 uncovered)."""
    k, h, w = masks.shape
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(1, k + 1)
    rows, cols = np.divmod(np.flatnonzero(masks.reshape(k, h * w)), h * w)
    win = np.zeros(h * w, dtype=np.int64)
    np.maximum.at(win, cols, rank[rows])
    lut = np.zeros(k + 1, dtype=np.uint8)
    lut[1:] = labels[order]
    return lut[win].reshape(h, w)


def sams_dense(
    masks: Any, cam: Any, fg_cls: Any, options: SamsOptions, *, levels: Any = None
) -> SamsResult:
    """SAMS of one image from (K, H, W) masks (the oracle of ``fma.seeding.seeds_from_masks``)."""
    m = np.asarray(masks)
    if m.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got shape {m.shape}")
    m = m != 0
    c, fg = check_cam(cam, fg_cls, options)
    score = dense_scores(c, m, options)
    areas = m.sum((1, 2), dtype=np.int64)
    lv = None if levels is None else np.asarray(levels)
    labels, conf, order = label_and_order(score, fg, options, areas, lv)
    return SamsResult(_paint(m, labels, order), labels, conf, score, order)


def sams_record_dense(cam: CamRecord, masks: SamMasks, options: SamsOptions) -> SamsResult:
    """:func:`sams_dense` on a CAM record and decoded masks (the oracle of ``sams_seed``)."""
    if cam.ori_size is not None and tuple(cam.ori_size) != masks.shape:
        raise ValueError(
            f"CAM is for {tuple(cam.ori_size)}, masks are {masks.shape}: different images"
        )
    return sams_dense(masks.masks, cam.cam, cam.fg_cls, options, levels=masks.levels)


def sepl_dense(
    label: np.ndarray,
    masks: np.ndarray,
    num_classes: int,
    method: str = "max_iou_imp2",
    *,
    keep_ignore: bool = False,
    max_area_ratio: float | None = None,
    ignore_index: int = 255,
) -> np.ndarray:
    """SEPL of one pseudo label with (K, H, W) masks (the oracle of ``refine_pseudo_label``)."""
    lab = np.asarray(label).astype(np.int64).reshape(-1)
    m = np.asarray(masks) != 0
    flat = m.reshape(m.shape[0], lab.size)
    area = flat.sum(1)
    present = [c for c in range(1, num_classes) if (lab == c).any()]
    inside = {c: lab == c for c in present}
    size = {c: int(inside[c].sum()) for c in present}
    inter = {c: flat[:, inside[c]].sum(1) for c in present}
    out = np.zeros(lab.shape, dtype=np.uint8)
    if method == "majority":
        ratio = MAJORITY_MAX_AREA_RATIO if max_area_ratio is None else max_area_ratio
        uncovered = ~flat.any(0)
        for c in present:
            out[inside[c] & uncovered] = c
        chosen = []
        for k in range(flat.shape[0]):
            cand = [c for c in present if (2 * inter[c][k] > area[k]
                    or inter[c][k] / size[c] >= COVER_THRESHOLD)
                    and area[k] <= ratio * size[c]]  # fmt: skip
            if cand:
                best = max(cand, key=lambda c: (inter[c][k], -c))  # most overlap, lower class
                chosen.append((-int(area[k]), best, k))
        for _, c, k in sorted(chosen):  # larger masks first; equal area: lower class first
            out[flat[k]] = c
    else:
        used = np.zeros(flat.shape[0], dtype=bool)
        for c in present:
            sel = 2 * inter[c] - area > 0
            if method == "max_iou_imp2":
                sel |= inter[c] / size[c] >= COVER_THRESHOLD
            if max_area_ratio is not None:
                sel &= area <= max_area_ratio * size[c]
            sel &= ~used
            region = flat[sel].any(0)
            if method != "max_iou":
                region |= inside[c] & ~flat[~used].any(0)
            used |= sel
            out[region] = c
    if keep_ignore:
        out[(lab == ignore_index) & (out == 0)] = ignore_index
    return out.reshape(np.shape(label))
