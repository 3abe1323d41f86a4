"""Build a custom-layout dataset folder (docs/datasets.md, "Custom datasets") from a VOC tree."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fma.datasets.meta import VOC12
from fma.io import read_label_map, write_label_map


def voc_to_custom(
    voc: Path,
    ids: Sequence[str],
    out: Path,
    *,
    val_ids: Sequence[str] = (),
    with_gt: bool = True,
    prompt_names: Sequence[str] | None = None,
) -> Path:
    """``out/{images,classes.txt,labels.csv,ground_truth,splits}`` from the VOC folder ``voc``.

    Images are symlinks; ``classes.txt`` lists the 20 VOC names in VOC order (so class ids are
    the same); ``labels.csv`` holds the classes present in each ground-truth map;
    ``splits/val.txt`` is written when ``val_ids`` are given, ``prompt_names.txt`` when
    ``prompt_names`` are.
    """
    (out / "images").mkdir(parents=True)
    rows = ["image_id,labels"]
    for image_id in sorted(set(ids) | set(val_ids)):
        os.symlink(
            (voc / "JPEGImages" / f"{image_id}.jpg").resolve(), out / "images" / f"{image_id}.jpg"
        )
        gt = read_label_map(voc / "SegmentationClass" / f"{image_id}.png", palette=VOC12.palette)
        present = [VOC12.class_names[c] for c in np.unique(gt) if 0 < c < 21]
        rows.append(f"{image_id},{';'.join(present)}")
        if with_gt:
            write_label_map(out / "ground_truth" / f"{image_id}.png", gt, VOC12.palette)
    (out / "classes.txt").write_text("\n".join(VOC12.class_names[1:]) + "\n")
    (out / "labels.csv").write_text("\n".join(rows) + "\n")
    if prompt_names is not None:
        (out / "prompt_names.txt").write_text("\n".join(prompt_names) + "\n")
    if val_ids:
        (out / "splits").mkdir()
        (out / "splits" / "val.txt").write_text("\n".join(val_ids) + "\n")
    return out
