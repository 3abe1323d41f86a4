"""tools/prepare_coco.py and fma.datasets.prepare_coco.prepare_coco on a tiny synthetic COCO file.

Polygon rule used for the expectations (pycocotools rasterisation): an axis-aligned polygon with
integer corners x0..x1, y0..y1 covers pixel rows y0..y1-1 and columns x0..x1-1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tool_modules import load_tool

from fma.datasets.checks import DatasetCheckError
from fma.datasets.coco_annotations import (
    coco_annotation_to_rle,
    dropped_polygons,
    render_coco_label_map,
)
from fma.datasets.labels import load_image_labels
from fma.datasets.layout import DatasetLayout
from fma.datasets.meta import COCO14
from fma.datasets.prepare_coco import prepare_coco
from fma.io import read_manifest

IMG1, IMG2, IMG3 = (
    "COCO_val2014_000000000001",
    "COCO_val2014_000000000002",
    "COCO_val2014_000000000003",
)


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[list[int]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _ann(aid: int, image_id: int, cat: int, seg, crowd: int = 0) -> dict:
    return {
        "id": aid,
        "image_id": image_id,
        "category_id": cat,
        "iscrowd": crowd,
        "segmentation": seg,
    }


def _coco_json() -> dict:
    from pycocotools import mask as mask_utils

    stop = np.zeros((6, 6), dtype=np.uint8, order="F")
    stop[0:3, 0:3] = 1
    stop_rle = mask_utils.encode(stop)
    stop_rle["counts"] = stop_rle["counts"].decode("ascii")
    names = {1: "person", 2: "bicycle", 3: "car", 13: "stop sign", 18: "dog", 90: "toothbrush"}
    return {
        "images": [
            {"id": 1, "file_name": f"{IMG1}.jpg", "height": 8, "width": 10},
            {"id": 2, "file_name": f"{IMG2}.jpg", "height": 5, "width": 6},
            {"id": 3, "file_name": f"{IMG3}.jpg", "height": 6, "width": 6},
        ],
        "annotations": [
            # image 1, listed small-first so that "last annotation wins" would differ
            _ann(11, 1, 18, _rect(4, 2, 9, 5)),
            _ann(10, 1, 1, _rect(0, 0, 6, 6)),
            _ann(12, 1, 90, _rect(8, 6, 10, 8)),
            # crowd car: uncompressed column-major RLE of rows 4..7, columns 0..2
            _ann(13, 1, 3, {"counts": [4, 4, 4, 4, 4, 4, 56], "size": [8, 10]}, crowd=1),
            # image 3: equal areas (9 pixels) -> higher annotation id on top
            _ann(31, 3, 2, _rect(1, 1, 4, 4)),
            _ann(30, 3, 13, stop_rle),
            # degenerate polygon (2 points): skipped
            _ann(32, 3, 1, [[0, 0, 5, 5]]),
        ],
        "categories": [{"id": k, "name": v} for k, v in names.items()],
    }  # fmt: skip


def _expected(crowd: str) -> dict[str, np.ndarray]:
    e1 = np.zeros((8, 10), np.uint8)
    if crowd == "ignore":
        e1[4:8, 0:3] = 255  # crowd first, as ignore
    e1[0:6, 0:6] = 1  # person, area 36
    e1[2:5, 4:9] = 17  # dog (COCO id 18), area 15, on top of the person
    if crowd == "class":
        e1[4:8, 0:3] = 3  # crowd car, area 12, painted after the larger person
    e1[6:8, 8:10] = 80  # toothbrush (COCO id 90), area 4
    e3 = np.zeros((6, 6), np.uint8)
    e3[0:3, 0:3] = 12  # stop sign (COCO id 13), id 30
    e3[1:4, 1:4] = 2  # bicycle, id 31, same area, later id wins
    return {IMG1: e1, IMG2: np.zeros((5, 6), np.uint8), IMG3: e3}


def _setup(tmp_path: Path, images: bool = True) -> tuple[Path, Path]:
    root = tmp_path / "coco"
    root.mkdir()
    ann = root / "instances_val2014.json"
    ann.write_text(json.dumps(_coco_json()))
    if images:
        (root / "val2014").mkdir()
        for stem in (IMG1, IMG2, IMG3):
            (root / "val2014" / f"{stem}.jpg").write_bytes(b"")
    return root, ann


def _png(root: Path, split: str, stem: str) -> np.ndarray:
    with Image.open(root / "SegmentationClass" / split / f"{stem}.png") as img:
        assert img.mode == "P"
        pal = np.asarray(img.getpalette()[: 3 * 81], np.uint8).reshape(-1, 3)
        assert np.array_equal(pal, COCO14.palette[:81])
        return np.asarray(img)


def test_render_known_answers():
    data = _coco_json()
    anns1 = [a for a in data["annotations"] if a["image_id"] == 1]
    anns3 = [a for a in data["annotations"] if a["image_id"] == 3]
    for crowd in ("class", "ignore"):
        exp = _expected(crowd)
        assert np.array_equal(render_coco_label_map(anns1, 8, 10, crowd), exp[IMG1]), crowd
        assert np.array_equal(render_coco_label_map(anns3, 6, 6, crowd), exp[IMG3]), crowd
    assert np.array_equal(render_coco_label_map([], 5, 6), np.zeros((5, 6), np.uint8))
    with pytest.raises(ValueError, match="crowd"):
        render_coco_label_map([], 5, 6, crowd="skip")
    with pytest.raises(ValueError, match="category id 12 is not a COCO class"):
        render_coco_label_map(
            [{"id": 1, "category_id": 12, "segmentation": _rect(0, 0, 1, 1)}], 2, 2
        )


def test_annotation_to_rle_forms():
    from pycocotools import mask as mask_utils

    assert coco_annotation_to_rle([[0, 0, 1, 1]], 4, 4) is None
    rle = coco_annotation_to_rle({"counts": [2, 3, 4, 27], "size": [6, 6]}, 6, 6)
    m = mask_utils.decode(rle)
    assert m.sum() == 3 + 27 and m[:2, 0].tolist() == [0, 0] and m[2:5, 0].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="differs from the image size"):
        coco_annotation_to_rle({"counts": [36], "size": [6, 6]}, 5, 6)
    with pytest.raises(ValueError, match="unknown COCO segmentation"):
        coco_annotation_to_rle({"foo": 1}, 5, 6)


def test_prepare_coco_outputs_class_mode(tmp_path):
    root, ann = _setup(tmp_path)
    rc = load_tool("prepare_coco").main(
        [
            "--ann",
            str(ann),
            "--split",
            "val",
            "--root",
            str(root),
            "--workers",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0
    for stem, exp in _expected("class").items():
        assert np.array_equal(_png(root, "val", stem), exp), stem
    assert (root / "ImageSets" / "val.txt").read_text() == f"{IMG1}\n{IMG2}\n{IMG3}\n"
    labels = load_image_labels(root / "cls_labels" / "val.json", dataset="coco14", num_classes=81)
    assert labels == {IMG1: [1, 3, 17, 80], IMG2: [], IMG3: [2, 12]}
    m = read_manifest(root / "SegmentationClass" / "val", format="label_maps", dataset="coco14")
    assert m.count == 3 and m.split == "val" and m.class_names == list(COCO14.class_names)
    assert m.params["crowd"] == "class" and m.params["complete"] is True
    assert m.params["images_without_annotations"] == 1 and m.params["annotations"] == 7


def test_prepare_coco_crowd_ignore_and_out_dir(tmp_path):
    root, ann = _setup(tmp_path, images=False)
    out = tmp_path / "converted"
    res = prepare_coco(ann, "val", root, out, crowd="ignore")
    assert any("image folder not found" in w for w in res.warnings)
    for stem, exp in _expected("ignore").items():
        assert np.array_equal(_png(out, "val", stem), exp), stem
    assert res.labels == {IMG1: [1, 17, 80], IMG2: [], IMG3: [2, 12]}  # crowd-only car gone
    assert res.class_counts[0] == 3 and res.class_counts[1] == 1 and res.class_counts[3] == 0
    assert not (root / "SegmentationClass").exists()


def test_prepare_coco_resumes_and_refuses_other_crowd(tmp_path):
    root, ann = _setup(tmp_path)
    first = prepare_coco(ann, "val", root)
    assert (first.written, first.reused) == (3, 0)
    again = prepare_coco(ann, "val", root)
    assert (again.written, again.reused) == (0, 3)
    assert again.labels == first.labels
    (root / "SegmentationClass" / "val" / f"{IMG3}.png").unlink()
    (root / "SegmentationClass" / "val" / f"{IMG2}.png").write_bytes(b"broken")
    third = prepare_coco(ann, "val", root)
    assert (third.written, third.reused) == (2, 1)
    assert np.array_equal(_png(root, "val", IMG2), np.zeros((5, 6), np.uint8))
    with pytest.raises(ValueError, match="earlier run used --crowd class"):
        prepare_coco(ann, "val", root, crowd="ignore")


def test_prepare_coco_lists_every_problem(tmp_path, capsys):
    root, ann = _setup(tmp_path)
    data = _coco_json()
    data["annotations"].append({"id": 40, "image_id": 2, "category_id": 12, "segmentation": []})
    data["annotations"].append({"id": 41, "image_id": 2, "category_id": 91, "segmentation": []})
    data["annotations"].append({"id": 42, "image_id": 9, "category_id": 1, "segmentation": []})
    data["categories"].append({"id": 12, "name": "street sign"})
    data["categories"][0]["name"] = "human"
    ann.write_text(json.dumps(data))
    (root / "val2014" / f"{IMG2}.jpg").unlink()
    with pytest.raises(DatasetCheckError) as info:
        prepare_coco(ann, "val", root)
    probs = info.value.problems
    assert len(probs) == 6
    text = "\n".join(probs)
    assert "category id 12 ('street sign') is not a COCO-80 category" in text
    assert "category id 1 is named 'human', expected 'person'" in text
    assert "1 annotation(s) with category id 12" in text
    assert "1 annotation(s) with category id 91" in text
    assert "annotation 42 refers to unknown image 9" in text
    assert f"{root / 'val2014' / (IMG2 + '.jpg')}: missing image" in text
    assert not (root / "SegmentationClass").exists() and not (root / "cls_labels").exists()
    rc = load_tool("prepare_coco").main(["--ann", str(ann), "--split", "val", "--root", str(root)])
    assert rc == 1
    assert "6 problem(s)" in capsys.readouterr().err


def test_dropped_polygons_are_reported_with_ids(tmp_path, capsys):
    root, ann = _setup(tmp_path)
    data = _coco_json()
    # annotation 33 keeps one of its three polygons; 34 loses its only (odd-length) polygon
    square = _rect(0, 0, 2, 2)[0]
    data["annotations"].append(_ann(33, 2, 1, [square, [0, 0, 1, 1], [0, 0, 1, 1, 2]]))
    data["annotations"].append(_ann(34, 2, 1, [[0, 0, 3, 0, 3, 3, 0]]))
    ann.write_text(json.dumps(data))
    assert dropped_polygons(data["annotations"]) == {
        "fewer than 3 points": [32, 33, 33],
        "an odd number of coordinates": [34],
        "no polygon left": [32, 34],
    }
    res = prepare_coco(ann, "val", root)
    assert res.warnings == [
        f"{ann}: dropped 3 polygon(s) with fewer than 3 points (annotation ids 32, 33, 33)",
        f"{ann}: dropped 1 polygon(s) with an odd number of coordinates (annotation ids 34)",
        f"{ann}: 2 annotation(s) have no usable polygon and paint nothing (annotation ids 32, 34)",
    ]
    exp = np.zeros((5, 6), np.uint8)
    exp[0:2, 0:2] = 1  # 33's valid square; 34 paints nothing
    assert np.array_equal(_png(root, "val", IMG2), exp)
    out = tmp_path / "o"
    argv = ["--ann", str(ann), "--split", "val", "--root", str(root), "--out", str(out)]
    rc = load_tool("prepare_coco").main([*argv, "--workers", "1", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "warning: " + res.warnings[0] in printed


def test_file_without_annotations_warns(tmp_path):
    root, ann = _setup(tmp_path)
    data = _coco_json()
    data["annotations"] = []
    ann.write_text(json.dumps(data))
    res = prepare_coco(ann, "val", root)
    assert res.images_without_annotations == 3
    assert len(res.warnings) == 1 and "holds no annotations" in res.warnings[0]


def test_coco2017_image_folder_is_found(tmp_path):
    root, ann = _setup(tmp_path, images=False)
    (root / "val2017").mkdir()
    for stem in (IMG1, IMG2):  # IMG3 missing: the 2017 folder is the one checked
        (root / "val2017" / f"{stem}.jpg").write_bytes(b"")
    with pytest.raises(DatasetCheckError, match="1 problem"):
        prepare_coco(ann, "val", root)
    (root / "val2017" / f"{IMG3}.jpg").write_bytes(b"")
    assert not any("image folder" in w for w in prepare_coco(ann, "val", root).warnings)
    assert DatasetLayout.of("coco14", root).images_dir("val") == root / "val2017"
    (root / "val2014").mkdir()  # both: 2014 wins
    assert DatasetLayout.of("coco14", root).images_dir("val") == root / "val2014"
