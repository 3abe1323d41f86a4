"""Custom datasets: ROOT/images, ROOT/classes.txt, ROOT/labels.csv|json (docs/datasets.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fma.datasets.checks import DatasetCheckError, read_class_names
from fma.datasets.custom import load_custom_dataset


def _make(root: Path, images: list[str], classes: str, labels_csv: str | None = None) -> Path:
    (root / "images").mkdir(parents=True)
    for name in images:
        if name.endswith(".txt"):
            (root / "images" / name).write_text("not an image")
            continue
        Image.new("RGB", (4, 3), (10, 20, 30)).save(root / "images" / name)
    (root / "classes.txt").write_text(classes)
    if labels_csv is not None:
        (root / "labels.csv").write_text(labels_csv)
    return root


CLASSES = "# my classes\ncat\ndog\n\ntraffic light\n"


def test_worked_example_from_docs(tmp_path):
    root = _make(
        tmp_path / "pets",
        ["0001.jpg", "0002.png", "0003.jpg", "notes.txt"],
        CLASSES,
        "image_id,labels\n0001,cat;dog\n0002,traffic light\n0003,\n",
    )
    ds = load_custom_dataset(root)
    assert ds.class_names == ("background", "cat", "dog", "traffic light")
    assert ds.num_classes == 4
    assert ds.image_ids == ["0001", "0002", "0003"]
    assert [p.name for p in ds.image_paths] == ["0001.jpg", "0002.png", "0003.jpg"]
    assert ds.labels == {"0001": [1, 2], "0002": [3], "0003": []}
    assert ds.gt_dir is None and ds.split == "all"
    assert ds.multi_hot().astype(int).tolist() == [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    meta = ds.to_meta()
    assert meta.name == "custom" and meta.fg_names == ("cat", "dog", "traffic light")
    assert len(meta.clip_bg_names) == 25 and meta.palette.shape == (256, 3)


def test_json_labels_indices_split_and_gt(tmp_path):
    root = _make(tmp_path / "d", ["a.jpg", "b.jpg", "c.jpg"], CLASSES)
    (root / "labels.json").write_text(json.dumps({"a": [1, "dog"], "b": [3], "c": []}))
    (root / "splits").mkdir()
    (root / "splits" / "val.txt").write_text("c\nb\n")
    (root / "ground_truth").mkdir()
    ds = load_custom_dataset(root, split="val")
    assert ds.image_ids == ["b", "c"] and ds.labels == {"b": [3], "c": []}
    assert ds.gt_dir == root / "ground_truth"
    assert load_custom_dataset(root).labels == {"a": [1, 2], "b": [3], "c": []}
    with pytest.raises(FileNotFoundError, match="train.txt"):
        load_custom_dataset(root, split="train")


def test_every_problem_listed_by_name(tmp_path):
    root = _make(
        tmp_path / "d",
        ["a.jpg", "b.jpg", "c.jpg", "c.png"],
        CLASSES,
        "image_id,labels\na,cat;horse\nb,zebra horse\nghost,dog\n",
    )
    with pytest.raises(DatasetCheckError) as info:
        load_custom_dataset(root)
    probs = info.value.problems
    labels_csv, images = root / "labels.csv", root / "images"
    assert probs == [
        f"{labels_csv}: unknown class 'horse' (images: a, b)",
        f"{labels_csv}: unknown class 'zebra' (images: b)",
        f"{images / 'c.png'}: same id as c.jpg; rename one",
        f"{images / 'c.jpg'}: no image-level labels in labels.csv",
        f"{labels_csv}: labels for 'ghost' but no image in {images}",
    ]
    assert "5 problem(s)" in str(info.value)


def test_missing_pieces(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_custom_dataset(tmp_path / "none")
    root = _make(tmp_path / "d", ["a.jpg"], CLASSES)
    with pytest.raises(FileNotFoundError, match="no labels.csv or labels.json"):
        load_custom_dataset(root)
    (root / "labels.csv").write_text("image_id,labels\na,cat\n")
    (root / "labels.json").write_text("{}")
    with pytest.raises(DatasetCheckError, match="keep one"):
        load_custom_dataset(root)
    (root / "labels.json").unlink()
    (root / "splits").mkdir()
    (root / "splits" / "all.txt").write_text("a\nz\n")
    with pytest.raises(DatasetCheckError, match="z has no image"):
        load_custom_dataset(root)


def test_read_class_names_rules(tmp_path):
    p = tmp_path / "classes.txt"
    p.write_text("\ufeffcat\n  dog  \n")
    assert read_class_names(p) == ("background", "cat", "dog")
    p.write_text("background\ncat\ncat\na;b\n")
    with pytest.raises(DatasetCheckError) as info:
        read_class_names(p)
    assert info.value.problems == [
        "line 1: 'background' is class 0 implicitly; remove the line",
        "line 3: class 'cat' listed twice",
        "line 4: class name 'a;b' contains ';' (the label separator)",
    ]
    p.write_text("# only a comment\n")
    with pytest.raises(DatasetCheckError, match="no class names"):
        read_class_names(p)
    with pytest.raises(FileNotFoundError, match="class list not found"):
        read_class_names(tmp_path / "missing.txt")


def test_extension_in_label_file_and_images_untouched(tmp_path):
    """An image extension in the label file is stripped; loading leaves the images as they are."""
    root = _make(tmp_path / "d", ["a.jpg"], "cat\n", "image_id,labels\na.jpg,1\n")
    before = (root / "images" / "a.jpg").read_bytes()
    ds = load_custom_dataset(root)
    assert ds.labels == {"a": [1]}
    assert (root / "images" / "a.jpg").read_bytes() == before
    assert np.asarray(Image.open(ds.image_paths[0])).shape == (3, 4, 3)
