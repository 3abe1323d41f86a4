"""tools/prepare_coco.py: files of other COCO tasks are refused naming what they are; a
year-suffixed split (``train2017``) is written as its split, with the year recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fma.datasets.coco_annotations import coco_file_kind, coco_split_year
from fma.datasets.labels import load_image_labels
from fma.datasets.prepare_coco import prepare_coco
from fma.io import read_manifest

REPO = Path(__file__).resolve().parents[2]
IMAGES = [
    {"id": 1, "file_name": "000000000001.jpg", "height": 8, "width": 10},
    {"id": 2, "file_name": "000000000002.jpg", "height": 6, "width": 6},
]
SQUARE = [[0, 0, 6, 0, 6, 6, 0, 6]]  # rows 0..5, columns 0..5
INFO = {"description": "COCO 2017 Dataset", "year": 2017}


def _instances() -> dict:
    return {
        "info": INFO, "images": IMAGES,
        "annotations": [{"id": 5, "image_id": 1, "category_id": 18, "iscrowd": 0,
                         "segmentation": SQUARE, "area": 36.0, "bbox": [0, 0, 6, 6]}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                       {"id": 18, "name": "dog", "supercategory": "animal"}],
    }  # fmt: skip


# Abridged copies of the other files of a COCO 2017 download (same keys, fewer entries).
OTHER_FILES = {
    "person_keypoints_train2017.json": ("person keypoints", {
        "info": INFO, "images": IMAGES,
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "segmentation": SQUARE, "num_keypoints": 1, "keypoints": [1, 1, 2] * 17}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person",
                        "keypoints": ["nose"] * 17, "skeleton": [[16, 14]]}],
    }),
    "captions_train2017.json": ("captions", {
        "info": INFO, "images": IMAGES,
        "annotations": [{"id": 48, "image_id": 1, "caption": "A dog on a couch."}],
    }),
    "captions_with_categories_train2017.json": ("captions", {
        "info": INFO, "images": IMAGES, "categories": [],
        "annotations": [{"id": 48, "image_id": 1, "caption": "A dog on a couch."}],
    }),
    "panoptic_train2017.json": ("panoptic", {
        "info": INFO, "images": IMAGES,
        "annotations": [{"image_id": 1, "file_name": "000000000001.png", "segments_info": [
            {"id": 3226956, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 6, 6], "area": 36}]}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "isthing": 1},
                       {"id": 92, "name": "banner", "supercategory": "textile", "isthing": 0}],
    }),
    "stuff_train2017.json": ("stuff", {
        "info": INFO, "images": IMAGES,
        "annotations": [{"id": 10000000, "image_id": 1, "category_id": 92, "iscrowd": 0,
                         "segmentation": SQUARE}],
        "categories": [{"id": 92, "name": "banner", "supercategory": "textile"},
                       {"id": 183, "name": "other", "supercategory": "other"}],
    }),
    "image_info_test2017.json": ("image info", {
        "info": INFO, "images": IMAGES, "categories": _instances()["categories"],
    }),
}  # fmt: skip


def _root(tmp_path: Path, folder: str = "train2017") -> Path:
    root = tmp_path / "coco"
    (root / folder).mkdir(parents=True)
    for im in IMAGES:
        Image.new("RGB", (im["width"], im["height"])).save(root / folder / im["file_name"])
    return root


def _tool(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "tools" / "prepare_coco.py"), *args, "--workers", "1",
           "--no-progress"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


def test_file_kinds():
    assert coco_file_kind(_instances()) is None
    for kind, data in OTHER_FILES.values():
        assert kind in coco_file_kind(data)
    empty = {"images": IMAGES, "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    assert coco_file_kind(empty) is None  # an instance file without annotations (a warning)


@pytest.mark.parametrize("name", sorted(OTHER_FILES))
def test_files_of_other_tasks_are_refused_in_one_line(tmp_path, name):
    root = _root(tmp_path)
    kind, data = OTHER_FILES[name]
    ann = root / name
    ann.write_text(json.dumps(data))
    proc = _tool("--ann", str(ann), "--split", "train", "--root", str(root))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {ann}: a COCO {kind}"), lines
    assert "not instance annotations" in lines[0] and "instances_<split>2017.json" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (root / "SegmentationClass").exists() and not (root / "cls_labels").exists()


def test_split_year_is_read_as_the_split():
    assert coco_split_year("train2017") == ("train", 2017)
    assert coco_split_year("val2014") == ("val", 2014)
    assert coco_split_year("val") == ("val", None)
    assert coco_split_year("val_5000") == ("val_5000", None)
    with pytest.raises(ValueError, match="COCO 2015"):
        coco_split_year("train2015")


def test_year_suffixed_split_writes_the_split_configs_read(tmp_path):
    root = _root(tmp_path)
    ann = root / "instances_train2017.json"
    ann.write_text(json.dumps(_instances()))
    proc = _tool("--ann", str(ann), "--split", "train2017", "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "train20172014" not in proc.stdout + proc.stderr
    assert "warning" not in proc.stdout  # the images were found and checked in train2017/
    assert "--split train2017 was written as split 'train' of COCO 2017" in proc.stdout
    assert not (root / "SegmentationClass" / "train2017").exists()
    with Image.open(root / "SegmentationClass" / "train" / "000000000001.png") as img:
        label = np.asarray(img)
    assert (label[:6, :6] == 17).all() and label.sum() == 17 * 36  # dog (COCO id 18)
    assert (root / "ImageSets" / "train.txt").read_text().split() == [
        "000000000001", "000000000002"
    ]  # fmt: skip
    m = read_manifest(root / "SegmentationClass" / "train")
    assert (m.dataset, m.split, m.params["year"]) == ("coco14", "train", 2017)
    raw = json.loads((root / "cls_labels" / "train.json").read_text())
    assert raw["dataset"] == "coco14" and raw["split"] == "train"
    assert raw["producer"]["params"]["year"] == 2017
    labels = load_image_labels(root / "cls_labels" / "train.json", dataset="coco14")
    assert labels == {"000000000001": [17], "000000000002": []}


def test_year_from_the_file_and_a_contradicting_split(tmp_path):
    root = _root(tmp_path)
    ann = root / "instances_train2017.json"
    ann.write_text(json.dumps(_instances()))
    res = prepare_coco(ann, "train", root, out_root=tmp_path / "a")
    assert res.year == 2017 and res.split == "train" and not res.warnings
    assert read_manifest(tmp_path / "a" / "SegmentationClass" / "train").params["year"] == 2017
    # no year in the name: info.year says it
    unnamed = root / "my_annotations.json"
    unnamed.write_text(json.dumps(_instances()))
    assert prepare_coco(unnamed, "train", root, out_root=tmp_path / "b").year == 2017
    old = root / "instances_train2014.json"
    old.write_text(json.dumps({**_instances(), "info": {"year": 2014}}))
    proc = _tool("--ann", str(old), "--split", "train2017", "--root", str(root),
                 "--out", str(tmp_path / "c"))  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--split train2017 names COCO 2017" in lines[0]
    assert "holds COCO 2014 annotations; pass --split train" in lines[0]


def test_both_years_under_one_root_warn(tmp_path):
    root = _root(tmp_path)
    (root / "train2014").mkdir()
    ann = root / "instances_train2017.json"
    ann.write_text(json.dumps(_instances()))
    res = prepare_coco(ann, "train", root)
    assert len(res.warnings) == 1 and "holds both train2014/ and train2017/" in res.warnings[0]
