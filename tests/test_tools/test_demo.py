"""The demo tool runs end to end and reports the right numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from fma.io import read_label_map

REPO = Path(__file__).resolve().parents[2]


def _independent_miou(pred_dir: Path, gt_dir: Path, ids: list[str]) -> float:
    """Per-class intersection / union summed over the images, classes present in either."""
    inter = np.zeros(21)
    union = np.zeros(21)
    for i in ids:
        gt = read_label_map(gt_dir / f"{i}.png")
        ps = read_label_map(pred_dir / f"{i}.png")
        valid = gt != 255
        for c in range(21):
            g, p = (gt == c) & valid, (ps == c) & valid
            inter[c] += (g & p).sum()
            union[c] += (g | p).sum()
    present = union > 0
    return round(100 * (inter[present] / union[present]).mean(), 2)


def test_demo_runs_and_reports_correct_miou(tmp_path):
    work = tmp_path / "demo"
    cmd = [
        sys.executable,
        str(REPO / "tools" / "demo.py"),
        "--work-dir",
        str(work),
        "--num-images",
        "4",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    reported = json.loads(out.stdout.strip().splitlines()[-1])
    voc = work / "data" / "VOC2012"
    gt_dir = voc / "SegmentationClass"
    ids = [f"synth_{i:03d}" for i in range(4)]
    folders = {
        "pseudo labels": work / "data" / "pseudo_labels",
        "SEPL max_iou_imp2": work / "refined_max_iou_imp2",
        "SEPL majority": work / "refined_majority",
    }
    assert set(reported) == set(folders)
    for name, folder in folders.items():
        assert reported[name] == _independent_miou(folder, gt_dir, ids), name
    assert len(list((work / "masks" / "train").glob("synth_*.json.gz"))) == 4
    assert json.loads((work / "metrics.json").read_text())["SEPL majority"]["n_images"] == 4
    # a rerun skips every finished stage and reports the same numbers
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout.strip().splitlines()[-1]) == reported
