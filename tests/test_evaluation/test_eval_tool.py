"""tools/eval_labels.py run as a subprocess: output, --json, --show-dir and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fma.apis.evaluate import evaluate_dataset_split
from fma.io import write_label_map
from fma.io.label_maps import bitwise_palette

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "eval_labels.py"


def _run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def _tiny_voc(root: Path, ids: list[str], src: Path | None = None) -> Path:
    """A VOC-like tree under ``root``: symlinks to ``src`` (real data) or synthetic files."""
    voc = root / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "mini.txt").write_text("\n".join(ids) + "\n")
    for k, image_id in enumerate(ids):
        if src is not None:
            (voc / "JPEGImages" / f"{image_id}.jpg").symlink_to(
                src / "JPEGImages" / f"{image_id}.jpg"
            )
            (voc / "SegmentationClass" / f"{image_id}.png").symlink_to(
                src / "SegmentationClass" / f"{image_id}.png"
            )
        else:
            gt = np.zeros((8, 10), dtype=np.uint8)
            gt[2:6, 2 + k : 8] = 15
            gt[1, :] = 255
            write_label_map(voc / "SegmentationClass" / f"{image_id}.png", gt, bitwise_palette())
            Image.fromarray(np.full((8, 10, 3), 100, dtype=np.uint8)).save(
                voc / "JPEGImages" / f"{image_id}.jpg"
            )
    return voc


@pytest.mark.realdata
def test_tool_on_real_subset(voc_mini, tmp_path):
    src = voc_mini / "VOC2012"
    ids = (src / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[:5]
    voc = _tiny_voc(tmp_path, ids, src)
    pred = tmp_path / "pred"
    pred.mkdir()
    for image_id in ids:
        (pred / f"{image_id}.png").symlink_to(
            voc_mini / "pseudo_labels" / "transcam" / f"{image_id}.png"
        )
    out_json = tmp_path / "out" / "eval.json"
    show = tmp_path / "show"
    proc = _run(pred, "--dataset", "voc12", "--split", "mini", "--data-root", voc,
                "--json", out_json, "--show-dir", show, "--num-show", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    ref = evaluate_dataset_split(pred, "voc12", "mini", voc, progress=False, per_image=True)
    assert proc.stdout.strip().splitlines()[-1] == f"mIoU: {ref.miou:.2f}"
    assert "aeroplane" in proc.stdout and "class" in proc.stdout

    data = json.loads(out_json.read_text())
    for key in ("mIoU", "IoU", "precision", "recall", "aAcc", "n_images", "n_missing"):
        assert key in data, key
    assert data["mIoU"] == pytest.approx(ref.miou)
    assert data["IoU"]["background"] == pytest.approx(ref.metrics["IoU"]["background"])
    assert (data["n_images"], data["n_missing"]) == (5, 0)
    assert (data["dataset"], data["split"], data["pred_dir"]) == ("voc12", "mini", str(pred))
    assert data["fma_version"]

    ranked = sorted(ref.per_image, key=lambda s: (s.miou, s.image_id))
    want = [f"worst_0{r + 1}_{ranked[r].image_id}.png" for r in range(2)]
    want += [f"best_0{r + 1}_{ranked[-1 - r].image_id}.png" for r in range(2)]
    assert sorted(p.name for p in show.iterdir()) == sorted(want)
    panel = Image.open(show / want[0])
    w, h = Image.open(voc / "JPEGImages" / f"{ranked[0].image_id}.jpg").size
    assert panel.mode == "RGB" and panel.size[0] == 3 * w + 2 * 4 and panel.size[1] > h


def test_tool_synthetic_success_and_allow_missing(tmp_path):
    ids = ["x1", "x2", "x3"]
    voc = _tiny_voc(tmp_path, ids)
    pred = tmp_path / "pred"
    for image_id in ids[:2]:
        lab = np.zeros((8, 10), dtype=np.uint8)
        lab[2:6, 2:8] = 15
        write_label_map(pred / f"{image_id}.png", lab, bitwise_palette())
    proc = _run(pred, "--dataset", "voc12", "--split", "mini", "--data-root", voc)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "1 of 3 predictions missing: x3.png" in proc.stderr

    out_json = tmp_path / "e.json"
    proc = _run(pred, "--dataset", "voc12", "--split", "mini", "--data-root", voc,
                "--allow-missing", "--json", out_json)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # 70 valid px per image (row 1 is ignore). x1: person GT 24 px (rows 2..5, cols 2..7), all
    # predicted right. x2: person GT 20 px (cols 3..7); the prediction adds 4 bg px as person.
    # person: I=44, U=48 -> 91.67; background: |gt|=140-44=96, |pred|=I=92 -> 95.83
    data = json.loads(out_json.read_text())
    assert data["IoU"]["person"] == pytest.approx(100 * 44 / 48)
    assert data["IoU"]["background"] == pytest.approx(100 * 92 / 96)
    assert data["IoU"]["cat"] is None
    assert data["mIoU"] == pytest.approx((100 * 44 / 48 + 100 * 92 / 96) / 2)
    assert (data["n_images"], data["n_missing"], data["missing"]) == (2, 1, ["x3"])
    assert proc.stdout.strip().splitlines()[-1] == f"mIoU: {data['mIoU']:.2f}"


def test_show_dir_warns_when_images_are_missing(tmp_path):
    ids = ["x1", "x2"]
    voc = _tiny_voc(tmp_path, ids)
    pred = voc / "SegmentationClass"
    args = (pred, "--dataset", "voc12", "--split", "mini", "--data-root", voc)
    proc = _run(*args, "--show-dir", tmp_path / "s0")
    assert proc.returncode == 0 and "warning" not in proc.stderr
    (voc / "JPEGImages" / "x2.jpg").unlink()
    proc = _run(*args, "--show-dir", tmp_path / "s1")
    assert proc.returncode == 0
    assert f"warning: 1 of 2 images are not in {voc / 'JPEGImages'} (e.g. x2)" in proc.stderr
    (voc / "JPEGImages" / "x1.jpg").unlink()
    (voc / "JPEGImages").rmdir()
    proc = _run(*args, "--show-dir", tmp_path / "s2")
    assert proc.returncode == 0
    assert f"warning: image folder {voc / 'JPEGImages'} not found" in proc.stderr


def test_coco_show_dir_finds_2017_images(tmp_path):
    """A COCO 2017 tree (val2017/ next to prepare_coco.py's output) gets real image panels."""
    root = tmp_path / "coco"
    seg = root / "SegmentationClass" / "val"
    (root / "ImageSets").mkdir(parents=True)
    (root / "ImageSets" / "val.txt").write_text("000000000139\n")
    gt = np.zeros((8, 10), np.uint8)
    gt[2:6, 2:8] = 1
    write_label_map(seg / "000000000139.png", gt, bitwise_palette())
    (root / "val2017").mkdir()
    Image.fromarray(np.full((8, 10, 3), 200, np.uint8)).save(root / "val2017" / "000000000139.jpg")
    show = tmp_path / "show"
    proc = _run(seg, "--dataset", "coco14", "--split", "val", "--data-root", root,
                "--show-dir", show, "--num-show", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    panel = np.asarray(Image.open(next(show.glob("*.png"))).convert("RGB"))
    assert (np.abs(panel.astype(int) - 200) <= 2).all(axis=2).any()  # the image, not grey


def test_tool_corrupt_file_exit_1(tmp_path):
    voc = _tiny_voc(tmp_path, ["x1"])
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "x1.png").write_bytes(b"\x89PNG garbage")
    proc = _run(pred, "--dataset", "voc12", "--split", "mini", "--data-root", voc)
    assert proc.returncode == 1
    assert f"{pred / 'x1.png'}: not a readable image" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--dataset", "nope", "--split", "mini"],
        ["--dataset", "voc12"],
        ["--dataset", "voc12", "--split", "mini", "--num-show", "-1"],
        ["--dataset", "voc12", "--split", "mini", "--gt-dir", "/nonexistent/gt"],
    ],
)
def test_tool_bad_arguments_exit_2(tmp_path, args):
    voc = _tiny_voc(tmp_path, ["x1"])
    proc = _run(tmp_path, *args, "--data-root", voc)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


def test_tool_missing_pred_dir_exit_2(tmp_path):
    voc = _tiny_voc(tmp_path, ["x1"])
    proc = _run(tmp_path / "nope", "--dataset", "voc12", "--split", "mini", "--data-root", voc)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr
