"""Image-level labels: derivation from label maps, fma's JSON format, custom CSV/JSON readers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fma.datasets.custom_labels import (
    parse_class_tokens,
    read_image_labels,
    read_image_labels_csv,
    read_image_labels_json,
    split_label_field,
)
from fma.datasets.labels import (
    ImageLabelsError,
    image_labels_from_label_map,
    labels_to_multi_hot,
    load_image_labels,
    multi_hot_to_labels,
    save_image_labels,
)

NAMES = ("background", "cat", "dog", "dining table", "7")


def test_image_labels_from_label_map_known_answer():
    lab = np.array([[0, 0, 3], [255, 3, 1]], dtype=np.uint8)
    out = image_labels_from_label_map(lab, 5)
    assert out.dtype == bool
    assert out.tolist() == [True, True, False, True, False]


def test_image_labels_ignore_only_and_no_background():
    assert image_labels_from_label_map(np.full((2, 2), 255, np.uint8), 3).tolist() == [False] * 3
    assert image_labels_from_label_map(np.array([[2, 2]]), 3).tolist() == [False, False, True]


def test_image_labels_custom_ignore_index_and_int_dtype():
    lab = np.array([[0, -1], [4, -1]], dtype=np.int32)
    assert image_labels_from_label_map(lab, 5, ignore_index=-1).tolist() == [
        True, False, False, False, True,
    ]  # fmt: skip


def test_image_labels_out_of_range_raises():
    with pytest.raises(ValueError, match=r"\[21\]"):
        image_labels_from_label_map(np.array([[0, 21]], dtype=np.uint8), 21)


def test_image_labels_matches_unique_reference():
    rng = np.random.default_rng(0)
    for _ in range(20):
        lab = rng.integers(0, 6, size=(7, 9)).astype(np.uint8)
        lab[rng.random((7, 9)) < 0.3] = 255
        ref = np.zeros(6, bool)
        u = np.unique(lab)
        ref[u[u != 255]] = True
        assert np.array_equal(image_labels_from_label_map(lab, 6), ref)


def test_multi_hot_roundtrip():
    labels = {"a": [1, 3], "b": [], "c": [4]}
    mh = labels_to_multi_hot(labels, ["c", "a", "b"], 5)
    assert mh.dtype == bool and mh.shape == (3, 5)
    assert mh.astype(int).tolist() == [[0, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0]]
    assert multi_hot_to_labels(mh[1]) == [1, 3]
    assert multi_hot_to_labels(np.array([True, False, True])) == [2]  # background dropped
    with pytest.raises(KeyError, match="zzz"):
        labels_to_multi_hot(labels, ["zzz"], 5)
    with pytest.raises(ValueError, match="outside"):
        labels_to_multi_hot({"a": [5]}, ["a"], 5)


def test_save_load_roundtrip(tmp_path):
    path = tmp_path / "sub" / "train.json"
    save_image_labels(path, {"b": [3, 1, 1], "a": []}, NAMES, "custom", "train")
    obj = json.loads(path.read_text())
    assert obj["format"] == "image_labels" and obj["version"] == 1
    assert obj["dataset"] == "custom" and obj["split"] == "train"
    assert obj["class_names"] == list(NAMES)
    assert list(obj["labels"]) == ["a", "b"]  # ids sorted
    assert obj["labels"]["b"] == [1, 3]  # sorted, de-duplicated
    assert load_image_labels(path, dataset="custom", num_classes=5) == {"a": [], "b": [1, 3]}
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_save_rejects_background_and_out_of_range(tmp_path):
    with pytest.raises(ValueError, match=r"outside 1\.\.4"):
        save_image_labels(tmp_path / "x.json", {"a": [0]}, NAMES, "custom", "all")
    with pytest.raises(ValueError, match=r"outside 1\.\.4"):
        save_image_labels(tmp_path / "x.json", {"a": [5]}, NAMES, "custom", "all")
    assert not (tmp_path / "x.json").exists()


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_load_errors_name_the_file(tmp_path):
    good = {"format": "image_labels", "version": 1, "dataset": "voc12", "split": "val",
            "class_names": list(NAMES), "labels": {"a": [2]}}  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        load_image_labels(tmp_path / "nope.json")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    with pytest.raises(ImageLabelsError, match=r"bad\.json: not valid JSON"):
        load_image_labels(bad_json)
    p = _write(tmp_path / "fmt.json", {**good, "format": "cams"})
    with pytest.raises(ImageLabelsError, match=r"fmt.json: not an fma image-label file"):
        load_image_labels(p)
    p = _write(tmp_path / "ver.json", {**good, "version": 2})
    with pytest.raises(ImageLabelsError, match=r"ver.json: image-label format version 2"):
        load_image_labels(p)
    p = _write(tmp_path / "ds.json", good)
    with pytest.raises(ImageLabelsError, match=r"ds.json: labels are for dataset 'voc12'"):
        load_image_labels(p, dataset="coco14")
    with pytest.raises(ImageLabelsError, match=r"ds.json: file has 5 classes, expected 21"):
        load_image_labels(p, num_classes=21)
    p = _write(tmp_path / "rng.json", {**good, "labels": {"a": [2], "b": [5], "c": [0]}})
    with pytest.raises(ImageLabelsError, match=r"(?s)rng.json.*b: class indices \[5\].*c: class"):
        load_image_labels(p)
    p = _write(tmp_path / "typ.json", {**good, "labels": {"a": ["cat"]}})
    with pytest.raises(ImageLabelsError, match="expected a list of integers"):
        load_image_labels(p)


def test_split_label_field_rules():
    assert split_label_field("dog;dining table") == ["dog", "dining table"]
    assert split_label_field(" dog ; cat ;") == ["dog", "cat"]
    assert split_label_field("dog  cat\t1") == ["dog", "cat", "1"]
    assert split_label_field("") == []
    # a whole field equal to a class name is that name, even with a space in it
    assert split_label_field(" dining table ", NAMES) == ["dining table"]
    assert split_label_field("dining table", ()) == ["dining", "table"]
    assert split_label_field("dog dining table", NAMES) == ["dog", "dining", "table"]


def test_parse_class_tokens_names_indices_and_background():
    assert parse_class_tokens(["dog", "1", 3, "background", "0"], NAMES) == ([1, 2, 3], [])
    # "7" is a class name (index 4), so the name wins over the index reading
    assert parse_class_tokens(["7"], NAMES) == ([4], [])
    assert parse_class_tokens(["bird", "9", "Dog"], NAMES) == ([], ["bird", "9", "Dog"])


def test_read_csv_known_answer(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text(
        'image_id,labels\nimg1,cat;dog\nimg2.jpg,2 1\nimg3,"dining table;cat"\n\nimg4,\nimg5,7\n'
    )
    assert read_image_labels_csv(p, NAMES) == {
        "img1": [1, 2], "img2": [1, 2], "img3": [1, 3], "img4": [], "img5": [4],
    }  # fmt: skip
    assert read_image_labels(p, NAMES) == read_image_labels_csv(p, NAMES)


def test_read_csv_lists_every_unknown_class_and_duplicate(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("image_id,labels\na,bird;cat\nb,horse\nc,bird\na,dog\n")
    with pytest.raises(ImageLabelsError) as info:
        read_image_labels_csv(p, NAMES)
    msg = str(info.value)
    assert "labels.csv: 3 problem(s)" in msg
    assert "unknown class 'bird' (images: a, c)" in msg
    assert "unknown class 'horse' (images: b)" in msg
    assert "image 'a' listed more than once" in msg


def test_read_csv_bad_header_and_rows(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("id,classes\na,cat\n")
    with pytest.raises(ImageLabelsError, match="header 'image_id,labels'"):
        read_image_labels_csv(p, NAMES)
    p.write_text("image_id,labels\na,cat,dog\n")
    with pytest.raises(ImageLabelsError, match="line 2"):
        read_image_labels_csv(p, NAMES)


def test_read_json_plain_and_fma_format(tmp_path):
    p = _write(tmp_path / "labels.json", {"a": ["cat", 2], "b.png": [], "c": "dining table;dog"})
    assert read_image_labels_json(p, NAMES) == {"a": [1, 2], "b": [], "c": [2, 3]}
    q = tmp_path / "fma.json"
    save_image_labels(q, {"x": [4]}, NAMES, "custom", "all")
    assert read_image_labels(q, NAMES) == {"x": [4]}
    with pytest.raises(ImageLabelsError, match="differ from the dataset"):
        read_image_labels(q, ("background", "a", "b", "c", "d"))
    p = _write(tmp_path / "unk.json", {"a": ["cow"]})
    with pytest.raises(ImageLabelsError, match="unknown class 'cow'"):
        read_image_labels(p, NAMES)
    p = _write(tmp_path / "list.json", [["a", "cat"]])
    with pytest.raises(ImageLabelsError, match="expected a JSON object"):
        read_image_labels(p, NAMES)
    with pytest.raises(ImageLabelsError, match=r"use \.csv or \.json"):
        read_image_labels(_write(tmp_path / "l.txt", {}), NAMES)
