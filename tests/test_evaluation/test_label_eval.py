"""Folder-level label evaluation: synthetic known answers, bad inputs, and the real mini VOC set."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fma.apis.evaluate import (
    LabelEvalError,
    dataset_label_space,
    evaluate_dataset_split,
    evaluate_label_dir,
    result_summary,
    write_show_panels,
)
from fma.evaluation import confusion_matrix
from fma.io import write_label_map as _write_label_map
from fma.io.label_maps import bitwise_palette
from fma.visualization.panels import legend_layout, title_height

PALETTE = bitwise_palette()


def write_label_map(path, label):
    """Write a label PNG with an explicit palette."""
    _write_label_map(path, label, PALETTE)


NAMES = ["background", "cat", "dog"]
GT1 = np.array([[0, 0, 1], [1, 2, 2], [255, 2, 0]], dtype=np.uint8)
PRED1 = np.array([[0, 1, 1], [1, 2, 0], [0, 255, 0]], dtype=np.uint8)
GT2 = np.array([[2, 2], [0, 255]], dtype=np.uint8)
PRED2 = np.array([[2, 0], [0, 2]], dtype=np.uint8)


def _write_pair(root: Path, image_id: str, pred: np.ndarray | None, gt: np.ndarray | None) -> None:
    if pred is not None:
        write_label_map(root / "pred" / f"{image_id}.png", pred)
    if gt is not None:
        write_label_map(root / "gt" / f"{image_id}.png", gt)


def _evaluate(root: Path, ids, **kw):
    return evaluate_label_dir(root / "pred", root / "gt", ids, 3, NAMES, progress=False, **kw)


@pytest.fixture
def two_images(tmp_path: Path) -> Path:
    _write_pair(tmp_path, "a", PRED1, GT1)
    _write_pair(tmp_path, "b", PRED2, GT2)
    return tmp_path


@pytest.mark.parametrize("workers", [0, 2])
def test_dataset_level_confusion(two_images, workers):
    res = _evaluate(two_images, ["a", "b"], per_image=True, num_workers=workers)
    # image a: rows bg [2,1,0|0], cat [0,2,0|0], dog [1,0,1|1]
    # image b: gt (2,2) (2,0) (0,0) (255,2)=skipped -> bg [1,0,0|0], dog [0,0,1|0] + [1,0,0|0]
    expected = np.array([[3, 1, 0, 0], [0, 2, 0, 0], [2, 0, 2, 1]])
    np.testing.assert_array_equal(res.confusion, expected)
    assert res.n_images == 2 and res.n_missing == 0 and res.missing == []
    # bg: I=3, |gt|=4, |pred|=5 -> U=6 -> 50%; cat: I=2, |gt|=2, |pred|=3 -> 66.67%;
    # dog: I=2, |gt|=5, |pred|=2 -> U=5 -> 40%
    assert res.metrics["IoU"] == pytest.approx({"background": 50.0, "cat": 200 / 3, "dog": 40.0})
    assert res.miou == pytest.approx((50 + 200 / 3 + 40) / 3)
    # per-image: a -> (50 + 66.67 + 33.33) / 3 = 50; b -> bg 1/2, dog 1/2, cat absent -> 50
    assert [s.image_id for s in res.per_image] == ["a", "b"]
    assert res.per_image[0].miou == pytest.approx(50.0)
    assert res.per_image[1].miou == pytest.approx(50.0)
    assert np.isnan(res.per_image[1].iou[1])
    assert res.per_image[1].to_dict(NAMES)["IoU"] == {"background": 50.0, "cat": None, "dog": 50.0}


def test_greyscale_and_rgb_predictions(two_images):
    Image.fromarray(PRED1).save(two_images / "pred" / "a.png")
    rgb = bitwise_palette()[PRED2]
    Image.fromarray(rgb).save(two_images / "pred" / "b.png")
    res = _evaluate(two_images, ["a", "b"], palette=bitwise_palette())
    ref = confusion_matrix(PRED1, GT1, 3) + confusion_matrix(PRED2, GT2, 3)
    np.testing.assert_array_equal(res.confusion, ref)


def test_corrupt_png_names_the_file(two_images):
    bad = two_images / "pred" / "a.png"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(LabelEvalError) as info:
        _evaluate(two_images, ["a", "b"])
    err = info.value
    assert len(err.problems) == 1
    assert str(bad) in err.problems[0] and "not a readable image" in err.problems[0]
    assert str(bad) in str(err)


def test_wrong_size_names_both_files_and_sizes(two_images):
    write_label_map(two_images / "pred" / "b.png", np.zeros((3, 5), dtype=np.uint8))
    with pytest.raises(LabelEvalError) as info:
        _evaluate(two_images, ["a", "b"])
    (line,) = info.value.problems
    assert str(two_images / "pred" / "b.png") in line
    assert str(two_images / "gt" / "b.png") in line
    assert "5x3" in line and "2x2" in line


def test_class_id_above_count_names_file_and_value(two_images):
    write_label_map(two_images / "pred" / "a.png", np.full((3, 3), 7, dtype=np.uint8))
    with pytest.raises(LabelEvalError) as info:
        _evaluate(two_images, ["a", "b"])
    (line,) = info.value.problems
    assert str(two_images / "pred" / "a.png") in line and "[7]" in line


def test_ignore_in_prediction_is_allowed_and_counts_as_miss(two_images):
    write_label_map(two_images / "pred" / "b.png", np.full((2, 2), 255, dtype=np.uint8))
    res = _evaluate(two_images, ["b"])
    np.testing.assert_array_equal(res.confusion, [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 2]])
    assert res.metrics["IoU"] == {"background": 0.0, "cat": None, "dog": 0.0}


def test_missing_predictions(two_images):
    ids = ["a", "b", "c", "d"]
    _write_pair(two_images, "c", None, GT2)
    _write_pair(two_images, "d", None, GT2)
    with pytest.raises(LabelEvalError) as info:
        _evaluate(two_images, ids)
    msg = str(info.value)
    assert "2 of 4 predictions missing: c.png, d.png" in msg
    assert str(two_images / "pred") in msg and "--allow-missing" in msg
    assert info.value.missing == ["c", "d"]

    res = _evaluate(two_images, ids, allow_missing=True)
    assert res.n_images == 2 and res.n_missing == 2 and res.missing == ["c", "d"]
    assert res.miou == pytest.approx(_evaluate(two_images, ["a", "b"]).miou)
    summary = result_summary(res, dataset="x")
    assert summary["n_missing"] == 2 and summary["n_images"] == 2 and summary["dataset"] == "x"


def test_many_missing_are_listed_up_to_twenty(two_images):
    ids = ["a"] + [f"m{i:02d}" for i in range(25)]
    with pytest.raises(LabelEvalError) as info:
        _evaluate(two_images, ids)
    msg = str(info.value)
    assert "25 of 26 predictions missing" in msg and "m19.png" in msg
    assert "m20.png" not in msg and "(and 5 more)" in msg


def test_all_missing_with_allow_missing_is_an_error(two_images):
    with pytest.raises(LabelEvalError, match="none of the 2 predictions exist"):
        _evaluate(two_images, ["x", "y"], allow_missing=True)


def test_missing_gt_names_the_file(two_images):
    _write_pair(two_images, "c", PRED2, None)
    with pytest.raises(LabelEvalError) as info:
        _evaluate(two_images, ["a", "c"])
    (line,) = info.value.problems
    assert line == f"{two_images / 'gt' / 'c.png'}: ground-truth label map not found"


def test_all_problems_reported_together(two_images):
    for i in ("p", "q", "r", "s"):
        _write_pair(two_images, i, PRED2, GT2)
    (two_images / "pred" / "p.png").write_bytes(b"not a png")
    write_label_map(two_images / "pred" / "q.png", np.zeros((5, 5), dtype=np.uint8))
    write_label_map(two_images / "pred" / "r.png", np.full((2, 2), 9, dtype=np.uint8))
    (two_images / "gt" / "s.png").unlink()
    ids = ["a", "p", "q", "r", "s", "missing1"]
    with pytest.raises(LabelEvalError) as info:
        _evaluate(two_images, ids)
    lines = str(info.value).splitlines()
    assert lines[0].endswith("4 bad file(s), 1 missing prediction(s)")
    assert len(lines) == 6  # header, four bad files, one missing-predictions line
    for name, text in [
        ("pred/p.png", "not a readable image"),
        ("pred/q.png", "5x5"),
        ("pred/r.png", "[9]"),
        ("gt/s.png", "not found"),
    ]:
        assert sum(name in line and text in line for line in lines) == 1, name
    assert "missing1.png" in lines[-1]


def test_missing_folders(tmp_path):
    with pytest.raises(LabelEvalError, match="prediction folder not found"):
        evaluate_label_dir(tmp_path / "nope", tmp_path, ["a"], 3, NAMES, progress=False)
    with pytest.raises(LabelEvalError, match="ground-truth folder not found"):
        evaluate_label_dir(tmp_path, tmp_path / "nope", ["a"], 3, NAMES, progress=False)


def test_custom_dataset_split(tmp_path):
    root = tmp_path / "custom"
    (root / "splits").mkdir(parents=True)
    (root / "classes.txt").write_text("cat\n\ndog\n")
    (root / "splits" / "val.txt").write_text("a\nb\n")
    write_label_map(root / "ground_truth" / "a.png", GT1)
    write_label_map(root / "ground_truth" / "b.png", GT2)
    write_label_map(tmp_path / "pred" / "a.png", PRED1)
    write_label_map(tmp_path / "pred" / "b.png", PRED2)
    names, palette = dataset_label_space("custom", root)
    assert names == NAMES and palette.shape == (256, 3)
    res = evaluate_dataset_split(tmp_path / "pred", "custom", "val", root, progress=False)
    assert res.metrics["IoU"] == pytest.approx({"background": 50.0, "cat": 200 / 3, "dog": 40.0})
    with pytest.raises(LabelEvalError, match="split file not found"):
        evaluate_dataset_split(tmp_path / "pred", "custom", "test", root, progress=False)


def test_show_panels_worst_and_best(tmp_path):
    gt = np.zeros((4, 6), dtype=np.uint8)
    gt[:, 3:] = 1
    for image_id, n_wrong in [("good", 0), ("mid", 2), ("bad", 3)]:
        pred = gt.copy()
        pred[:, 3 : 3 + n_wrong] = 0
        _write_pair(tmp_path, image_id, pred, gt)
        Image.fromarray(np.full((4, 6, 3), 90, dtype=np.uint8)).save(tmp_path / f"{image_id}.jpg")
    res = evaluate_label_dir(
        tmp_path / "pred", tmp_path / "gt", ["good", "mid", "bad"], 2, ["bg", "fg"],
        per_image=True, progress=False,
    )  # fmt: skip
    paths = write_show_panels(
        res, tmp_path / "pred", tmp_path / "gt", lambda i: tmp_path / f"{i}.jpg",
        tmp_path / "show", bitwise_palette(), num_show=2, class_names=["bg", "fg"],
    )  # fmt: skip
    assert [p.name for p in paths] == [
        "worst_01_bad.png", "worst_02_mid.png", "best_01_good.png", "best_02_mid.png",
    ]  # fmt: skip
    panel = np.asarray(Image.open(paths[2]))
    assert panel.shape[1] == 3 * 6 + 2 * 4  # three 6-pixel panels, two 4-pixel gaps
    # last row of the label panels: image (grey 90), prediction, ground truth (bg black, fg
    # (128, 0, 0)); under them the legend of labels 0 and 1
    row = panel[title_height() + 3]
    assert (row[:6] == 90).all()
    np.testing.assert_array_equal(row[10:13], [[0, 0, 0]] * 3)
    np.testing.assert_array_equal(row[13:16], [[128, 0, 0]] * 3)
    origins, swatch, height = legend_layout(["0 bg", "1 fg"], panel.shape[1])
    assert panel.shape[0] == title_height() + 4 + height
    for (x, y), colour in zip(origins, [(0, 0, 0), (128, 0, 0)], strict=True):
        centre = panel[title_height() + 4 + y + swatch // 2, x + swatch // 2]
        np.testing.assert_array_equal(centre, colour)


# ---------------------------------------------------------------------------------------------
# Real data: TransCAM pseudo labels of the 330 mini VOC train images.


def _independent_iou(pred_dir: Path, gt_dir: Path, ids: list[str], c: int) -> np.ndarray:
    """Per-class IoU from boolean masks, accumulated over images (no fma code involved)."""
    inter = np.zeros(c)
    union = np.zeros(c)
    for image_id in ids:
        pred = np.array(Image.open(pred_dir / f"{image_id}.png"))
        gt = np.array(Image.open(gt_dir / f"{image_id}.png"))
        valid = gt != 255
        for k in range(c):
            p = (pred == k) & valid
            g = gt == k
            inter[k] += np.count_nonzero(p & g)
            union[k] += np.count_nonzero(p | g)
    return 100 * inter / union


@pytest.mark.realdata
def test_real_transcam_pseudo_labels(voc_mini):
    voc = voc_mini / "VOC2012"
    pred_dir = voc_mini / "pseudo_labels" / "transcam"
    t0 = time.perf_counter()
    res = evaluate_dataset_split(pred_dir, "voc12", "train", voc, progress=False)
    elapsed = time.perf_counter() - t0
    assert res.n_images == 330 and res.n_missing == 0
    assert round(res.miou, 2) == 65.58
    ids = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    ref = _independent_iou(pred_dir, voc / "SegmentationClass", ids, 21)
    got = np.array(list(res.metrics["IoU"].values()), dtype=float)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    assert np.mean(ref) == pytest.approx(res.miou)
    print(f"evaluated 330 real images in {elapsed:.2f} s")
