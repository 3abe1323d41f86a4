"""Hyperparameter sweeps of the seeding stage, scored against ground truth (analysis only).

:func:`sweep_gamma` scores SAMS seeds for several background exponents; it reads ground truth,
writes nothing and chooses nothing (architecture.md §5.2 rule 7: sweeps are separate, recorded
runs). The seeding stage itself is :mod:`fma.apis.seeds`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fma.apis.seeds import _check_inputs, _label_space, _load_pair, _set_threads
from fma.datasets.layout import DatasetLayout
from fma.evaluation.confusion import confusion_matrix, metrics_from_confusion
from fma.io.label_maps import read_label_map
from fma.seeding.sams import mask_fg_scores, seed_from_scores
from fma.seeding.sams_options import SamsOptions
from fma.stage import map_per_image

__all__ = ["sweep_gamma"]


def _sweep_one(
    image_id: str,
    cam_dir: str,
    mask_dir: str,
    gt_dir: str,
    options: list[SamsOptions],
    num_classes: int,
    threads: int,
    palette: np.ndarray | None = None,
) -> np.ndarray:
    """(G, C, C + 1) confusion matrices of one image for every option set."""
    _set_threads(threads)
    cam, masks, _ = _load_pair(image_id, cam_dir, mask_dir, num_classes)
    gt_path = Path(gt_dir) / f"{image_id}.png"
    gt = read_label_map(gt_path, num_classes=num_classes, palette=palette)
    if gt.shape != masks.shape:
        raise ValueError(f"{gt_path}: ground truth is {gt.shape}, masks are {masks.shape}")
    score = mask_fg_scores(cam.cam, masks, options[0])  # the same for every gamma
    out = np.zeros((len(options), num_classes, num_classes + 1), dtype=np.int64)
    for g, opt in enumerate(options):
        seed = seed_from_scores(masks, score, cam.fg_cls, opt).seed
        out[g] = confusion_matrix(seed, gt, num_classes)
    return out


def sweep_gamma(
    cam_dir: str | os.PathLike,
    mask_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    gammas: Sequence[float],
    *,
    dataset: str,
    options: SamsOptions | None = None,
    split: str | None = None,
    data_root: str | os.PathLike | None = None,
    image_ids: Sequence[str] | None = None,
    workers: int = 0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Score SAMS seeds (``bg_method="pow"``) for several ``gamma`` against ground truth.

    Analysis only: it reads ground truth, writes nothing, and does not choose a value. The
    gamma-independent mask scores are computed once per image.

    Args:
        cam_dir, mask_dir: inputs as in :func:`fma.apis.seeds.run_seeding`.
        gt_dir: folder of ``<id>.png`` ground-truth label maps.
        gammas: background exponents to score.
        dataset, split, data_root, image_ids: as in :func:`fma.apis.seeds.run_seeding`.
        options: the other SAMS settings (``norm_first``, ``priority``, ``gather``); every row
            uses them with ``bg_method="pow"`` and its own ``gamma``. None: the defaults.
        workers: 0 in this process, N > 0 worker processes.
        progress: show a progress bar.

    Returns:
        One dict per gamma, in the given order: ``{"gamma": g, "mIoU": ..., "metrics": ...}``
        with the metrics of :func:`fma.evaluation.confusion.metrics_from_confusion`.

    Raises:
        fma.stage.StageFailedError: images that could not be scored (every one named), after
            all the others were.
        fma.stage.StageInterrupted: SIGINT or SIGTERM (the workers are stopped first).
    """
    if not gammas:
        raise ValueError("gammas is empty; give at least one value")
    base = options if options is not None else SamsOptions(gamma=gammas[0])
    grid = [dataclasses.replace(base, bg_method="pow", gamma=g) for g in gammas]
    cam_dir, mask_dir, gt_dir = Path(cam_dir), Path(mask_dir), Path(gt_dir)
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"{gt_dir}: ground-truth folder not found")
    class_names, palette = _label_space(dataset, data_root)
    ds_key = DatasetLayout.of(dataset, data_root or ".").dataset
    _, ids = _check_inputs(cam_dir, mask_dir, ds_key, split, class_names, image_ids)
    C = len(class_names)
    args = (str(cam_dir), str(mask_dir), str(gt_dir), grid, C, 1 if workers > 0 else 0, palette)
    total = np.zeros((len(grid), C, C + 1), dtype=np.int64)
    # The stage worker pool: workers die with their parent, Ctrl-C stops the sweep at once.
    per_image = map_per_image(
        ids, _sweep_one, args, workers=workers if len(ids) > 1 else 0, desc="gamma sweep",
        progress=progress,
    )  # fmt: skip
    for cm in per_image.values():
        total += cm
    rows = []
    for g, cm in zip(gammas, total, strict=True):
        metrics = metrics_from_confusion(cm, class_names)
        rows.append({"gamma": float(g), "mIoU": metrics["mIoU"], "metrics": metrics})
    return rows
