"""Confusion matrices and the segmentation metrics derived from them (numpy only).

The confusion matrix of a split is accumulated over all of its pixels (method-fma section 10.1):
rows are ground-truth classes, columns predicted classes, plus one extra last column for pixels
the prediction marks as ignore. Such pixels count in the ground-truth area of their class but in
no predicted area, i.e. as misses; this is what mmseg's ``IoUMetric`` does with an out-of-range
prediction. Ground-truth pixels equal to the ignore index are left out entirely.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["confusion_matrix", "format_table", "metrics_from_confusion", "per_class_iou"]


def _check_values(arr: np.ndarray, num_classes: int, ignore_index: int, what: str) -> None:
    """Raise ValueError when ``arr`` holds a value that is neither a class nor ignore."""
    if arr.size == 0:
        return
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be an integer array, got dtype {arr.dtype}")
    if arr.dtype == np.uint8:
        counts = np.bincount(arr.reshape(-1), minlength=256)
        if 0 <= ignore_index < 256:
            counts[ignore_index] = 0
        bad_values = np.flatnonzero(counts[num_classes:]) + num_classes
    else:
        bad = ((arr < 0) | (arr >= num_classes)) & (arr != ignore_index)
        bad_values = np.unique(arr[bad]) if bad.any() else np.empty(0, dtype=np.int64)
    if bad_values.size:
        raise ValueError(
            f"{what} holds values {bad_values[:10].tolist()} that are neither classes "
            f"0..{num_classes - 1} nor ignore ({ignore_index})"
        )


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """Pixel confusion matrix of one prediction against its ground truth.

    Args:
        pred: (H, W) (or any shape) integer array of predicted labels; values are classes
            0..num_classes-1 or ``ignore_index`` (pixels the prediction leaves unlabelled).
        gt: integer array of the same shape; values are classes or ``ignore_index``.
        num_classes: number of classes C (background included).
        ignore_index: the ignore label; must not be a class index.

    Returns:
        (C, C + 1) int64 matrix: ``cm[g, p]`` counts pixels of ground-truth class ``g`` predicted
        as ``p``; ``cm[g, C]`` counts pixels of class ``g`` the prediction marks as ignore.
        Ground-truth ignore pixels are not counted.

    Raises:
        ValueError: shapes differ, a value is neither a class nor ignore, or ``ignore_index`` is a
            class index. The message does not name a file; callers add it.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index {ignore_index} is a class index (num_classes={num_classes})"
        )
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}"
        )
    if pred.dtype == np.uint8 and gt.dtype == np.uint8 and 0 <= ignore_index < 256:
        return _confusion_uint8(pred, gt, num_classes, ignore_index)
    _check_values(pred, num_classes, ignore_index, "prediction")
    _check_values(gt, num_classes, ignore_index, "ground truth")
    valid = gt != ignore_index
    g = gt[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    p[p == ignore_index] = num_classes
    flat = np.bincount(g * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1))
    return flat.reshape(num_classes, num_classes + 1).astype(np.int64, copy=False)


def _confusion_uint8(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int
) -> np.ndarray:
    """Fast path for uint8 maps: one 256 x 256 joint histogram, validated afterwards."""
    joint = np.bincount(
        ((gt.astype(np.intp) << 8) | pred).reshape(-1), minlength=256 * 256
    ).reshape(256, 256)
    for what, counts in (("prediction", joint.sum(axis=0)), ("ground truth", joint.sum(axis=1))):
        counts[ignore_index] = 0
        bad = np.flatnonzero(counts[num_classes:]) + num_classes
        if bad.size:
            raise ValueError(
                f"{what} holds values {bad[:10].tolist()} that are neither classes "
                f"0..{num_classes - 1} nor ignore ({ignore_index})"
            )
    cm = np.empty((num_classes, num_classes + 1), dtype=np.int64)
    cm[:, :num_classes] = joint[:num_classes, :num_classes]
    cm[:, num_classes] = joint[:num_classes, ignore_index]
    return cm


