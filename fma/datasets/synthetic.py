"""A small synthetic dataset in the VOC layout, for the demo and for tests (numpy + PIL).

Each image shows two to four filled shapes (rectangles and ellipses) of random VOC classes on a
smooth, noisy background. Besides the image and its ground truth the generator writes a coarse
"pseudo label" that imitates a CAM-based method: every object is dilated or eroded, shifted by a
few pixels, and some images get a spurious blob. Everything is deterministic given the seed.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from fma.datasets.meta import VOC12
from fma.io import write_bytes_atomic, write_label_map, write_text_atomic

__all__ = ["make_synthetic_voc", "synthetic_sample"]


def _shape_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    ry, rx = rng.uniform(0.12, 0.3) * h, rng.uniform(0.12, 0.3) * w
    yy, xx = np.mgrid[0:h, 0:w]
    if rng.random() < 0.5:
        return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _grow(mask: np.ndarray, steps: int) -> np.ndarray:
    """Binary dilation (steps > 0) or erosion (steps < 0) with a 3x3 cross, vectorised."""
    out = mask.copy()
    for _ in range(abs(steps)):
        p = np.pad(out, 1, constant_values=steps < 0)
        nb = np.stack([p[1:-1, 1:-1], p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])
        out = nb.any(0) if steps > 0 else nb.all(0)
    return out


def synthetic_sample(
    seed: int, height: int = 96, width: int = 128
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic sample.

    Returns:
        image (H, W, 3) uint8, ground truth (H, W) uint8 (0 = background, VOC classes 1..20,
        255 = a 1-pixel ignore border around objects as in VOC), pseudo label (H, W) uint8.
    """
    rng = np.random.default_rng(seed)
    h, w = height, width
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(40, 200, size=3)
    grad = rng.uniform(-60, 60, size=(2, 3))
    img = base + yy[..., None] * grad[0] + xx[..., None] * grad[1] + rng.normal(0, 6, (h, w, 3))
    gt = np.zeros((h, w), dtype=np.uint8)
    pseudo = np.zeros((h, w), dtype=np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        cls = int(rng.integers(1, VOC12.num_classes))
        m = _shape_mask(h, w, rng)
        colour = VOC12.palette[cls].astype(np.float64) * 0.6 + rng.uniform(0, 100, size=3)
        img[m] = colour + rng.normal(0, 8, (int(m.sum()), 3))
        gt[m] = cls
        coarse = np.roll(_grow(m, int(rng.integers(-2, 5))), rng.integers(-4, 5, size=2), (0, 1))
        pseudo[coarse] = cls
    if rng.random() < 0.5:  # a spurious activation
        blob = _shape_mask(h, w, rng) & _grow(gt == 0, -3)
        pseudo[blob] = int(rng.integers(1, VOC12.num_classes))
    edge = _grow(gt > 0, 1) & ~_grow(gt > 0, -1)
    gt[edge & (gt == 0)] = 255
    return np.clip(img, 0, 255).astype(np.uint8), gt, pseudo


def make_synthetic_voc(
    root: str | os.PathLike, num_images: int = 8, seed: int = 0, split: str = "train"
) -> Path:
    """Write a synthetic VOC2012-style tree and return its ``VOC2012`` folder.

    Layout: ``root/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/<split>.txt}``
    and ``root/pseudo_labels/<id>.png``. Image ids are ``synth_000``, ``synth_001``, ...
    """
    root = Path(root)
    voc = root / "VOC2012"
    ids = [f"synth_{i:03d}" for i in range(num_images)]
    for i, image_id in enumerate(ids):
        img, gt, pseudo = synthetic_sample(seed * 100_003 + i)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
        write_bytes_atomic(voc / "JPEGImages" / f"{image_id}.jpg", buf.getvalue())
        write_label_map(voc / "SegmentationClass" / f"{image_id}.png", gt, VOC12.palette)
        write_label_map(root / "pseudo_labels" / f"{image_id}.png", pseudo, VOC12.palette)
    split_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
    write_text_atomic(split_file, "\n".join(ids) + "\n")
    return voc
