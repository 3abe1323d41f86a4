"""tools/refine_labels.py and fma.apis.refine on small synthetic folders."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tool_modules import load_tool

from fma.apis.refine import refine_label_dir
from fma.datasets.meta import VOC12
from fma.io import read_label_map, read_manifest, write_label_map
from fma.io.label_maps import bitwise_palette
from fma.io.manifest import Manifest, ManifestError, write_manifest
from fma.io.masks.amg import write_amg_folder
from fma.io.masks.records import encode_rle, make_record, save_sam_masks
from fma.seeding.sepl import refine_pseudo_label
from fma.visualization.masks import mask_colors
from fma.visualization.panels import legend_layout, title_height

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "refine_labels.py"
H, W = 20, 20


def _rect(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Three images: flood (method-sepl case A), fallback (case C), overlap (case F)."""
    a = np.zeros((H, W), np.uint8)
    a[2:6, 3:7] = 3
    c = np.zeros((H, W), np.uint8)
    c[5:15, 5:15] = 1
    c[0, :] = 255
    f = np.zeros((H, W), np.uint8)
    f[0:10, 0:10] = 1
    f[10:20, 10:20] = 2
    return {
        "img_a": (a, np.ones((1, H, W), bool)),
        "img_c": (c, _rect(0, 20, 0, 10)[None]),
        "img_f": (f, np.stack([_rect(0, 12, 0, 12), _rect(8, 20, 8, 20)])),
    }


def _write_inputs(root: Path, layout: str = "amg_folder") -> tuple[Path, Path]:
    labels, masks = root / "labels", root / "masks"
    masks.mkdir(parents=True)
    for image_id, (label, m) in _cases().items():
        write_label_map(labels / f"{image_id}.png", label, bitwise_palette())
        if layout == "amg_folder":
            write_amg_folder(masks / image_id, m)
        else:
            recs = [make_record(r, area=int(x.sum()), bbox=[0, 0, 1, 1]) for r, x in zip(
                encode_rle(m), m, strict=True)]  # fmt: skip
            suffix = ".json" if layout == "fma_json" else ".json.gz"  # plain: older runs
            save_sam_masks(masks / f"{image_id}{suffix}", image_id, H, W, recs)
    return labels, masks


@pytest.mark.parametrize("layout", ["amg_folder", "fma", "fma_json"])
def test_tool_refines_folder(tmp_path, capsys, layout):
    labels, masks = _write_inputs(tmp_path, layout)
    out = tmp_path / "out"
    rc = load_tool("refine_labels").main(
        ["--labels", str(labels), "--masks", str(masks), "--out", str(out),
         "--dataset", "voc12", "--no-progress"]
    )  # fmt: skip
    assert rc == 0
    assert "3 written" in capsys.readouterr().out
    for image_id, (label, m) in _cases().items():
        with Image.open(out / f"{image_id}.png") as img:
            assert img.mode == "P"
            assert img.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
        got = read_label_map(out / f"{image_id}.png")
        assert np.array_equal(got, refine_pseudo_label(label, m, 21))
    assert (read_label_map(out / "img_a.png") == 3).sum() == 400  # case A flood
    assert (read_label_map(out / "img_c.png") == 1).sum() == 50  # case C fallback
    manifest = read_manifest(out, format="label_maps", version=1)
    assert manifest.count == 3 and manifest.dataset == "voc12"
    assert manifest.class_names == list(VOC12.class_names)
    assert manifest.params["method"] == "max_iou_imp2"
    assert manifest.params["labels_dir"] == str(labels.resolve())
    assert manifest.params["masks_dir"] == str(masks.resolve())
    assert manifest.params["mask_source"] == layout.replace("fma_json", "fma")
    assert manifest.params["complete"] is True


def test_tool_method_keep_ignore_and_resume(tmp_path, capsys):
    labels, masks = _write_inputs(tmp_path)
    out = tmp_path / "out"
    tool = load_tool("refine_labels")
    args = ["--labels", str(labels), "--masks", str(masks), "--out", str(out), "--num-classes",
            "21", "--method", "max_iou_imp", "--keep-ignore", "--no-progress"]  # fmt: skip
    assert tool.main(args) == 0
    c = read_label_map(out / "img_c.png")
    assert (c == 1).sum() == 50 and (c == 255).sum() == 20  # row 0 stays ignore
    assert (read_label_map(out / "img_a.png") == 3).sum() == 0  # no coverage rule in imp
    capsys.readouterr()
    assert tool.main(args) == 0
    assert "0 written, 3 already done" in capsys.readouterr().out
    changed = [a if a != "max_iou_imp" else "max_iou" for a in args]
    assert tool.main(changed) == 1
    assert "other settings" in capsys.readouterr().err


