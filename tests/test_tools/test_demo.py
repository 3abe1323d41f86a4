"""The demo tool runs end to end and its reported mIoU is the right number."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from fma.io import read_label_map

REPO = Path(__file__).resolve().parents[2]


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
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    reported = json.loads(out.stdout.strip().splitlines()[-1])
    assert reported["images"] == 4
    # independent mIoU: per-class intersection / union summed over the images
    voc = work / "data" / "VOC2012"
    inter = np.zeros(21)
    union = np.zeros(21)
    for i in range(4):
        gt = read_label_map(voc / "SegmentationClass" / f"synth_{i:03d}.png")
        ps = read_label_map(work / "data" / "pseudo_labels" / f"synth_{i:03d}.png")
        valid = gt != 255
        for c in range(21):
            g, p = (gt == c) & valid, (ps == c) & valid
            inter[c] += (g & p).sum()
            union[c] += (g | p).sum()
    present = union > 0
    assert abs(reported["mIoU"] - round(100 * (inter[present] / union[present]).mean(), 2)) < 1e-9
    assert json.loads((work / "metrics.json").read_text())["n_images"] == 4
    assert len(list((work / "panels").glob("*.png"))) == 4
