"""The whole method on a custom folder equals the VOC pipeline on the same real images.

A custom-layout folder is built from 6 train + 3 val images of the real mini VOC set
(``classes.txt`` = the 20 VOC names in VOC order, ``prompt_names.txt`` = VOC's CLIP-ES names,
``labels.csv`` from the ground truth, ``ground_truth/`` = the VOC label maps), and a VOC tree
from the same images. ``tools/reproduce.py`` runs ``fma_custom`` on the first and ``fma_voc12``
on the second with the same tiny models and settings (superpixel masks, a random tiny CLIP,
2 prompt iterations per task, the tiny DeepLabV3+): the seeds and the stage II metrics must be
identical. A folder with problems stops before the first step, with every problem listed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from custom_folder import voc_to_custom
from tool_modules import load_tool

from fma.datasets.meta import VOC12

REPO = Path(__file__).resolve().parents[2]
TINY_JSON = REPO / "tests" / "data" / "tiny_clip.json"
pytestmark = pytest.mark.slow

# The tiny stage I settings shared by both pipelines (a test-only config on top of the real ones).
TINY_STAGE1 = """
model = dict(clip=dict(model_name="tiny_clip", pretrained=None, quick_gelu=True,
                       model_config="{tiny_json}"), n_ctx=4, att_layers=2)
