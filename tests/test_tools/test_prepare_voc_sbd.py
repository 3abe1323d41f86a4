"""``python tools/prepare_voc.py VOC2012 --sbd benchmark_RELEASE`` as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fma.datasets.labels import load_image_labels
from fma.datasets.meta import VOC12
from fma.io import write_label_map

sio = pytest.importorskip("scipy.io")

REPO = Path(__file__).resolve().parents[2]


def _tree(tmp: Path) -> tuple[Path, Path]:
    """VOC train t1, val v1; SBD train s1 + v1 (a VOC val id), SBD val s2."""
    voc, ds = tmp / "VOC2012", tmp / "benchmark_RELEASE" / "dataset"
    seg_list = voc / "ImageSets" / "Segmentation"
    seg_list.mkdir(parents=True)
    (ds / "cls").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    maps = {"t1": 8, "v1": 11, "s1": 13, "s2": 19}
    for i, c in maps.items():
        lab = np.zeros((6, 10), np.uint8)
        lab[2:4, 3:7] = c
        Image.new("RGB", (10, 6)).save(voc / "JPEGImages" / f"{i}.jpg")
        if i in ("t1", "v1"):
            write_label_map(voc / "SegmentationClass" / f"{i}.png", lab, VOC12.palette)
        else:
            gt = np.zeros((1, 1), dtype=[("Boundaries", object), ("Segmentation", object),
                                         ("CategoriesPresent", object)])  # fmt: skip
            gt[0, 0]["Boundaries"] = np.empty((20, 1), dtype=object)
            gt[0, 0]["Boundaries"][:, 0] = [np.zeros((6, 10), bool)] * 20
            gt[0, 0]["Segmentation"] = lab
            gt[0, 0]["CategoriesPresent"] = np.array([[c]], np.uint8)
            sio.savemat(ds / "cls" / f"{i}.mat", {"GTcls": gt})
    (seg_list / "train.txt").write_text("t1\n")
    (seg_list / "val.txt").write_text("v1\n")
    (ds / "train.txt").write_text("s1\nv1\n")
    (ds / "val.txt").write_text("s2\n")
    return voc, ds.parent


def test_prepare_voc_sbd_subprocess(tmp_path):
    voc, bench = _tree(tmp_path)
    cmd = [sys.executable, str(REPO / "tools" / "prepare_voc.py"), str(voc), "--sbd", str(bench),
           "--no-progress", "--workers", "1"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "train_aug: 3" in proc.stdout
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text() == "s1\ns2\nt1\n"
    labels = load_image_labels(voc / "cls_labels/train_aug.json", dataset="voc12")
    assert labels == {"s1": [13], "s2": [19], "t1": [8]}
    assert (voc / "SegmentationClassAug/manifest.json").is_file()
    assert not (voc / "SegmentationClassAug/v1.png").exists()


def test_prepare_voc_help_names_sbd():
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "prepare_voc.py"), "--help"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "--sbd SBD_ROOT" in proc.stdout
