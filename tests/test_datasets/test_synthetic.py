"""The synthetic example used by the demo."""

from __future__ import annotations

import numpy as np

from fma.datasets.synthetic import make_synthetic_voc, synthetic_sample
from fma.io import read_label_map


def test_synthetic_sample_is_deterministic_and_valid():
    a = synthetic_sample(3)
    b = synthetic_sample(3)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    img, gt, pseudo = a
    assert img.shape == (96, 128, 3) and img.dtype == np.uint8
    assert set(np.unique(gt).tolist()) <= set(range(21)) | {255}
    assert set(np.unique(pseudo).tolist()) <= set(range(21))
    fg = set(np.unique(gt).tolist()) - {0, 255}
    assert 1 <= len(fg) <= 4
    # the ignore band is one pixel wide and lies only next to objects
    ignore = gt == 255
    assert ignore.any()
    near = np.zeros_like(ignore)
    obj = (gt > 0) & (gt < 255)
    near[1:] |= obj[:-1]
    near[:-1] |= obj[1:]
    near[:, 1:] |= obj[:, :-1]
    near[:, :-1] |= obj[:, 1:]
    assert not (ignore & ~near).any()


def test_make_synthetic_voc_layout(tmp_path):
    voc = make_synthetic_voc(tmp_path, num_images=3, seed=1)
    ids = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert ids == ["synth_000", "synth_001", "synth_002"]
    for i in ids:
        assert (voc / "JPEGImages" / f"{i}.jpg").is_file()
        gt = read_label_map(voc / "SegmentationClass" / f"{i}.png", num_classes=21)
        ps = read_label_map(tmp_path / "pseudo_labels" / f"{i}.png", num_classes=21)
        assert gt.shape == ps.shape == (96, 128)
