"""The demo's synthetic VOC-layout set: a few classes with distinct looks, made in code.

Five VOC classes appear (the other fifteen never do; class ids stay VOC's 21), each with its own
colour, texture and shape, so that a small CLIP-like model can learn them in seconds:

=========  =====  ================================================
class      VOC id look
=========  =====  ================================================
boat       4      blue trapezoid hull, faint lighter waves
bus        6      yellow rectangle, grid of darker windows
car        7      red rounded rectangle with two dark wheels
cat        8      orange ellipse, faint diagonal stripes
cow        10     white ellipse, dark grey spots
=========  =====  ================================================

Each image shows one to three objects of different classes on one of three textured
backgrounds named after CLIP-ES background prompts (``grass``, ``ground``, ``wall``). The
image-level labels are the classes with at least :data:`MIN_PIXELS` visible pixels.

Version 2 of the looks (version 1: black spots; stripes, windows and waves at 2.5 times the
contrast; a grey wall): Felzenszwalb superpixels, the demo's stand-in for SAM, cut strong
textures into fragments, so the coarse seeds held one stripe of a cat or the spots of a cow and
the segmentation prompts trained on them learnt the fragments; and the seeds of a white cow on
the grey wall stayed empty or covered the wall. With the faint textures and the mauve wall the
fine seeds improve on the coarse ones (the variants measured: docs/benchmarks.md#demo).

Layout written by :func:`make_demo_voc` (``ROOT`` = ``--out``)::

    ROOT/manifest.json                        what was generated (a rerun with the same
                                              settings skips; other settings are refused)
    ROOT/VOC2012/JPEGImages/<id>.jpg          train and val images (ids demo_train_0000, ...)
    ROOT/VOC2012/SegmentationClass/<id>.png   VOC palette ground truth (255 = 1-pixel ignore
                                              ring around objects, as in VOC)
    ROOT/VOC2012/ImageSets/Segmentation/{train,val}.txt
    ROOT/VOC2012/cls_labels/train.json        image-level labels (fma's format, as written by
                                              tools/prepare_voc.py)

Weak supervision: the train ground truth exists only so that CAMs and seeds can be *scored*
(as VOC has train ground truth); nothing that trains reads it: stage I reads
``cls_labels/train.json``, stage II reads the seeds. ``val`` has ground truth for evaluation
only. numpy + PIL only; deterministic given the seed.

    python -m fma.demo.data --out work_dirs/demo/data --num-train 160 --num-val 48
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from fma.datasets.labels import save_image_labels
from fma.datasets.meta import VOC12
from fma.io import (
    Manifest,
    producer_info,
    read_manifest,
    write_bytes_atomic,
    write_label_map,
    write_manifest,
    write_text_atomic,
)

__all__ = [
    "BACKGROUNDS",
    "DEMO_CLASSES",
    "MIN_PIXELS",
    "demo_caption",
    "demo_sample",
    "earlier_version",
    "make_demo_voc",
]

#: VOC class id -> name of the classes that appear (the names are VOC12.class_names').
DEMO_CLASSES: dict[int, str] = {4: "boat", 6: "bus", 7: "car", 8: "cat", 10: "cow"}
#: Background kinds; each name is one of the CLIP-ES background prompts (VOC12.clip_bg_names).
BACKGROUNDS: tuple[str, ...] = ("grass", "ground", "wall")
#: A class counts as present (image-level label) from this many visible pixels on.
MIN_PIXELS = 40
FORMAT = "demo_voc"
VERSION = 2


def _background(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float64 textured background."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    noise = rng.normal(0, 1, (h, w))
    if kind == "grass":  # green with vertical blade streaks
        streak = np.sin(xx * rng.uniform(1.2, 1.8) + rng.normal(0, 0.6, (1, w))) * 14
        base = np.array([60.0, 135.0, 50.0]) * rng.uniform(0.85, 1.15)
        img = base + (streak + noise * 8)[..., None] * np.array([0.4, 1.0, 0.4])
    elif kind == "ground":  # brown, blotchy
        blot = np.sin(yy / rng.uniform(5, 9) + 2 * np.sin(xx / 7.0)) * 12
        base = np.array([115.0, 88.0, 62.0]) * rng.uniform(0.85, 1.15)
        img = base + (blot + noise * 10)[..., None]
    else:  # wall: mauve bricks with darker mortar lines
        base = np.array([125.0, 100.0, 150.0]) * rng.uniform(0.85, 1.15)
        row = (yy // 8).astype(int)
        mortar = (yy % 8 < 1) | (((xx + 8 * (row % 2)) % 16) < 1)
        img = base + noise[..., None] * 6 - 45 * mortar[..., None]
    return img


def _object(cls: int, h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One object: its (H, W) bool mask and (H, W, 3) float64 colours (valid inside the mask)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    side = min(h, w)
    ry, rx = rng.uniform(0.14, 0.24, size=2) * side
    cy = rng.uniform(ry, h - ry)
    cx = rng.uniform(rx, w - rx)
    dy, dx = (yy - cy) / ry, (xx - cx) / rx
    noise = rng.normal(0, 1, (h, w))[..., None]
    if cls == 4:  # boat: trapezoid, wider at the top, waves
        mask = (np.abs(dy) <= 0.7) & (np.abs(dx) <= 1.0 - 0.35 * (dy + 0.7))
        wave = np.sin(yy * 1.6 + np.sin(xx * 0.5) * 2) > 0.3
        col = np.array([35.0, 75.0, 200.0]) + 22 * wave[..., None] + 6 * noise
    elif cls == 6:  # bus: rectangle with a window grid
        mask = (np.abs(dy) <= 0.8) & (np.abs(dx) <= 1.0)
        windows = ((yy - cy) % 7 < 3.5) & ((xx - cx) % 7 < 3.5) & (dy < 0.3)
        col = np.array([230.0, 200.0, 35.0]) - 60 * windows[..., None] + 6 * noise
    elif cls == 7:  # car: rounded rectangle with two wheels
        mask = (np.abs(dy) ** 4 + np.abs(dx) ** 4) <= 1.0
        mask &= dy <= 0.55
        wheels = np.zeros_like(mask)
        for sx in (-0.55, 0.55):
            wheels |= ((dy - 0.6) ** 2 * (ry / rx) ** 2 + (dx - sx) ** 2) * rx**2 <= (0.3 * ry) ** 2
        mask |= wheels
        col = np.where(wheels[..., None], 35.0, np.array([205.0, 30.0, 35.0])) + 6 * noise
    elif cls == 8:  # cat: ellipse with diagonal stripes
        mask = dy**2 + dx**2 <= 1.0
        stripes = np.sin((xx + yy) * 0.9) > 0.35
        col = np.array([235.0, 135.0, 40.0]) - 44 * stripes[..., None] + 6 * noise
    elif cls == 10:  # cow: white ellipse, dark grey spots
        mask = dy**2 + dx**2 <= 1.0
        spots = np.zeros((h, w), dtype=bool)
        for _ in range(int(rng.integers(3, 6))):
            sy, sx = rng.uniform(-0.6, 0.6, size=2)
            r = rng.uniform(0.2, 0.35)
            spots |= (dy - sy) ** 2 + (dx - sx) ** 2 <= r**2
        col = np.where(spots[..., None], 60.0, 235.0) + 6 * noise
    else:
        raise ValueError(f"class {cls} is not a demo class ({sorted(DEMO_CLASSES)})")
    return mask, col


def _grow(mask: np.ndarray) -> np.ndarray:
    """One step of binary dilation with a 3x3 cross."""
    p = np.pad(mask, 1)
    return p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]


def demo_sample(
    seed: int, size: int = 96, num_objects: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[int], str]:
    """One synthetic image.

    Args:
        seed: the sample's seed (everything follows from it).
        size: image side in pixels (square images).
        num_objects: 0 to 5 objects instead of the random one to three (0: background only;
            the tiny CLIP's pretraining corpus uses it, the demo set does not).

    Returns:
        ``(image, gt, classes, background)``: (size, size, 3) uint8 RGB image; (size, size)
        uint8 ground truth (0 background, VOC ids of :data:`DEMO_CLASSES`, 255 a 1-pixel
        ignore ring around objects); the sorted VOC ids with at least :data:`MIN_PIXELS`
        visible pixels; the background kind (one of :data:`BACKGROUNDS`).
    """
    rng = np.random.default_rng(seed)
    h = w = int(size)
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    img = _background(background, h, w, rng)
    gt = np.zeros((h, w), dtype=np.uint8)
    ids = np.array(sorted(DEMO_CLASSES))
    n_obj = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
    if num_objects is not None:
        n_obj = int(num_objects)
    for cls in rng.choice(ids, size=n_obj, replace=False):
        mask, col = _object(int(cls), h, w, rng)
        img[mask] = col[mask]
        gt[mask] = int(cls)
    present = [int(c) for c in ids if (gt == c).sum() >= MIN_PIXELS]
    for c in ids:  # a class hidden below MIN_PIXELS is not labelled: its pixels become ignore
        if int(c) not in present:
            gt[gt == c] = 255
    ring = _grow(gt > 0) & (gt == 0)
    gt[ring] = 255
    return np.clip(img, 0, 255).astype(np.uint8), gt, present, background


_TEMPLATES = (
    "a photo of {objs} on the {bg}.",
    "a photo of {objs}.",
    "{objs} on the {bg}.",
    "a picture of {objs}.",
    "a toy scene with {objs}.",
)


def demo_caption(classes: Sequence[int], background: str, rng: np.random.Generator) -> str:
    """A caption naming the classes (CLIP-ES prompt names) and the background, shuffled;
    without classes "a photo of the {background}."."""
    names = [VOC12.clip_fg_names[c - 1] for c in classes]
    if not names:
        return f"a photo of the {background}."
    names = [names[i] for i in rng.permutation(len(names))]
    objs = [f"a {n}" for n in names]
    text = objs[0] if len(objs) == 1 else ", ".join(objs[:-1]) + " and " + objs[-1]
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template.format(objs=text, bg=background)


def _params(num_train: int, num_val: int, size: int, seed: int) -> dict[str, int]:
    return {"num_train": num_train, "num_val": num_val, "size": size, "seed": seed}


def earlier_version(root: str | os.PathLike) -> int | None:
    """The version of the demo set in ``root`` when it is older than :data:`VERSION` (its images
    look different); None for this version, another format or no set."""
    return _earlier(read_manifest(root, required=False))


def _earlier(old: Manifest | None) -> int | None:
    if old is None or old.format != FORMAT or old.version == VERSION:
        return None
    return old.version


def make_demo_voc(
    root: str | os.PathLike,
    num_train: int = 160,
    num_val: int = 48,
    size: int = 96,
    seed: int = 0,
) -> Path:
    """Write the demo set (see the module docstring) and return its ``VOC2012`` folder.

    Sample ``i`` of ``train`` uses seed ``seed * 1_000_003 + i``, val sample ``i`` seed
    ``seed * 1_000_003 + 500_000 + i`` (disjoint from train for up to 500,000 images).

    Raises:
        ValueError: ``root`` holds a demo set made with other settings.
    """
    root = Path(root)
    voc = root / "VOC2012"
    params = _params(num_train, num_val, size, seed)
    old = read_manifest(root, required=False)
    if (earlier := _earlier(old)) is not None:
        raise ValueError(
            f"{root}: holds a demo set of an earlier version ({earlier}; this is {VERSION}: "
            "other textures); delete the folder or choose another --out"
        )
    if old is not None:
        if old.format != FORMAT or old.params != params:
            raise ValueError(
                f"{root}: holds a demo set made with {old.params}, this run asks for {params}; "
                "delete the folder or choose another --out"
            )
        return voc
    labels: dict[str, list[int]] = {}
    for split, n, offset in (("train", num_train, 0), ("val", num_val, 500_000)):
        ids = [f"demo_{split}_{i:04d}" for i in range(n)]
        for i, image_id in enumerate(ids):
            img, gt, classes, _ = demo_sample(seed * 1_000_003 + offset + i, size)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=95)
            write_bytes_atomic(voc / "JPEGImages" / f"{image_id}.jpg", buf.getvalue())
            write_label_map(voc / "SegmentationClass" / f"{image_id}.png", gt, VOC12.palette)
            if split == "train":
                labels[image_id] = classes
        split_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
        write_text_atomic(split_file, "\n".join(ids) + "\n")
    producer = producer_info("fma.demo.data")
    save_image_labels(
        voc / "cls_labels" / "train.json", labels, VOC12.class_names, "voc12", "train",
        producer=producer,
    )  # fmt: skip
    write_manifest(
        root,
        Manifest(
            format=FORMAT, version=VERSION, count=num_train + num_val, dataset="voc12",
            split="train+val", class_names=list(VOC12.class_names), producer=producer,
            params=params,
        ),
    )  # fmt: skip
    return voc


def check_voc_root(data_root: str | os.PathLike) -> int:
    """Check a user's VOC-layout folder for what the demo pipeline reads; 0 when usable."""
    root = Path(data_root)
    need = [
        root / "ImageSets" / "Segmentation" / "train.txt",
        root / "ImageSets" / "Segmentation" / "val.txt",
        root / "cls_labels" / "train.json",
    ]
    missing = [p for p in need if not p.is_file()]
    if missing:
        hint = ""
        if root / "cls_labels" / "train.json" in missing:
            hint = f"; write the image-level labels with: python tools/prepare_voc.py {root}"
        print(f"error: {root} lacks {', '.join(map(str, missing))}{hint}", file=sys.stderr)
        return 1
    print(f"demo data: using {root} as given (nothing generated)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the demo's synthetic VOC-layout set.")
    p.add_argument("--out", required=True, help="output folder (the VOC2012 folder goes inside)")
    p.add_argument("--num-train", type=int, default=160)
    p.add_argument("--num-val", type=int, default=48)
    p.add_argument("--size", type=int, default=96, help="image side (a multiple of 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data-root",
        help="the pipeline's data folder: when it is not OUT/VOC2012 (a user's own VOC-layout "
        "set), nothing is generated and only its layout is checked",
    )
    args = p.parse_args(argv)
    if args.data_root and Path(args.data_root).resolve() != (Path(args.out) / "VOC2012").resolve():
        return check_voc_root(args.data_root)
    if args.size % 16 or args.size < 32:
        p.error("--size must be a multiple of 16, at least 32")
    if args.num_train < 1 or args.num_val < 1:
        p.error("--num-train and --num-val must be >= 1")
    try:
        voc = make_demo_voc(args.out, args.num_train, args.num_val, args.size, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"demo data: {voc} ({args.num_train} train images with image-level labels, "
          f"{args.num_val} val images)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
