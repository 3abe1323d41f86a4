"""Panels of a refinement run: image | pseudo label | masks | refined label, for changed images.

Written by :func:`fma.apis.refine.refine_label_dir` when ``show_dir`` is set. Masks are painted
with :mod:`fma.visualization.masks` straight from their RLE when they are fma mask files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fma.datasets.layout import IMAGE_SUFFIXES
from fma.io.label_maps import read_label_map
from fma.io.masks.layout import load_masks_any, mask_layout
from fma.io.masks.paint import rle_source
from fma.io.masks.records import read_sam_records
from fma.visualization.masks import mask_colors, paint_mask_colors

__all__ = ["write_refine_panels"]


def _panel_masks(masks_dir: Path, image_id: str, shape: tuple[int, int], seed: int) -> tuple:
    """(H, W, 3) mask colours and mask count; fma mask files are painted straight from RLE."""
    kind, path = mask_layout(masks_dir, image_id)
    if kind != "fma":
        sam = load_masks_any(masks_dir, image_id, image_size=shape)
        return mask_colors(sam.masks, seed), len(sam)
    doc = read_sam_records(path)
    h, w = int(doc["height"]), int(doc["width"])
    rles = [r["segmentation"] for r in doc["masks"]]
    areas = np.asarray([int(r["area"]) for r in doc["masks"]], dtype=np.int64)
    return paint_mask_colors(rle_source(rles, h, w), areas, h, w, seed), len(rles)


def _find_image(images_dir: Path, image_id: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = images_dir / f"{image_id}{suffix}"
        if p.is_file():
            return p
    return None


def write_refine_panels(
    ids: Sequence[str],
    labels_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    show_dir: str | os.PathLike,
    *,
    num_classes: int,
    palette: np.ndarray,
    images_dir: str | os.PathLike | None = None,
    num_show: int = 5,
    seed: int = 0,
    ignore_index: int = 255,
    progress: bool = True,
    class_names: Sequence[str] | None = None,
) -> list[Path]:
    """Write image | pseudo label | SAM masks | refined panels.

    The ``num_show`` images with the largest fraction of changed pixels are written as
    ``changed_01_<id>.png`` (most changed first), then ``num_show`` random other images
    (``numpy.random.default_rng(seed)``) as ``sample_01_<id>.png``. Without ``images_dir`` the
    image column is left out. A legend under each panel names the colour of every label in the
    pseudo label or the refined label (``class_names``; None shows the ids).

    Returns:
        Paths of the written panels.
    """
    from fma.visualization.panels import add_legend, colorize, panel_image, save_png, side_by_side

    labels_dir, out_dir, show_dir = Path(labels_dir), Path(out_dir), Path(show_dir)
    ids = [i for i in ids if (out_dir / f"{i}.png").is_file()]
    if not ids:
        return []
    changed = np.zeros(len(ids))
    it: Any = ids
    if progress:
        from tqdm import tqdm

        it = tqdm(ids, desc="compare", unit="img", leave=False)
    for n, image_id in enumerate(it):
        a = read_label_map(labels_dir / f"{image_id}.png", palette=palette)
        b = read_label_map(out_dir / f"{image_id}.png", palette=palette)
        changed[n] = float(np.mean(a != b)) if a.shape == b.shape else 1.0
    order = np.argsort(-changed, kind="stable")
    most = [int(j) for j in order[:num_show]]
    rest = np.setdiff1d(np.arange(len(ids)), most)
    rng = np.random.default_rng(seed)
    sample = sorted(rng.choice(rest, size=min(num_show, rest.size), replace=False).tolist())
    pal = np.asarray(palette, dtype=np.uint8)
    written = []
    for group, picks in (("changed", most), ("sample", sample)):
        for rank, j in enumerate(picks, start=1):
            image_id = ids[j]
            label = read_label_map(labels_dir / f"{image_id}.png", palette=pal)
            refined = read_label_map(out_dir / f"{image_id}.png", palette=pal)
            colours, n_masks = _panel_masks(Path(masks_dir), image_id, label.shape, seed)
            panels, titles = [], []
            if images_dir is not None:
                panels.append(panel_image(_find_image(Path(images_dir), image_id), label.shape))
                titles.append(image_id)
            panels += [
                colorize(label, pal, ignore_index=ignore_index),
                colours,
                colorize(refined, pal, ignore_index=ignore_index),
            ]
            titles += [
                "pseudo label",
                f"SAM masks ({n_masks})",
                f"refined ({100 * changed[j]:.1f}% changed)",
            ]
            path = show_dir / f"{group}_{rank:02d}_{image_id}.png"
            panel = side_by_side(panels, titles)
            panel = add_legend(panel, [label, refined], class_names, pal, ignore_index=ignore_index)
            save_png(path, panel)
            written.append(path)
    return written
