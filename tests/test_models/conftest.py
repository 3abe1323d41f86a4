"""Fixtures of the stage I model tests: the tiny CLIP architecture and a synthetic VOC tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_JSON = Path(__file__).resolve().parents[1] / "data" / "tiny_clip.json"


@pytest.fixture(scope="session")
def tiny_clip_cfg() -> dict:
    """``clip=`` arguments of PromptCLIP for the tiny random-weight architecture."""
    return {"model_name": "tiny_clip", "pretrained": None, "model_config": str(TINY_JSON)}


@pytest.fixture(scope="session")
def synth_voc(tmp_path_factory) -> Path:
    """A 6-image synthetic VOC2012 tree (96x128 images) with image labels and seed PNGs."""
    from fma.datasets.labels import (
        image_labels_from_label_map,
        multi_hot_to_labels,
        save_image_labels,
    )
    from fma.datasets.meta import VOC12
    from fma.datasets.synthetic import make_synthetic_voc
    from fma.io import read_label_map

    root = tmp_path_factory.mktemp("voc")
    voc = make_synthetic_voc(root, num_images=6, seed=3, split="train")
    labels = {}
    for png in sorted((voc / "SegmentationClass").glob("*.png")):
        gt = read_label_map(png)
        labels[png.stem] = multi_hot_to_labels(image_labels_from_label_map(gt, 21))
    assert all(labels.values()) and np.mean([len(v) for v in labels.values()]) >= 1
    save_image_labels(
        voc / "cls_labels" / "train.json", labels, VOC12.class_names, "voc12", "train"
    )
    return voc
