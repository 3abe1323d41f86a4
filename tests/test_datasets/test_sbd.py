"""fma.datasets.sbd.convert_sbd and tools/prepare_voc.py --sbd on tiny VOC + SBD trees.

The ``.mat`` files have SBD's structure: a 1x1 struct ``GTcls`` with ``Boundaries`` (a 20x1
cell of sparse matrices), ``Segmentation`` (uint8 HxW) and ``CategoriesPresent``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tool_modules import load_tool

from fma.datasets.labels import load_image_labels
from fma.datasets.sbd import (
    SbdError,
    convert_sbd,
    find_sbd_dataset,
    read_sbd_segmentation,
    train_aug_ids,
)
from fma.io import read_manifest, write_label_map

pytest.importorskip("scipy.io")

from sbd_tree import (
    SBD_MATS,
    SBD_TRAIN,
    SBD_VAL,
    TRAIN_AUG,
    VOC_TRAIN,
    H,
    W,
    lab,
    make_tree,
    save_sbd_mat,
)


def png(path: Path) -> tuple[str, np.ndarray, np.ndarray]:
    with Image.open(path) as img:
        return img.mode, np.asarray(img), np.asarray(img.getpalette(), np.uint8).reshape(-1, 3)


def test_train_aug_set_algebra():
    assert train_aug_ids(["a", "b"], ["v1", "v2"], SBD_TRAIN, SBD_VAL) == TRAIN_AUG
    assert train_aug_ids([], ["x"], ["x", "y"], ["y"]) == ["y"]


def test_read_sbd_segmentation_roundtrip(tmp_path):
    seg = lab(15, 3, 20)
    save_sbd_mat(tmp_path / "x.mat", seg)
    out = read_sbd_segmentation(tmp_path / "x.mat")
    assert out.dtype == np.uint8 and out.shape == (H, W)
    np.testing.assert_array_equal(out, seg)


def test_find_sbd_dataset_accepts_dataset_or_parent(tmp_path):
    _, bench = make_tree(tmp_path)
    assert find_sbd_dataset(bench) == bench / "dataset"
    assert find_sbd_dataset(bench / "dataset") == bench / "dataset"
    with pytest.raises(SbdError, match="benchmark_RELEASE/dataset"):
        find_sbd_dataset(tmp_path)


def test_convert_writes_palette_pngs_list_and_manifest(tmp_path):
    voc, bench = make_tree(tmp_path)
    res = convert_sbd(voc, bench)
    assert res.ok, res.problems
    assert res.image_ids == TRAIN_AUG
    split_file = voc / "ImageSets/Segmentation/train_aug.txt"
    assert split_file.read_text() == "a\nb\ns1\ns2\ns3\n"
    # VOC's map wins for "a" (in VOC train and SBD); "b" is only in VOC; s* come from SBD.
    expected = {"a": VOC_TRAIN["a"], "b": VOC_TRAIN["b"], "s1": SBD_MATS["s1"],
                "s2": SBD_MATS["s2"], "s3": SBD_MATS["s3"]}  # fmt: skip
    aug = voc / "SegmentationClassAug"
    assert sorted(p.stem for p in aug.glob("*.png")) == TRAIN_AUG  # no PNG for VOC val "v1"
    for i, want in expected.items():
        mode, arr, pal = png(aug / f"{i}.png")
        assert mode == "P"
        np.testing.assert_array_equal(arr, want)
        # VOC colours: 1 aeroplane (128,0,0), 15 person (192,128,128), 20 tv (0,64,128).
        assert pal[1].tolist() == [128, 0, 0]
        assert pal[15].tolist() == [192, 128, 128]
        assert pal[20].tolist() == [0, 64, 128]
    assert res.sources == {"voc": 2, "sbd": 3}
    assert res.written == 5 and res.unchanged == 0
    assert res.list_counts == {"VOC train": 2, "VOC val": 2, "SBD train": 3, "SBD val": 3,
                               "train_aug": 5}  # fmt: skip
    assert any("train_aug has 5 ids, not the 10,582" in n for n in res.notes)
    man = read_manifest(aug, format="label_maps", dataset="voc12", split="train_aug")
    assert man.count == 5
    assert man.params["complete"] is True and man.params["priority"] == "voc"
    assert man.params["sbd_root"] == str((bench / "dataset").resolve())
    assert man.params["counts"]["train_aug"] == 5
    assert man.params["sources"] == {"voc": 2, "sbd": 3}


def test_rerun_skips_unchanged_and_rewrites_changed(tmp_path):
    voc, bench = make_tree(tmp_path)
    assert convert_sbd(voc, bench).written == 5
    aug = voc / "SegmentationClassAug"
    before = {p.name: p.stat().st_mtime_ns for p in aug.glob("*.png")}
    os.utime(aug / "s1.png", ns=(1, 1))
    res = convert_sbd(voc, bench, workers=1)
    assert res.ok and res.written == 0 and res.unchanged == 5
    assert (aug / "s1.png").stat().st_mtime_ns == 1  # not rewritten
    # A PNG with other pixels, or the same pixels without the VOC palette, is rewritten.
    write_label_map(aug / "s2.png", lab(2))
    Image.fromarray(SBD_MATS["s3"]).save(aug / "s3.png")  # greyscale, as mmseg writes it
    write_label_map(aug / "b.png", VOC_TRAIN["b"])  # same pixels, grey-ramp palette
    res = convert_sbd(voc, bench)
    assert res.written == 3 and res.unchanged == 2
    assert png(aug / "b.png")[2][5].tolist() == [128, 0, 128]  # VOC colour of bottle
    np.testing.assert_array_equal(png(aug / "s2.png")[1], SBD_MATS["s2"])
    assert png(aug / "s3.png")[0] == "P"
    assert {p.name: p.stat().st_mtime_ns for p in aug.glob("*.png")}["a.png"] == before["a.png"]
    assert not list(aug.glob(".*.tmp"))


def test_every_bad_file_listed(tmp_path):
    voc, bench = make_tree(tmp_path)
    ds = bench / "dataset"
    extra = ["nogt", "floaty", "big", "nomat", "nojpg", "flat", "broken", "small"]
    (ds / "train.txt").write_text("\n".join(SBD_TRAIN + extra) + "\n")
    for i in extra:
        Image.new("RGB", (W, H)).save(voc / "JPEGImages" / f"{i}.jpg")
    save_sbd_mat(ds / "cls/nogt.mat", lab(1), name="GTinst")
    save_sbd_mat(ds / "cls/floaty.mat", lab(1).astype(np.float64))
    save_sbd_mat(ds / "cls/big.mat", lab(30, 255))
    save_sbd_mat(ds / "cls/nojpg.mat", lab(2))
    save_sbd_mat(ds / "cls/flat.mat", np.zeros((H, W, 3), np.uint8))
    (ds / "cls/broken.mat").write_bytes(b"MATLAB 5.0 MAT-file garbage")
    save_sbd_mat(ds / "cls/small.mat", lab(1, h=4, w=4))
    (voc / "JPEGImages/nojpg.jpg").unlink()
    Image.new("RGB", (W, H)).save(ds / "img/nojpg.jpg")
    res = convert_sbd(voc, bench)
    assert not res.ok
    cls, jpg = ds / "cls", voc / "JPEGImages"
    want = [
        f"{cls / 'nogt.mat'}: no GTcls struct (variables: ['GTinst'])",
        f"{cls / 'floaty.mat'}: GTcls.Segmentation has dtype float64",
        f"{cls / 'big.mat'}: GTcls.Segmentation holds [30]",
        f"{cls / 'nomat.mat'}: missing SBD annotation (listed in SBD train), and no "
        f"{voc / 'SegmentationClass/nomat.png'} either",
        f"{jpg / 'nojpg.jpg'}: missing image (listed in SBD train); copy SBD's "
        f"{ds / 'img/nojpg.jpg'} to this path",
        f"{cls / 'flat.mat'}: GTcls.Segmentation has shape (12, 16, 3), expected (H, W)",
        f"{cls / 'broken.mat'}: not a readable MATLAB file",
        f"{cls / 'small.mat'}: label size 4x4 (WxH) differs from image size 16x12",
    ]
    assert len(res.problems) == len(want), res.problems
    for w in want:
        assert sum(p.startswith(w) for p in res.problems) == 1, (w, res.problems)
    # The good ids are converted; no list, and the manifest says incomplete.
    aug = voc / "SegmentationClassAug"
    assert sorted(p.stem for p in aug.glob("*.png")) == TRAIN_AUG
    assert not (voc / "ImageSets/Segmentation/train_aug.txt").exists()
    man = read_manifest(aug)
    assert man.params["complete"] is False and man.count == 5


def test_missing_lists_and_sbd_folder(tmp_path):
    voc, bench = make_tree(tmp_path)
    res = convert_sbd(voc, tmp_path / "nothing")
    assert len(res.problems) == 1 and "not an SBD folder" in res.problems[0]
    (bench / "dataset/val.txt").unlink()
    (voc / "ImageSets/Segmentation/train.txt").unlink()
    res = convert_sbd(voc, bench)
    assert res.problems == [
        f"{voc / 'ImageSets/Segmentation/train.txt'}: missing VOC train list",
        f"{bench / 'dataset/val.txt'}: missing SBD val list",
    ]
    assert not (voc / "SegmentationClassAug").exists()


def test_cli_sbd_writes_train_aug_labels(tmp_path, capsys):
    voc, bench = make_tree(tmp_path)
    rc = load_tool("prepare_voc").main([str(voc), "--sbd", str(bench), "--no-progress",
                                        "--workers", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "train_aug: 5" in out and "PNGs written: 5, unchanged (skipped): 0" in out
    labels = load_image_labels(voc / "cls_labels/train_aug.json", dataset="voc12", num_classes=21)
    assert labels == {"a": [12], "b": [5], "s1": [15], "s2": [1, 20], "s3": []}
    assert json.loads((voc / "cls_labels/train_aug.json").read_text())["split"] == "train_aug"
    assert load_image_labels(voc / "cls_labels/val.json") == {"v1": [9], "v2": [4]}
    rc = load_tool("prepare_voc").main([str(voc), "--sbd", str(bench / "dataset"),
                                        "--no-progress", "--workers", "1"])  # fmt: skip
    assert rc == 0
    assert "PNGs written: 0, unchanged (skipped): 5" in capsys.readouterr().out


def test_cli_sbd_problems_exit_1_and_skip_train_aug(tmp_path, capsys):
    voc, bench = make_tree(tmp_path)
    save_sbd_mat(bench / "dataset/cls/s1.mat", lab(40))
    (voc / "JPEGImages/s3.jpg").unlink()
    rc = load_tool("prepare_voc").main([str(voc), "--sbd", str(bench), "--no-progress",
                                        "--workers", "1"])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "2 problem(s); no labels written for: ['train_aug']" in err
    assert f"{bench / 'dataset/cls/s1.mat'}: GTcls.Segmentation holds [40]" in err
    assert f"{voc / 'JPEGImages/s3.jpg'}: missing image" in err
    assert not (voc / "cls_labels/train_aug.json").exists()
    assert load_image_labels(voc / "cls_labels/train.json") == {"a": [12], "b": [5]}


def test_missing_scipy_is_a_clear_error(tmp_path, monkeypatch):
    voc, bench = make_tree(tmp_path)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ImportError, match="pip install scipy"):
        convert_sbd(voc, bench)
    assert not (voc / "SegmentationClassAug").exists()