def _split(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection, ground-truth area and predicted area per class (float64, shape (C,))."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[1] not in (cm.shape[0], cm.shape[0] + 1):
        raise ValueError(f"confusion matrix must have shape (C, C) or (C, C + 1), got {cm.shape}")
    c = cm.shape[0]
    inter = np.diagonal(cm[:, :c]).astype(np.float64)
    gt_area = cm.sum(axis=1).astype(np.float64)
    pred_area = cm[:, :c].sum(axis=0).astype(np.float64)
    return inter, gt_area, pred_area


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``100 * num / den`` with NaN where ``den`` is 0."""
    out = np.full(num.shape, np.nan)
    ok = den > 0
    out[ok] = 100.0 * num[ok] / den[ok]
    return out


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU in percent, (C,) float64; NaN for a class absent from GT and prediction."""
    inter, gt_area, pred_area = _split(cm)
    return _ratio(inter, gt_area + pred_area - inter)


def _nanmean(values: np.ndarray) -> float | None:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else None


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def metrics_from_confusion(
    cm: np.ndarray, class_names: Sequence[str], *, include_confusion: bool = False
) -> dict[str, Any]:
    """Segmentation metrics of an accumulated confusion matrix (mmseg ``IoUMetric`` definitions).

    Args:
        cm: (C, C + 1) or (C, C) integer confusion matrix from :func:`confusion_matrix`.
        class_names: C names in index order; used as keys of the per-class dicts.
        include_confusion: also return the matrix as nested lists under ``"confusion"``.

    Returns:
        A JSON-serialisable dict; every score is a percentage (0-100):

        * ``"mIoU"``, ``"mPrecision"``, ``"mRecall"``: means over the classes where the score is
          defined (a class absent from both ground truth and prediction has IoU NaN and is left
          out, as mmseg's nanmean does); None when no class is defined.
        * ``"IoU"``, ``"precision"``, ``"recall"``: ``{class name: percent or None}``. Precision is
          undefined for a class never predicted, recall for a class absent from the ground truth.
        * ``"aAcc"``: correctly labelled pixels over all non-ignored ground-truth pixels (None
          when there are none).
        * ``"pixels"``: number of non-ignored ground-truth pixels.
        * ``"pred_ignored_pixels"``: of those, pixels the prediction marks as ignore.
        * ``"num_classes"``, ``"class_names"`` and optionally ``"confusion"``.

    Raises:
        ValueError: bad matrix shape, or class names that do not match it or repeat.
    """
    cm = np.asarray(cm)
    inter, gt_area, pred_area = _split(cm)
    names = [str(n) for n in class_names]
    if len(names) != cm.shape[0]:
        raise ValueError(
            f"{len(names)} class names for a confusion matrix of {cm.shape[0]} classes"
        )
    if len(set(names)) != len(names):
        raise ValueError("class names must be unique")
    iou = _ratio(inter, gt_area + pred_area - inter)
    precision = _ratio(inter, pred_area)
    recall = _ratio(inter, gt_area)
    total = float(gt_area.sum())
    c = cm.shape[0]
    out: dict[str, Any] = {
        "mIoU": _nanmean(iou),
        "mPrecision": _nanmean(precision),
        "mRecall": _nanmean(recall),
        "aAcc": 100.0 * float(inter.sum()) / total if total > 0 else None,
        "IoU": {n: _none_if_nan(v) for n, v in zip(names, iou, strict=True)},
        "precision": {n: _none_if_nan(v) for n, v in zip(names, precision, strict=True)},
        "recall": {n: _none_if_nan(v) for n, v in zip(names, recall, strict=True)},
        "pixels": int(total),
        "pred_ignored_pixels": int(cm[:, c:].sum()),
        "num_classes": c,
        "class_names": names,
    }
    if include_confusion:
        out["confusion"] = cm.astype(np.int64).tolist()
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def format_table(metrics: dict[str, Any]) -> str:
    """Render :func:`metrics_from_confusion` output as an aligned text table.

    One row per class (IoU, precision, recall in percent, ``-`` where undefined), a ``mean`` row,
    then a summary line with mIoU, aAcc and the pixel count.
    """
    names = list(metrics["IoU"])
    width = max([len("class"), len("mean"), *(len(n) for n in names)])
    header = f"{'class':<{width}}  {'IoU':>7}  {'Prec':>7}  {'Recall':>7}"
    rule = "-" * len(header)
    lines = [header, rule]
    for n in names:
        lines.append(
            f"{n:<{width}}  {_fmt(metrics['IoU'][n]):>7}  "
            f"{_fmt(metrics['precision'][n]):>7}  {_fmt(metrics['recall'][n]):>7}"
        )
    lines.append(rule)
    lines.append(
        f"{'mean':<{width}}  {_fmt(metrics['mIoU']):>7}  "
        f"{_fmt(metrics['mPrecision']):>7}  {_fmt(metrics['mRecall']):>7}"
    )
    lines.append(
        f"mIoU {_fmt(metrics['mIoU'])}  aAcc {_fmt(metrics['aAcc'])}  pixels {metrics['pixels']}"
    )
    return "\n".join(lines)