def test_size_mismatch_names_both_files(tmp_path, capsys):
    labels, masks = _write_inputs(tmp_path)
    write_label_map(labels / "img_x.png", np.zeros((10, 12), np.uint8))
    write_amg_folder(masks / "img_x", np.ones((1, 12, 10), bool))
    out = tmp_path / "out"
    rc = load_tool("refine_labels").main(
        ["--labels", str(labels), "--masks", str(masks), "--out", str(out),
         "--dataset", "voc12", "--no-progress"]
    )  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "img_x" in err and str(labels / "img_x.png") in err and str(masks / "img_x") in err
    assert "12x10" in err and "10x12" in err
    assert sorted(p.name for p in out.glob("*.png")) == ["img_a.png", "img_c.png", "img_f.png"]
    assert read_manifest(out).params["complete"] is False


def test_missing_masks_and_unknown_classes(tmp_path, capsys):
    labels, masks = _write_inputs(tmp_path)
    write_label_map(labels / "img_y.png", np.zeros((H, W), np.uint8))
    tool = load_tool("refine_labels")
    base = ["--labels", str(labels), "--masks", str(masks), "--no-progress"]
    assert tool.main([*base, "--out", str(tmp_path / "o1"), "--num-classes", "21"]) == 1
    err = capsys.readouterr().err
    assert "img_y" in err and "no SAM masks" in err
    assert tool.main([*base, "--out", str(tmp_path / "o2")]) == 1
    assert "--num-classes" in capsys.readouterr().err


def _mask_manifest(masks: Path, dataset="voc12", split="train", fmt="sam_masks") -> None:
    write_manifest(masks, Manifest(format=fmt, version=1, count=3, dataset=dataset, split=split))


def test_mask_manifest_is_checked_up_front(tmp_path, capsys):
    labels, masks = _write_inputs(tmp_path, "fma")
    names = list(VOC12.class_names)
    write_manifest(labels, Manifest("label_maps", 1, 3, "voc12", "train", class_names=names))
    tool = load_tool("refine_labels")
    out = tmp_path / "out"
    base = ["--labels", str(labels), "--masks", str(masks), "--out", str(out), "--no-progress"]
    for dataset, split, fmt, want in [
        ("voc12", "val", "sam_masks", "of split 'val' (manifest.json), the pseudo labels of split"),
        ("coco14", "train", "sam_masks", "its masks are of dataset 'coco14'"),
        ("voc12", "train", "cams", "holds 'cams' files, not SAM masks"),
    ]:
        _mask_manifest(masks, dataset, split, fmt)
        assert tool.main(base) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {masks}: ") and want in err
        assert not out.exists()  # refused before anything is written
    # --dataset on the command line is checked too (labels without a manifest)
    (labels / "manifest.json").unlink()
    _mask_manifest(masks, "coco14", "train")
    assert tool.main([*base, "--dataset", "voc12"]) == 1
    assert "its masks are of dataset 'coco14'" in capsys.readouterr().err
    _mask_manifest(masks, "voc12", "train")
    assert tool.main([*base, "--dataset", "voc12"]) == 0


def test_masks_of_other_images_give_one_error(tmp_path, capsys):
    labels, _ = _write_inputs(tmp_path / "a", "fma")
    _, other = _write_inputs(tmp_path / "b", "fma")
    for p in list(other.iterdir()):
        p.rename(other / p.name.replace("img_", "other_"))
    _mask_manifest(other, "voc12", "val")
    out = tmp_path / "out"
    argv = ["--labels", str(labels), "--masks", str(other), "--out", str(out),
            "--dataset", "voc12", "--no-progress"]  # fmt: skip
    assert load_tool("refine_labels").main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1  # one line, not one per image
    assert err[0] == (
        f"error: {other}: no SAM masks for any of the 3 pseudo labels (img_a, img_c, img_f); its "
        "manifest says dataset 'voc12', split 'val'. Pass the masks of these images "
        "(tools/gen_sam_masks.py), or --image-list the ids that have masks"
    )
    assert not out.exists()


