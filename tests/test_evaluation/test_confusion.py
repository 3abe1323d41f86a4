"""Confusion matrix and metrics: hand-computed cases, brute-force and mmseg cross-checks."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from fma.evaluation.confusion import (
    confusion_matrix,
    format_table,
    metrics_from_confusion,
    per_class_iou,
)

# (gt, pred) pixel pairs, read row by row:
# (0,0) (0,1) (1,1) | (1,1) (2,2) (2,0) | (255,0)=skipped (2,255)=miss (0,0)
GT = np.array([[0, 0, 1], [1, 2, 2], [255, 2, 0]], dtype=np.uint8)
PRED = np.array([[0, 1, 1], [1, 2, 0], [0, 255, 0]], dtype=np.uint8)
NAMES3 = ["bg", "cat", "dog"]


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_hand_computed_3x3(dtype):
    cm = confusion_matrix(PRED.astype(dtype), GT.astype(dtype), 3)
    expected = np.array(
        [
            [2, 1, 0, 0],  # gt bg: 2 as bg, 1 as cat
            [0, 2, 0, 0],  # gt cat: 2 as cat
            [1, 0, 1, 1],  # gt dog: 1 as bg, 1 as dog, 1 marked ignore by the prediction
        ]
    )
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)

    m = metrics_from_confusion(cm, NAMES3)
    # bg: I=2, |gt|=3, |pred|=3 -> U=4 -> 50%; cat: I=2, |gt|=2, |pred|=3 -> U=3 -> 66.67%;
    # dog: I=1, |gt|=3 (the ignore-predicted pixel counts), |pred|=1 -> U=3 -> 33.33%.
    assert m["IoU"]["bg"] == pytest.approx(50.0)
    assert m["IoU"]["cat"] == pytest.approx(200 / 3)
    assert m["IoU"]["dog"] == pytest.approx(100 / 3)
    assert m["mIoU"] == pytest.approx(50.0)
    assert m["precision"] == pytest.approx({"bg": 200 / 3, "cat": 200 / 3, "dog": 100.0})
    assert m["recall"] == pytest.approx({"bg": 200 / 3, "cat": 100.0, "dog": 100 / 3})
    assert m["mPrecision"] == pytest.approx((200 / 3 + 200 / 3 + 100) / 3)
    assert m["mRecall"] == pytest.approx((200 / 3 + 100 + 100 / 3) / 3)
    assert m["aAcc"] == pytest.approx(100 * 5 / 8)  # 5 correct of 8 non-ignored GT pixels
    assert m["pixels"] == 8
    assert m["pred_ignored_pixels"] == 1
    assert "confusion" not in m
    assert (
        metrics_from_confusion(cm, NAMES3, include_confusion=True)["confusion"] == expected.tolist()
    )


def test_gt_ignore_excluded_pred_ignore_is_miss():
    gt = np.array([[255, 255], [1, 1]], dtype=np.uint8)
    pred = np.array([[1, 0], [255, 1]], dtype=np.uint8)
    cm = confusion_matrix(pred, gt, 2)
    np.testing.assert_array_equal(cm, [[0, 0, 0], [0, 1, 1]])
    m = metrics_from_confusion(cm, ["bg", "fg"])
    assert m["IoU"]["fg"] == pytest.approx(50.0)  # I=1, U=|gt|2 + |pred|1 - 1 = 2
    assert m["IoU"]["bg"] is None  # absent from GT and prediction
    assert m["mIoU"] == pytest.approx(50.0)
    assert m["pixels"] == 2


def test_absent_class_is_nan_and_left_out_of_the_mean():
    cm = confusion_matrix(PRED, GT, 4)  # class 3 never occurs
    m = metrics_from_confusion(cm, [*NAMES3, "bird"])
    assert m["IoU"]["bird"] is None
    assert m["precision"]["bird"] is None and m["recall"]["bird"] is None
    assert m["mIoU"] == pytest.approx(50.0)
    assert np.isnan(per_class_iou(cm)[3])


def test_class_only_in_gt_scores_zero_and_has_no_precision():
    gt = np.array([[0, 1]], dtype=np.uint8)
    pred = np.array([[0, 0]], dtype=np.uint8)
    m = metrics_from_confusion(confusion_matrix(pred, gt, 2), ["a", "b"])
    assert m["IoU"] == pytest.approx({"a": 50.0, "b": 0.0})
    assert m["precision"]["b"] is None
    assert m["recall"]["b"] == 0.0
    assert m["mIoU"] == pytest.approx(25.0)


def test_empty_confusion_gives_none():
    m = metrics_from_confusion(np.zeros((2, 3), dtype=np.int64), ["a", "b"])
    assert m["mIoU"] is None and m["aAcc"] is None and m["pixels"] == 0


def test_square_confusion_accepted():
    cm = confusion_matrix(PRED, GT, 3)
    square = cm[:, :3]
    m = metrics_from_confusion(square, NAMES3)
    assert m["IoU"]["cat"] == pytest.approx(200 / 3)
    assert m["IoU"]["dog"] == pytest.approx(50.0)  # without the ignore column: I=1, U=2


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_invalid_values_raise(dtype):
    gt = np.zeros((2, 2), dtype=dtype)
    pred = np.array([[0, 5], [1, 0]], dtype=dtype)
    with pytest.raises(ValueError, match=r"prediction holds values \[5\]"):
        confusion_matrix(pred, gt, 3)
    with pytest.raises(ValueError, match=r"ground truth holds values \[5\]"):
        confusion_matrix(gt, pred, 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(pred, np.zeros((2, 3), dtype=dtype), 3)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="ignore_index"):
        confusion_matrix(PRED, GT, 3, ignore_index=1)
    with pytest.raises(ValueError, match="class names"):
        metrics_from_confusion(np.zeros((3, 4)), ["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        metrics_from_confusion(np.zeros((2, 3)), ["a", "a"])
    with pytest.raises(ValueError, match="shape"):
        metrics_from_confusion(np.zeros((2, 5)), ["a", "b"])
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(PRED.astype(float), GT.astype(float), 3)


def _random_pair(rng, shape, c, dtype):
    gt = rng.integers(0, c, size=shape)
    pred = rng.integers(0, c, size=shape)
    gt[rng.random(shape) < 0.1] = 255
    pred[rng.random(shape) < 0.1] = 255
    return pred.astype(dtype), gt.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_matches_boolean_mask_reference(dtype):
    rng = np.random.default_rng(0)
    c = 6
    pred, gt = _random_pair(rng, (37, 53), c, dtype)
    cm = confusion_matrix(pred, gt, c)
    for g in range(c):
        for p in range(c):
            assert cm[g, p] == np.sum((gt == g) & (pred == p))
        assert cm[g, c] == np.sum((gt == g) & (pred == 255))
    iou = per_class_iou(cm)
    valid = gt != 255
    for k in range(c):
        inter = np.sum((gt == k) & (pred == k))
        union = np.sum(((gt == k) & valid) | ((pred == k) & valid))
        assert iou[k] == pytest.approx(100 * inter / union)


def test_matches_mmseg_intersect_and_union():
    try:
        if importlib.util.find_spec("fma._compat") is not None:
            import fma._compat  # noqa: F401
        torch = pytest.importorskip("torch")
        from mmseg.evaluation.metrics import IoUMetric
    except Exception as exc:  # any import problem of the optional stack means: skip
        pytest.skip(f"mmseg not importable: {exc}")
    rng = np.random.default_rng(1)
    c = 5
    inter_sum = np.zeros(c)
    union_sum = np.zeros(c)
    pred_sum = np.zeros(c)
    label_sum = np.zeros(c)
    total = np.zeros((c, c + 1), dtype=np.int64)
    for _ in range(3):
        pred, gt = _random_pair(rng, (29, 31), c, np.uint8)
        total += confusion_matrix(pred, gt, c)
        i, u, p, lab = IoUMetric.intersect_and_union(
            torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(gt.astype(np.int64)), c, 255
        )
        inter_sum += i.numpy()
        union_sum += u.numpy()
        pred_sum += p.numpy()
        label_sum += lab.numpy()
    m = metrics_from_confusion(total, [f"c{k}" for k in range(c)])
    np.testing.assert_allclose(per_class_iou(total), 100 * inter_sum / union_sum)
    assert m["aAcc"] == pytest.approx(100 * inter_sum.sum() / label_sum.sum())
    assert list(m["precision"].values()) == pytest.approx(list(100 * inter_sum / pred_sum))
    assert list(m["recall"].values()) == pytest.approx(list(100 * inter_sum / label_sum))


def test_format_table():
    m = metrics_from_confusion(confusion_matrix(PRED, GT, 4), [*NAMES3, "bird"])
    text = format_table(m)
    lines = text.splitlines()
    assert lines[0].split() == ["class", "IoU", "Prec", "Recall"]
    assert lines[2].split() == ["bg", "50.00", "66.67", "66.67"]
    assert lines[4].split() == ["dog", "33.33", "100.00", "33.33"]
    assert lines[5].split() == ["bird", "-", "-", "-"]
    assert lines[7].split()[:2] == ["mean", "50.00"]
    assert lines[-1] == "mIoU 50.00  aAcc 62.50  pixels 8"
    # table rows are aligned: header, class rows and the mean row share one width
    assert len({len(line) for line in lines[:-1] if not line.startswith("-")}) == 1
