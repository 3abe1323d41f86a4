"""tools/prepare_voc.py and fma.datasets.prepare_voc.prepare_voc on real and synthetic VOC sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tool_modules import load_tool

from fma.datasets.labels import load_image_labels
from fma.datasets.layout import DatasetLayout
from fma.datasets.meta import VOC12
from fma.datasets.prepare_voc import prepare_voc, voc_default_splits
from fma.io import write_label_map


def _reference_labels(png: Path) -> list[int]:
    """Independent reference: np.unique of the PNG's palette indices, 0 and 255 dropped."""
    arr = np.asarray(Image.open(png))
    return [int(v) for v in np.unique(arr) if 0 < v < 255]


@pytest.mark.realdata
@pytest.mark.slow
def test_prepare_voc_real_data(voc_mini, tmp_path, capsys):
    root = voc_mini / "VOC2012"
    out = tmp_path / "cls"
    rc = load_tool("prepare_voc").main(
        [str(root), "--out", str(out), "--workers", "2", "--no-progress"]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "images" in printed and "330" in printed and "346" in printed
    train = load_image_labels(out / "train.json", dataset="voc12", num_classes=21)
    val = load_image_labels(out / "val.json", dataset="voc12", num_classes=21)
    assert len(train) == 330 and len(val) == 346
    ids = (root / "ImageSets/Segmentation/train.txt").read_text().split()
    assert sorted(train) == sorted(ids)
    # Every image against an independent np.unique of its ground truth.
    for labels in (train, val):
        for image_id, cls in labels.items():
            assert cls == _reference_labels(root / "SegmentationClass" / f"{image_id}.png"), (
                image_id
            )
    # Spot checks (VOC 2012 ground truth): 2007_000032 = aeroplane + person; 2007_000039 = tv.
    assert train["2007_000032"] == [1, 15]
    assert train["2007_000039"] == [20]
    assert json.loads((out / "train.json").read_text())["class_names"] == list(VOC12.class_names)


@pytest.mark.realdata
def test_prepare_voc_real_data_class_counts(voc_mini, tmp_path):
    root = voc_mini / "VOC2012"
    res = prepare_voc(root, tmp_path, ["val"], workers=1)
    assert res.ok and list(res.splits) == ["val"]
    rep = res.splits["val"]
    ref = np.zeros(21, dtype=np.int64)
    for image_id in rep.image_ids:
        arr = np.asarray(Image.open(root / "SegmentationClass" / f"{image_id}.png"))
        u = np.unique(arr)
        ref[u[u < 255]] += 1
    assert rep.class_counts.tolist() == ref.tolist()
    assert rep.class_counts[0] == 346 and rep.class_counts[15] == 134  # person in 134 val images
    assert (tmp_path / "val.json").is_file()


# ---------------------------------------------------------------------------------------------
# Synthetic folders


def _make_voc(root: Path, train: dict[str, np.ndarray], val: dict[str, np.ndarray]) -> Path:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for split, items in (("train", train), ("val", val)):
        for image_id, lab in items.items():
            h, w = lab.shape
            Image.new("RGB", (w, h), (120, 60, 30)).save(root / "JPEGImages" / f"{image_id}.jpg")
            write_label_map(root / "SegmentationClass" / f"{image_id}.png", lab, VOC12.palette)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(items) + "\n")
    return root


def _lab(values: list[int], h: int = 16, w: int = 24) -> np.ndarray:
    lab = np.zeros((h, w), dtype=np.uint8)
    for k, v in enumerate(values):
        lab[k : k + 2, 2 * k : 2 * k + 3] = v
    return lab


def test_synthetic_all_good(tmp_path):
    root = _make_voc(
        tmp_path / "VOC2012",
        {"a": _lab([3, 255]), "b": _lab([20, 1, 1])},
        {"c": _lab([]), "d": np.full((8, 8), 7, np.uint8)},
    )
    res = prepare_voc(root)
    assert res.ok
    assert load_image_labels(root / "cls_labels" / "train.json") == {"a": [3], "b": [1, 20]}
    assert load_image_labels(root / "cls_labels" / "val.json") == {"c": [], "d": [7]}
    assert res.splits["val"].class_counts[0] == 1  # "d" has no background pixel
    assert voc_default_splits(root) == ["train", "val"]