def test_show_dir_panels(tmp_path, capsys):
    labels, masks = _write_inputs(tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(images / "img_a.jpg")
    show = tmp_path / "show"
    rc = load_tool("refine_labels").main(["--labels", str(labels), "--masks", str(masks), "--out",
                       str(tmp_path / "out"), "--dataset", "voc12", "--show-dir", str(show),
                       "--images", str(images), "--num-show", "1", "--no-progress"])  # fmt: skip
    assert rc == 0
    names = sorted(p.name for p in show.glob("*.png"))
    # img_a changes most (384 of 400 pixels), one random other image is the sample
    assert names[0] == "changed_01_img_a.png" and len(names) == 2
    assert names[1] in ("sample_01_img_c.png", "sample_01_img_f.png")
    with Image.open(show / names[0]) as img:
        panel = np.asarray(img)
    assert panel.shape[1] == 4 * W + 3 * 4  # image | pseudo | masks | refined, gap 4
    assert "wrote 2 panels" in capsys.readouterr().out
    # legend of the labels in the pseudo label (0, 3) and the refined label (3 floods it)
    texts = ["0 background", "3 bird"]
    origins, swatch, height = legend_layout(texts, panel.shape[1])
    assert panel.shape[0] == title_height() + H + height
    for (x, y), v in zip(origins, (0, 3), strict=True):
        np.testing.assert_array_equal(
            panel[title_height() + H + y + swatch // 2, x + swatch // 2], VOC12.palette[v]
        )


def test_mask_colors_smallest_on_top():
    masks = np.zeros((2, 3, 3), bool)
    masks[0] = True
    masks[1, 1, 1] = True
    rgb = mask_colors(masks, seed=0)
    colors = np.random.default_rng(0).integers(40, 256, size=(2, 3), dtype=np.uint8)
    assert np.array_equal(rgb[1, 1], colors[1]) and np.array_equal(rgb[0, 0], colors[0])
    assert np.all(mask_colors(np.zeros((0, 3, 3), bool)) == 0)


def test_library_workers_and_majority(tmp_path):
    labels, masks = _write_inputs(tmp_path)
    res = refine_label_dir(labels, masks, tmp_path / "out", method="majority", num_classes=21,
                           workers=2, progress=False)  # fmt: skip
    assert res.ok and sorted(res.report.done) == ["img_a", "img_c", "img_f"]
    a = read_label_map(tmp_path / "out" / "img_a.png")
    assert (a == 3).sum() == 0  # the whole-image mask exceeds the 2x area cap
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["params"]["method"] == "majority"


def test_cli_subprocess_help_and_exit_code(tmp_path):
    run = subprocess.run([sys.executable, str(TOOL), "--help"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)  # fmt: skip
    assert run.returncode == 0 and "--keep-ignore" in run.stdout
    run = subprocess.run([sys.executable, str(TOOL), "--labels", str(tmp_path / "nope"),
                          "--masks", str(tmp_path), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert run.returncode == 2 and "does not exist" in run.stderr
    first = ast.parse(TOOL.read_text()).body[1]  # the statement after the docstring
    assert isinstance(first, ast.Import) and first.names[0].name == "fma._no_blas_threads"


def test_manifest_error_type(tmp_path):
    labels, masks = _write_inputs(tmp_path)
    refine_label_dir(labels, masks, tmp_path / "out", num_classes=21, progress=False)
    with pytest.raises(ManifestError, match="method='max_iou_imp2', this run has method='max_iou'"):
        refine_label_dir(labels, masks, tmp_path / "out", num_classes=21, method="max_iou",
                         progress=False)  # fmt: skip


def test_classes_dataset_and_split_from_labels_manifest(tmp_path):
    labels, masks = _write_inputs(tmp_path)
    write_manifest(
        labels,
        Manifest(format="label_maps", version=1, count=3, dataset="voc12", split="train",
                 class_names=list(VOC12.class_names)),
    )  # fmt: skip
    res = refine_label_dir(labels, masks, tmp_path / "out", progress=False)
    assert res.ok
    manifest = read_manifest(tmp_path / "out")
    assert manifest.dataset == "voc12" and manifest.split == "train"
    assert manifest.params["num_classes"] == 21
