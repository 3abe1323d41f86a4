"""The demo's synthetic set: deterministic, VOC layout, labels that match the ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fma.datasets.labels import load_image_labels
from fma.demo.data import (
    DEMO_CLASSES,
    MIN_PIXELS,
    VERSION,
    check_voc_root,
    demo_caption,
    demo_sample,
    earlier_version,
    make_demo_voc,
)
from fma.io import read_label_map


def test_sample_is_deterministic_and_labels_match_ground_truth():
    a, b = demo_sample(3), demo_sample(3)
    assert all(np.array_equal(x, y) for x, y in zip(a[:2], b[:2], strict=True))
    assert a[2:] == b[2:]
    assert not np.array_equal(demo_sample(4)[0], a[0])
    for seed in range(30):
        img, gt, classes, _ = demo_sample(seed)
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8 and gt.shape == (96, 96)
        assert 1 <= len(classes) <= 3 and set(classes) <= set(DEMO_CLASSES)
        present = {int(c) for c in np.unique(gt)} - {0, 255}
        assert present == set(classes)
        assert all((gt == c).sum() >= MIN_PIXELS for c in classes)


def test_classes_look_different():
    """Mean colour inside each class region differs clearly between classes."""
    means: dict[int, list[np.ndarray]] = {c: [] for c in DEMO_CLASSES}
    for seed in range(40):
        img, gt, classes, _ = demo_sample(seed)
        for c in classes:
            means[c].append(img[gt == c].mean(0))
    centres = {c: np.mean(v, 0) for c, v in means.items()}
    dists = [np.linalg.norm(centres[a] - centres[b]) for a in centres for b in centres if a < b]
    assert min(dists) > 40


def test_layout_and_rerun(tmp_path):
    voc = make_demo_voc(tmp_path, num_train=6, num_val=3)
    train = (voc / "ImageSets/Segmentation/train.txt").read_text().split()
    val = (voc / "ImageSets/Segmentation/val.txt").read_text().split()
    assert train == [f"demo_train_{i:04d}" for i in range(6)] and len(val) == 3
    labels = load_image_labels(voc / "cls_labels/train.json", dataset="voc12", num_classes=21)
    assert set(labels) == set(train)  # train only: val has no image-level labels
    for i in train:
        gt = read_label_map(voc / "SegmentationClass" / f"{i}.png")
        assert sorted(labels[i]) == sorted({int(c) for c in np.unique(gt)} - {0, 255})
        assert (voc / "JPEGImages" / f"{i}.jpg").is_file()
    before = (voc / "SegmentationClass/demo_val_0000.png").read_bytes()
    make_demo_voc(tmp_path, num_train=6, num_val=3)  # same settings: kept
    assert (voc / "SegmentationClass/demo_val_0000.png").read_bytes() == before
    assert json.loads((tmp_path / "manifest.json").read_text())["params"]["num_train"] == 6
    with pytest.raises(ValueError, match="other|made with"):
        make_demo_voc(tmp_path, num_train=7, num_val=3)
    # a set of an earlier version of the looks is refused with the same settings
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert earlier_version(tmp_path) is None
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "version": VERSION - 1}))
    assert earlier_version(tmp_path) == VERSION - 1
    with pytest.raises(ValueError, match="earlier version"):
        make_demo_voc(tmp_path, num_train=6, num_val=3)


def test_foreign_data_root_is_only_checked(tmp_path, capsys):
    voc = make_demo_voc(tmp_path / "a", num_train=2, num_val=1)
    assert check_voc_root(voc) == 0
    (voc / "cls_labels/train.json").unlink()
    assert check_voc_root(voc) == 1
    assert "tools/prepare_voc.py" in capsys.readouterr().err


def test_background_only_sample_and_caption():
    img, gt, classes, bg = demo_sample(5, num_objects=0)
    assert classes == [] and not gt.any() and img.shape == (96, 96, 3)
    assert demo_caption([], bg, np.random.default_rng(0)) == f"a photo of the {bg}."
    # the default draw is unchanged by the option's existence
    assert np.array_equal(demo_sample(5)[0], demo_sample(5, num_objects=None)[0])
