"""Tiny VOC 2012 + SBD trees: ``.mat`` files with SBD's structure (a 1x1 struct ``GTcls`` with
``Boundaries``, a 20x1 cell of sparse matrices, ``Segmentation`` uint8 HxW and
``CategoriesPresent``) next to a VOC folder. Needs scipy (tests importorskip it first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io as sio
import scipy.sparse as sparse
from PIL import Image

from fma.datasets.meta import VOC12
from fma.io import write_label_map

H, W = 12, 16


def save_sbd_mat(path: Path, seg: np.ndarray, name: str = "GTcls") -> None:
    """Write ``seg`` as SBD's ``cls/<id>.mat``."""
    bounds = np.empty((20, 1), dtype=object)
    for k in range(20):
        bounds[k, 0] = sparse.csc_matrix(seg.shape[:2], dtype=bool)
    present = np.unique(seg[(seg > 0) & (seg < 255)]).astype(np.uint8).reshape(-1, 1)
    gt = np.zeros((1, 1), dtype=[(f, object) for f in
                                 ("Boundaries", "Segmentation", "CategoriesPresent")])  # fmt: skip
    gt[0, 0]["Boundaries"] = bounds
    gt[0, 0]["Segmentation"] = seg
    gt[0, 0]["CategoriesPresent"] = present
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.savemat(path, {name: gt})


def lab(*values: int, h: int = H, w: int = W) -> np.ndarray:
    """A label map: background with one 2x3 block per value."""
    out = np.zeros((h, w), dtype=np.uint8)
    for k, v in enumerate(values):
        out[2 * k : 2 * k + 2, 3 * k : 3 * k + 3] = v
    return out


# VOC: train a, b (VOC PNGs); val v1, v2. SBD: train a, s1, s2, s1 (a duplicate line);
# val v1 (a VOC val id: excluded), s3, s2 (in both SBD lists).
VOC_TRAIN = {"a": lab(12, 255), "b": lab(5)}
VOC_VAL = {"v1": lab(9), "v2": lab(4)}
SBD_MATS = {"a": lab(7), "s1": lab(15), "s2": lab(1, 20), "s3": lab(), "v1": lab(3)}
SBD_TRAIN = ["a", "s1", "s2", "s1"]
SBD_VAL = ["v1", "s3", "s2"]
TRAIN_AUG = ["a", "b", "s1", "s2", "s3"]  # (train + SBD train + SBD val) - val, sorted


def make_tree(tmp: Path) -> tuple[Path, Path]:
    """(VOC2012 root, benchmark_RELEASE folder) of the ids above."""
    voc, bench = tmp / "VOC2012", tmp / "benchmark_RELEASE"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    for i in {*VOC_TRAIN, *VOC_VAL, *SBD_MATS}:
        Image.new("RGB", (W, H), (90, 40, 10)).save(voc / "JPEGImages" / f"{i}.jpg")
    for split, items in (("train", VOC_TRAIN), ("val", VOC_VAL)):
        for i, m in items.items():
            write_label_map(voc / "SegmentationClass" / f"{i}.png", m, VOC12.palette)
        (voc / "ImageSets/Segmentation" / f"{split}.txt").write_text(
            "".join(f"{i}\n" for i in items)
        )
    ds = bench / "dataset"
    for i, m in SBD_MATS.items():
        save_sbd_mat(ds / "cls" / f"{i}.mat", m)
        (ds / "img").mkdir(exist_ok=True)
        Image.new("RGB", (W, H)).save(ds / "img" / f"{i}.jpg")
    (ds / "train.txt").write_text("\n".join(SBD_TRAIN) + "\n")
    (ds / "val.txt").write_text("\n".join(SBD_VAL) + "\n")
    return voc, bench