def test_synthetic_every_problem_listed_by_name(tmp_path, capsys):
    root = _make_voc(
        tmp_path / "VOC2012",
        {"ok1": _lab([1]), "nojpg": _lab([2]), "nopng": _lab([3]), "corrupt": _lab([4]),
         "big": _lab([5, 30]), "small": _lab([6])},
        {"v1": _lab([7]), "v2": _lab([8])},
    )  # fmt: skip
    (root / "JPEGImages" / "nojpg.jpg").unlink()
    (root / "SegmentationClass" / "nopng.png").unlink()
    (root / "SegmentationClass" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    write_label_map(root / "SegmentationClass" / "small.png", _lab([6], 8, 8), VOC12.palette)
    out = tmp_path / "out"
    rc = load_tool("prepare_voc").main(
        [str(root), "--out", str(out), "--workers", "1", "--no-progress"]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "5 problem(s)" in err
    assert f"{root / 'JPEGImages' / 'nojpg.jpg'}: missing image" in err
    assert f"{root / 'SegmentationClass' / 'nopng.png'}: missing label map" in err
    assert f"{root / 'SegmentationClass' / 'corrupt.png'}: not a readable image" in err
    assert f"{root / 'SegmentationClass' / 'big.png'}: label values [30]" in err
    assert f"{root / 'SegmentationClass' / 'small.png'}: label size 8x8" in err
    assert "ok1" not in err
    # The broken split is not written; the good one is.
    assert not (out / "train.json").exists()
    assert load_image_labels(out / "val.json") == {"v1": [7], "v2": [8]}


def test_synthetic_truncated_jpeg_and_duplicate_id(tmp_path):
    root = _make_voc(tmp_path / "VOC2012", {"a": _lab([1], 64, 64)}, {"b": _lab([2])})
    jpg = root / "JPEGImages" / "a.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(jpg)
    data = jpg.read_bytes()
    jpg.write_bytes(data[: len(data) // 2])
    (root / "ImageSets/Segmentation/val.txt").write_text("b\nb\n")
    res = prepare_voc(root, tmp_path / "o")
    assert not res.ok
    assert len(res.splits["train"].problems) == 1
    assert "a.jpg: unreadable image" in res.splits["train"].problems[0]
    assert res.splits["val"].problems == [
        f"{root / 'ImageSets/Segmentation/val.txt'}: id b listed more than once"
    ]
    assert not (tmp_path / "o").exists()  # no split was written


def test_synthetic_layout_problems(tmp_path):
    res = prepare_voc(tmp_path / "nowhere")
    assert res.problems == [f"{tmp_path / 'nowhere'}: folder not found (expected a VOC2012 folder)"]
    root = tmp_path / "VOC2012"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    res = prepare_voc(root, splits=["val", "train_aug"])
    assert f"{root / 'JPEGImages'}: missing folder" in res.problems
    assert f"{root / 'SegmentationClass'}: missing folder" in res.problems
    assert f"{root / 'ImageSets/Segmentation/val.txt'}: missing split file" in res.problems
    assert not res.splits


def test_synthetic_train_aug_from_mmseg_trainaug_txt(tmp_path):
    """mmseg's voc_aug.py writes trainaug.txt (train + SBD, the train_aug list) and aug.txt (the
    SBD remainder without VOC train): only trainaug.txt may stand in for train_aug.txt."""
    root = _make_voc(tmp_path / "VOC2012", {"a": _lab([1])}, {"b": _lab([2])})
    aug = root / "SegmentationClassAug"
    aug.mkdir()
    Image.fromarray(_lab([9, 11])).save(aug / "a.png")  # greyscale, as SBD-converted labels are
    Image.fromarray(_lab([3])).save(aug / "s.png")
    Image.new("RGB", (24, 16)).save(root / "JPEGImages" / "s.jpg")
    seg = root / "ImageSets/Segmentation"
    (seg / "aug.txt").write_text("s\n")  # SBD only: the VOC train image "a" is missing
    (seg / "trainaug.txt").write_text("a\ns\n")
    assert DatasetLayout.of("voc12", root).split_file("train_aug") == seg / "trainaug.txt"
    assert voc_default_splits(root) == ["train", "val", "train_aug"]
    res = prepare_voc(root)
    assert res.ok
    assert load_image_labels(root / "cls_labels" / "train_aug.json") == {"a": [9, 11], "s": [3]}
    assert load_image_labels(root / "cls_labels" / "train.json") == {"a": [1]}


def test_synthetic_mmseg_aug_txt_alone_is_refused(tmp_path):
    root = _make_voc(tmp_path / "VOC2012", {"a": _lab([1])}, {"b": _lab([2])})
    (root / "SegmentationClassAug").mkdir()
    seg = root / "ImageSets/Segmentation"
    (seg / "aug.txt").write_text("s\n")
    assert voc_default_splits(root) == ["train", "val"]
    res = prepare_voc(root, splits=["train_aug"])
    assert not res.ok
    (problem,) = res.problems
    assert problem.startswith(f"{seg / 'train_aug.txt'}: missing split file")
    assert "SBD-only remainder" in problem and "trainaug.txt" in problem
    with pytest.raises(FileNotFoundError, match="cat train.txt aug.txt > train_aug.txt"):
        DatasetLayout.of("voc12", root).image_ids("train_aug")


def test_read_only_root_needs_out(tmp_path, capsys):
    root = _make_voc(tmp_path / "VOC2012", {"a": _lab([1])}, {"b": _lab([2])})
    (root / "cls_labels").write_text("a file where the output folder should be")
    rc = load_tool("prepare_voc").main([str(root), "--workers", "1", "--no-progress"])
    assert rc == 2
    assert "pass --out DIR" in capsys.readouterr().err
