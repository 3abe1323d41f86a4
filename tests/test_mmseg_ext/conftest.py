"""Fixtures of the stage II tests: a synthetic VOC tree with two seed folders and a runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

IDS = [f"synth_{i:03d}" for i in range(6)]


@pytest.fixture(scope="session")
def stage2_voc(tmp_path_factory) -> dict[str, Path]:
    """A 6-image synthetic VOC2012 tree (every split lists the same ids) and two seed folders.

    ``seeds_with_255``: the ground truth (objects with a 255 border); ``seeds_no_255``: coarse
    pseudo labels without ignore. Both carry a ``label_maps`` manifest.
    """
    from fma.datasets.meta import VOC12
    from fma.datasets.synthetic import make_synthetic_voc
    from fma.io import Manifest, producer_info, read_label_map, write_manifest

    root = tmp_path_factory.mktemp("stage2")
    voc = make_synthetic_voc(root, num_images=len(IDS), seed=5, split="train")
    seg = voc / "ImageSets" / "Segmentation"
    for split in ("train_aug", "val", "test"):
        shutil.copy(seg / "train.txt", seg / f"{split}.txt")
    with_255 = root / "seeds_with_255"
    shutil.copytree(voc / "SegmentationClass", with_255)
    no_255 = root / "pseudo_labels"
    assert any((read_label_map(p) == 255).any() for p in with_255.glob("*.png"))
    assert not any((read_label_map(p) == 255).any() for p in no_255.glob("*.png"))
    for folder in (with_255, no_255):
        write_manifest(
            folder,
            Manifest(
                format="label_maps", version=1, count=len(IDS), dataset="voc12",
                split="train_aug", class_names=list(VOC12.class_names),
                producer=producer_info("tests"),
            ),
        )  # fmt: skip
    return {"voc": voc, "seeds_with_255": with_255, "seeds_no_255": no_255}
