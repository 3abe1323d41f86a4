"""The demo report: chance baseline known answers; missing artifacts are named."""

from __future__ import annotations

import numpy as np

from fma.datasets.meta import VOC12
from fma.demo.data import make_demo_voc
from fma.demo.report import NOT_A_RESULT, chance_miou, image_miou, summary_line, write_report
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


def test_image_miou_known_answers():
    gt = np.array([[0, 0, 8, 8], [0, 0, 8, 255]], dtype=np.uint8)
    assert image_miou(gt.copy(), gt) == 100.0  # the ignore pixel is left out
    # background: 3 shared, 4 + 4 pixels -> IoU 3/5; class 8: 2 shared, 3 + 3 -> 2/4
    pred = np.array([[0, 0, 0, 8], [0, 8, 8, 0]], dtype=np.uint8)
    assert abs(image_miou(pred, gt) - 100 * (3 / 5 + 2 / 4) / 2) < 1e-9
    # a class only predicted counts with IoU 0: background 4 / (4 + 6 - 4), 8 and 6 zero
    pred = np.array([[0, 0, 0, 0], [0, 0, 6, 0]], dtype=np.uint8)
    assert abs(image_miou(pred, gt) - 100 * (4 / 6 + 0 + 0) / 3) < 1e-9
    assert image_miou(gt, np.full_like(gt, 255)) is None


def test_summary_line_says_what_improved():
    line = summary_line(35.0, 40.0, 38.5, 30.0)
    assert line.startswith("The coarse seeds improve on the CAMs by 5.0 mIoU")
    assert "the fine seeds do not improve on the coarse seeds (-1.5 mIoU)" in line
    assert "30.0, below the 38.5" in line
    assert summary_line(None, None, None, None) == "Metrics missing: nothing to compare."
