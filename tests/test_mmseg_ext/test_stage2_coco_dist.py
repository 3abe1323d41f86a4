"""Stage II beyond the VOC fixture: a COCO-layout fixture trains and evaluates with 81 classes
(the tiny VOC configs with the dataset switch alone); two CPU processes (torchrun, gloo) train,
and evaluate a checkpoint to the same metrics as one process; mmseg's own tools/train.py runs
the configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from stage2_helpers import TINY, data_options, run_tool, state_dict
from tool_modules import torchrun_tool

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

from fma.datasets.meta import COCO14
from fma.io import write_label_map

pytestmark = pytest.mark.slow


def _coco_tree(root: Path) -> Path:
    """COCO 2014 layout of tools/prepare_coco.py with 4 train and 2 val images, labels up to 80."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        ids = [f"COCO_{split}2014_{i:012d}" for i in range(n)]
        for k, image_id in enumerate(ids):
            label = np.zeros((48, 64), dtype=np.uint8)
            label[8:30, 10:40] = 80 if k % 2 == 0 else 1 + k
            label[32:, 40:] = 17
            img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            img[label == 80] = (200, 30, 30)
            (root / f"{split}2014").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / f"{split}2014" / f"{image_id}.jpg")
            write_label_map(root / "SegmentationClass" / split / f"{image_id}.png", label)
        (root / "ImageSets").mkdir(exist_ok=True)
        (root / "ImageSets" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def _coco_switch(coco: Path, loaders: tuple[str, ...] = ("train", "val")) -> list[str]:
    """The dataset switch of a VOC config to the COCO fixture: type, split, data_root (and the
    seeds); no class count, class weights or evaluator dataset (the tools derive them)."""
    opts = []
    for loader in loaders:
        split = "train" if loader == "train" else "val"
        opts += [f"{loader}_dataloader.dataset.type=COCOObjectDataset",
                 f"{loader}_dataloader.dataset.split={split}",
                 f"{loader}_dataloader.dataset.data_root={coco}"]  # fmt: skip
    if "train" in loaders:
        opts.append(f"train_dataloader.dataset.seed_dir={coco / 'SegmentationClass' / 'train'}")
    return opts


def test_coco_fixture_trains_and_evaluates_81_classes(tmp_path, capsys):
    """The tiny VOC DeepLabV3+ on COCO with the dataset switch alone (it used to need
    model.decode_head.num_classes=81, model.auxiliary_head.num_classes=81 and
    val_evaluator.dataset=coco14 as well)."""
    coco = _coco_tree(tmp_path / "coco2014")
    work = tmp_path / "work"
    seeds = coco / "SegmentationClass" / "train"
    argv = [TINY["deeplabv3plus"], "--work-dir", work, "--cfg-options", *_coco_switch(coco)]
    assert run_tool("train", argv) == 0
    assert "sized for the 81 classes of COCOObjectDataset" in capsys.readouterr().out
    metrics = json.loads((work / "metrics_val_iter_2.json").read_text())
    assert metrics["num_classes"] == 81 and metrics["dataset"] == "coco14"
    assert metrics["class_names"] == list(COCO14.class_names)
    assert metrics["n_images"] == 2 and metrics["trained_on"][0]["dir"] == str(seeds)
    assert metrics["recall"]["toothbrush"] is not None  # class 80 is in the val ground truth
    weights = state_dict(work / "iter_2.pth")["state_dict"]
    assert weights["decode_head.conv_seg.weight"].shape[0] == 81
    assert weights["auxiliary_head.conv_seg.weight"].shape[0] == 81


def test_coco_mask2former_trains_and_tests_with_the_dataset_switch_alone(tmp_path):
    """The tiny VOC Mask2Former on COCO: its class-weight list (22 entries for VOC) is rebuilt
    for 81 classes (it crashed in mmdet's loss: "index 81 is out of bounds ... size 22"), and
    tools/test.py sizes the network from the test loader's dataset."""
    coco = _coco_tree(tmp_path / "coco2014")
    work, out = tmp_path / "work", tmp_path / "test"
    argv = [TINY["mask2former"], "--work-dir", work, "--cfg-options", *_coco_switch(coco)]
    assert run_tool("train", argv) == 0
    weights = state_dict(work / "iter_2.pth")["state_dict"]
    assert weights["decode_head.cls_embed.weight"].shape[0] == 82  # 81 classes + no object
    ckpt = work / "iter_2.pth"
    argv = [TINY["mask2former"], ckpt, "--work-dir", out, "--cfg-options",
            *_coco_switch(coco, ("test",))]  # fmt: skip
    assert run_tool("test", argv) == 0
    metrics = json.loads((out / "metrics_val.json").read_text())
    assert metrics["dataset"] == "coco14" and metrics["num_classes"] == 81
    assert metrics["n_images"] == 2


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)
def test_two_processes_train_and_evaluate_like_one(stage2_voc, tmp_path):
    voc, seeds = stage2_voc["voc"], stage2_voc["seeds_no_255"]
    config = TINY["deeplabv3plus"]
    gloo = "env_cfg.dist_cfg.backend=gloo"
    work = tmp_path / "dist_train"
    # total 4: 2 images on each rank (1 would leave BatchNorm in ASPP's image pooling 1 value)
    log = torchrun_tool(
        "train", [config, "--work-dir", work, "--cfg-options", *data_options(voc, seeds), gloo,
                  "total_batch=4"],
        tmp_path,
    )  # fmt: skip
    assert "Distributed training: True" in log and (work / "iter_2.pth").is_file()
    assert "batch: total 4 = 2 proc x 2" in log
    ckpt = work / "iter_2.pth"
    test_opts = ["--cfg-options", f"test_dataloader.dataset.data_root={voc}", gloo]
    single, double = tmp_path / "single", tmp_path / "double"
    assert run_tool("test", [config, ckpt, "--work-dir", single, *test_opts]) == 0
    log = torchrun_tool("test", [config, ckpt, "--work-dir", double, *test_opts], tmp_path)
    assert "Iter(test) [3/3]" in log and "Iter(test) [6/6]" not in log  # 3 images per rank
    a = json.loads((single / "metrics_val.json").read_text())
    b = json.loads((double / "metrics_val.json").read_text())
    assert a["n_images"] == b["n_images"] == 6
    for key in ("mIoU", "aAcc", "IoU", "precision", "recall", "pixels", "trained_on"):
        assert a[key] == b[key], key


def test_mmseg_own_train_tool_runs_the_plugin_configs(stage2_voc, tmp_path):
    """mmseg's tools/train.py (shipped in its package) trains a Mask2Former config: the plug-in,
    imported first through custom_imports, sets up the compatibility layer before mmcv.ops."""
    import os
    import subprocess
    import sys

    import mmseg
    from stage2_helpers import REPO

    tool = Path(mmseg.__file__).parent / ".mim" / "tools" / "train.py"
    if not tool.is_file():
        pytest.skip(f"mmseg's tools/train.py is not installed at {tool}")
    work = tmp_path / "work"
    opts = data_options(stage2_voc["voc"], stage2_voc["seeds_no_255"])
    cmd = [sys.executable, str(tool), str(TINY["mask2former"]), "--work-dir", str(work),
           "--cfg-options", *opts]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert (work / "iter_2.pth").is_file() and (work / "metrics_val_iter_2.json").is_file()