total_batch = 2
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=[{pipeline}]))
test_dataloader = dict(num_workers=0)
param_scheduler = [dict(type="ConstantLR", factor=1.0, begin=0, end=2, by_epoch=False)]
train_cfg = dict(max_iters=2)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
"""
CROP = ('dict(type="RandomRescale", low=64, high=96, short_min=64), '
        'dict(type="RandomCrop", size=64), dict(type="RandomFlip", prob=0.5), '
        'dict(type="PackClsInputs")')  # fmt: skip
PIPELINES = {
    "cls": f'dict(type="LoadImage"), {CROP}',
    "seg": f'dict(type="LoadImage"), dict(type="LoadSeed"), {CROP}',
}
STAGE1 = {
    ("voc12", "cls"): "fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py",
    ("voc12", "seg"): "fma-seg_prompt-clip-vit-b16_1xb16-17k_voc12.py",
    ("custom", "cls"): "fma-cls_prompt-clip-vit-b16_1xb16-1800it_custom.py",
    ("custom", "seg"): "fma-seg_prompt-clip-vit-b16_1xb16-17k_custom.py",
}
STAGE2 = {
    "voc12": "configs/stage2/deeplabv3plus_r18-tiny_1xb2-cpu_voc12-seed-64x64.py",
    "custom": "configs/stage2/deeplabv3plus_r18-tiny_1xb2-cpu_custom-seed-64x64.py",
}


def _tiny_config(folder: Path, dataset: str, task: str) -> Path:
    path = folder / f"tiny_{dataset}_{task}.py"
    base = REPO / "configs" / "stage1" / STAGE1[dataset, task]
    body = TINY_STAGE1.format(tiny_json=TINY_JSON, pipeline=PIPELINES[task])
    path.write_text(f'_base_ = ["{base}"]\n{body}')
    return path


def _options(folder: Path, dataset: str) -> list[str]:
    values = ["sam_config=configs/sam/superpixels_voc12.py",
              f"cls_config={_tiny_config(folder, dataset, 'cls')}", "cls_iters=2",
              f"seg_config={_tiny_config(folder, dataset, 'seg')}", "seg_iters=2",
              f"stage2={STAGE2[dataset]}"]  # fmt: skip
    return ["--clip", "None", "--sam", "None", *[a for v in values for a in ("--set", v)]]


def _voc_tree(src: Path, ids: list[str], val: list[str], out: Path) -> Path:
    from fma.datasets.labels import (
        image_labels_from_label_map,
        multi_hot_to_labels,
        save_image_labels,
    )
    from fma.io import read_label_map

    for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug"):
        (out / sub).mkdir(parents=True)
    for i in ids + val:
        os.symlink(src / "JPEGImages" / f"{i}.jpg", out / "JPEGImages" / f"{i}.jpg")
        for sub in ("SegmentationClass", "SegmentationClassAug"):
            os.symlink(src / "SegmentationClass" / f"{i}.png", out / sub / f"{i}.png")
    seg = out / "ImageSets" / "Segmentation"
    seg.mkdir(parents=True)
    for name, listed in (("train_aug", ids), ("train", ids), ("val", val)):
        (seg / f"{name}.txt").write_text("\n".join(listed) + "\n")
    labels = {
        i: multi_hot_to_labels(image_labels_from_label_map(
            read_label_map(src / "SegmentationClass" / f"{i}.png", palette=VOC12.palette), 21))
        for i in ids
    }  # fmt: skip
    save_image_labels(out / "cls_labels" / "train_aug.json", labels, VOC12.class_names,
                      "voc12", "train_aug")  # fmt: skip
    return out


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_custom_pipeline_equals_voc_pipeline(voc_mini, tmp_path, capsys):
    src = voc_mini / "VOC2012"
    seg = src / "ImageSets" / "Segmentation"
    ids = (seg / "train.txt").read_text().split()[:6]
    val = (seg / "val.txt").read_text().split()[:3]
    voc = _voc_tree(src, ids, val, tmp_path / "voc")
    custom = voc_to_custom(src, ids, tmp_path / "custom", val_ids=val,
                           prompt_names=VOC12.clip_fg_names)  # fmt: skip
    (custom / "splits" / "train.txt").write_text("\n".join(ids) + "\n")
    reproduce = load_tool("reproduce")
    w_voc, w_custom = tmp_path / "run_voc", tmp_path / "run_custom"
    argv = ["configs/pipelines/fma_voc12.py", "--work-dir", str(w_voc), "--data-root", str(voc),
            *_options(tmp_path, "voc12")]  # fmt: skip
    assert reproduce.main(argv) == 0
    argv = ["configs/pipelines/fma_custom.py", "--work-dir", str(w_custom), "--data-root",
            str(custom), *_options(tmp_path, "custom")]  # fmt: skip
    assert reproduce.main(argv) == 0
    out = capsys.readouterr().out
    assert "training on 6 images (split 'train')" in out
    for stage in ("coarse_seeds", "fine_seeds"):
        a = _pngs(w_voc / stage / "seeds" / "train_aug")
        b = _pngs(w_custom / stage / "seeds" / "train")
        assert len(a) == len(ids) and a == b, stage
    for stage in ("coarse_seeds", "fine_seeds"):
        a = json.loads((w_voc / "eval" / f"{stage}_train_aug.json").read_text())
        b = json.loads((w_custom / "eval" / f"{stage}.json").read_text())
        assert a["mIoU"] == b["mIoU"] and a["IoU"] == b["IoU"]
    a = json.loads((w_voc / "stage2_eval" / "metrics_val.json").read_text())
    b = json.loads((w_custom / "stage2_eval" / "metrics_val.json").read_text())
    assert a["n_images"] == b["n_images"] == len(val)
    assert a["mIoU"] == b["mIoU"] and a["IoU"] == b["IoU"] and b["dataset"] == "custom"
    # A rerun skips every step.
    assert reproduce.main(argv) == 0
    assert capsys.readouterr().out.count(": skip -- ") == 11


def test_folder_with_problems_stops_before_the_first_step(tmp_path, capsys):
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "images" / "a.jpg")
    (root / "classes.txt").write_text("cat\ndog\ncat\n")
    (root / "labels.csv").write_text("image_id,labels\nb,cat\n")
    work = tmp_path / "work"
    argv = ["configs/pipelines/fma_custom.py", "--work-dir", str(work), "--data-root", str(root),
            "--dry-run"]  # fmt: skip
    assert load_tool("reproduce").main(argv) == 1
    err = capsys.readouterr().err
    # The folder's three problems, the weights files of the default vars and the total batch
    # of one process, in one message.
    assert err.count("error:") == 1 and "problem(s); nothing was run" in err
    assert "pretrains/ViT-B-16.pt: not found (needed by step cls_prompts" in err
    assert "class 'cat' listed twice" in err
    assert "labels for 'b' but no image" in err and "a has no image-level labels" in err
    assert not work.exists()
