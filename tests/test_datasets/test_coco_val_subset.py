"""The COCO validation subset ``ImageSets/val_5000.txt`` (docs/datasets.md, section 4.3): the
first 5,000 ids of the sorted val list, written by tools/prepare_coco.py for ``--split val``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fma.datasets.layout import read_split_file
from fma.datasets.prepare_coco import VAL_SUBSET_SIZE, prepare_coco, val_subset_ids


def _ids(n: int, seed: int) -> list[str]:
    """``n`` distinct COCO-style val ids in random order."""
    rng = np.random.default_rng(seed)
    numbers = rng.choice(600000, size=n, replace=False)
    return [f"COCO_val2014_{k:012d}" for k in numbers]


def test_subset_is_the_first_5000_sorted_ids():
    ids = _ids(5003, seed=0)
    subset = val_subset_ids(ids)
    assert VAL_SUBSET_SIZE == 5000 and len(subset) == 5000
    assert subset == sorted(ids)[:5000]
    assert set(subset) <= set(ids) and len(set(subset)) == 5000
    left_out = sorted(set(ids) - set(subset))
    assert len(left_out) == 3 and min(left_out) > max(subset)  # the 3 largest ids stay out


def test_subset_is_deterministic_whatever_the_input_order():
    ids = _ids(6000, seed=1)
    shuffled = list(np.random.default_rng(2).permutation(ids))
    assert val_subset_ids(ids) == val_subset_ids(shuffled) == val_subset_ids(ids)


def test_a_smaller_val_is_kept_whole():
    ids = _ids(12, seed=3)
    assert val_subset_ids(ids) == sorted(ids)
    assert val_subset_ids(ids, size=5) == sorted(ids)[:5]
    with pytest.raises(ValueError, match="size must be >= 1"):
        val_subset_ids(ids, size=0)


def _annotation_file(folder: Path, stems: list[str], split: str) -> Path:
    images = [{"id": i, "file_name": f"{s}.jpg", "height": 3, "width": 4}
              for i, s in enumerate(stems)]  # fmt: skip
    path = folder / f"instances_{split}2014.json"
    path.write_text(json.dumps({"images": images, "annotations": [],
                                "categories": [{"id": 1, "name": "person"}]}))  # fmt: skip
    return path


def test_prepare_coco_writes_the_list_for_val(tmp_path):
    stems = _ids(9, seed=4)
    result = prepare_coco(_annotation_file(tmp_path, stems, "val"), "val", tmp_path)
    subset_file = tmp_path / "ImageSets" / "val_5000.txt"
    assert result.paths["val_subset_file"] == subset_file
    val = read_split_file(tmp_path / "ImageSets" / "val.txt")
    listed = read_split_file(subset_file)
    assert listed == val == sorted(stems)  # fewer than 5,000 images: all of val, same order
    first = subset_file.read_bytes()
    prepare_coco(_annotation_file(tmp_path, stems, "val"), "val", tmp_path)  # a rerun
    assert subset_file.read_bytes() == first


def test_prepare_coco_writes_no_list_for_train(tmp_path):
    stems = [s.replace("val2014", "train2014") for s in _ids(4, seed=5)]
    result = prepare_coco(_annotation_file(tmp_path, stems, "train"), "train", tmp_path)
    assert "val_subset_file" not in result.paths
    assert not (tmp_path / "ImageSets" / "val_5000.txt").exists()
    assert (tmp_path / "ImageSets" / "train.txt").is_file()
