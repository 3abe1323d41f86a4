"""CAMMetric: CAM files, manifest and CAM mIoU on hand-built inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fma.datasets.meta import VOC12
from fma.evaluation.metrics import CAMMetric
from fma.io import read_manifest, write_label_map
from fma.io.cams import load_cam


def _sample(gt_path: str, cam: torch.Tensor) -> dict:
    return {
        "img_id": "im0",
        "ori_shape": (4, 4),
        "gt_path": gt_path,
        "cam": cam,
        "fg_cls": torch.tensor([5]),
        "fg_logit": torch.tensor([3.0]),
        "all_logit": torch.arange(20.0),
    }


def test_writes_files_and_scores(tmp_path) -> None:
    gt = np.zeros((4, 4), np.uint8)
    gt[:2, :2] = 5
    gt[3, 3] = 255
    write_label_map(tmp_path / "gt.png", gt, VOC12.palette)
    cam = torch.zeros(1, 2, 2)
    cam[0, 0, 0] = 1.0  # after bilinear resizing to 4x4 the top-left block is highest
    out = tmp_path / "cams"
    metric = CAMMetric(output_dir=out, dataset="voc12", split="train", gammas=(1, 100))
    metric.process({}, [_sample(str(tmp_path / "gt.png"), cam)])
    res = metric.compute_metrics(metric.results)

    rec = load_cam(out / "im0.npz")
    assert rec.fg_cls.tolist() == [5] and rec.cam.dtype == np.float16
    assert rec.ori_size == (4, 4) and rec.all_logit.shape == (20,)
    man = read_manifest(out, format="cams", version=1)
    assert man.count == 1 and man.dataset == "voc12" and man.split == "train"
    assert man.class_names == list(VOC12.class_names)

    # score at 4x4: rows/cols weights [1, .75, .25, 0] -> outer product; normalised by max 1
    w = np.array([1.0, 0.75, 0.25, 0.0])
    score = np.outer(w, w)
    for g in (1, 100):
        pred = np.where(score > (1 - score) ** g, 5, 0)
        valid = gt != 255
        ious = [
            ((pred == c) & (gt == c) & valid).sum() / (((pred == c) | (gt == c)) & valid).sum()
            for c in (0, 5)
        ]
        want = sum(ious) / 2 * 100
        assert res[f"mIoU@{g}"] == pytest.approx(want)
    assert res["images"] == 1.0
    assert res["mIoU_best"] == max(res["mIoU@1"], res["mIoU@100"])


def test_without_gt_or_output(tmp_path) -> None:
    metric = CAMMetric(output_dir=None, gammas=())
    metric.process({}, [_sample("", torch.zeros(1, 2, 2))])
    assert metric.results == [] and metric.compute_metrics([]) == {}
