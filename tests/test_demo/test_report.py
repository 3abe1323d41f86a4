"""The demo report: chance baseline known answers; missing artifacts are named."""

from __future__ import annotations

import numpy as np

from fma.datasets.meta import VOC12
from fma.demo.data import make_demo_voc
from fma.demo.report import NOT_A_RESULT, chance_miou, write_report
from fma.io import write_label_map, write_text_atomic


def test_chance_miou_known_answer(tmp_path):
    """One 2x2 image, half background, half class 8: random among {0, 8} gives IoU 1/3 each."""
    root = tmp_path / "VOC2012"
    gt = np.array([[0, 0], [8, 8]], dtype=np.uint8)
    write_label_map(root / "SegmentationClass/a.png", gt, VOC12.palette)
    write_text_atomic(root / "ImageSets/Segmentation/train.txt", "a\n")
    # expected confusion: each row (1 pixel to 0, 1 pixel to 8) -> IoU = 1 / (2 + 1) = 1/3
    assert abs(chance_miou(root, "train") - 100 / 3) < 1e-9


def test_report_names_missing_artifacts(tmp_path):
    voc = make_demo_voc(tmp_path / "data", num_train=2, num_val=2)
    path = write_report(tmp_path, voc, num_train=1, num_val=1)
    text = path.read_text()
    assert NOT_A_RESULT in text and "Metrics per stage" in text
    assert text.count("missing") >= 6  # every stage's metrics and pictures are absent
    assert "demo_train_0000" in text and "demo_val_0000" in text
    assert "data:image/png;base64," in text
