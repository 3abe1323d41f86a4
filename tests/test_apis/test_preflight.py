"""The preflight of tools/reproduce.py: every missing input listed at once, weights hashes, the
total batch against the process count, free disk, and the plan with estimates."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tool_modules import load_tool

from fma.apis.fingerprint import HashCache
from fma.apis.pipeline_checks import check_dataset
from fma.apis.pipeline_config import load_pipeline
from fma.apis.preflight import format_plan, preflight
from fma.datasets.labels import save_image_labels
from fma.datasets.meta import VOC12

REPO = Path(__file__).resolve().parents[2]
FMA_VOC12 = REPO / "configs" / "pipelines" / "fma_voc12.py"


def _voc_root(root: Path, train: list[str], val: list[str], aug: list[str]) -> Path:
    """A miniature VOC2012 folder with train_aug prepared (labels, SegmentationClassAug)."""
    seg = root / "ImageSets" / "Segmentation"
    seg.mkdir(parents=True)
    for folder in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "cls_labels"):
        (root / folder).mkdir()
    for split, ids in (("train", train), ("val", val), ("train_aug", aug)):
        (seg / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    for i in sorted(set(train + val + aug)):
        Image.new("RGB", (8, 8)).save(root / "JPEGImages" / f"{i}.jpg")
        Image.new("P", (8, 8)).save(root / "SegmentationClass" / f"{i}.png")
        Image.new("P", (8, 8)).save(root / "SegmentationClassAug" / f"{i}.png")
    save_image_labels(root / "cls_labels" / "train_aug.json", {i: [1] for i in aug},
                      VOC12.class_names, "voc12", "train_aug")  # fmt: skip
    return root


def _load(overrides: dict[str, str], work: Path):
    return load_pipeline(FMA_VOC12, root=REPO, work_dir=str(work), overrides=overrides,
                         run_checks=True)  # fmt: skip


def test_empty_folder_lists_every_missing_input_at_once(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [str(FMA_VOC12), "--data-root", str(empty), "--work-dir", str(tmp_path / "w"),
            "--clip", str(tmp_path / "w8" / "ViT-B-16.pt"),
            "--sam", str(tmp_path / "w8" / "sam_vit_h_4b8939.pth"), "--dry-run"]  # fmt: skip
    assert load_tool("reproduce").main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1  # one message
    assert "the preflight found 4 problem(s); nothing was run" in err
    assert f"{empty}: not a VOC2012 folder (no JPEGImages/)" in err
    assert f"{tmp_path / 'w8' / 'ViT-B-16.pt'}: not found (needed by step cls_prompts" in err
    assert f"{tmp_path / 'w8' / 'sam_vit_h_4b8939.pth'}: not found (needed by step sam_masks" in err
    assert "but this run trains with 2 (1 x 2); run with --launcher pytorch" in err
    assert not (tmp_path / "w").exists()


def test_missing_train_aug_names_the_sbd_conversion(tmp_path):
    root = _voc_root(tmp_path / "VOC2012", ["a", "b"], ["c"], ["a", "b"])
    (root / "ImageSets" / "Segmentation" / "train_aug.txt").unlink()
    shutil.rmtree(root / "cls_labels")
    (root / "JPEGImages" / "c.jpg").unlink()
    result = check_dataset("voc12", str(root), "train_aug,val", "train_aug", "train_aug,val")
    text = "\n".join(result.problems)
    assert len(result.problems) == 2, text
    assert "train_aug.txt: split list of 'train_aug' not found; make it with python " in text
    assert "--sbd SBD_ROOT" in text
    assert "JPEGImages: no image for 1 of the 1 ids of 'val' (c)" in text
    assert any("val: 1 images (the official val has 1,449)" in n for n in result.notes)


def test_dataset_check_counts_missing_labels_and_ground_truth(tmp_path):
    root = _voc_root(tmp_path / "VOC2012", ["a"], ["v"], ["a", "b", "x"])
    (root / "SegmentationClassAug" / "b.png").unlink()
    save_image_labels(root / "cls_labels" / "train_aug.json", {"a": [1]}, VOC12.class_names,
                      "voc12", "train_aug")  # fmt: skip
    result = check_dataset("voc12", str(root), "train_aug", "train_aug", "train_aug")
    assert len(result.problems) == 2, result.problems
    assert "no image-level labels for 2 of the 3 ids of 'train_aug' (b, x)" in result.problems[0]
    assert "SegmentationClassAug: no ground truth <id>.png for 1 of the 3 ids" in result.problems[1]


def test_complete_tree_plans_with_estimates(tmp_path):
    root = _voc_root(tmp_path / "VOC2012", ["a", "b"], ["c"], ["a", "b", "d"])
    clip, sam = tmp_path / "tiny-clip.pt", tmp_path / "tiny-sam.pth"
    clip.write_bytes(b"c")
    sam.write_bytes(b"s")
    pipe = _load({"data_root": str(root), "clip": str(clip), "sam": str(sam)}, tmp_path / "w")
    names = {s.name for s in pipe.steps}
    report = preflight(pipe, names, world_size=2)
    assert report.problems == []
    rows = {p.step: p for p in report.plan}
    assert rows["sam_masks"].work == "3 images"
    assert rows["sam_masks"].gpu_hours == pytest.approx(3 * 1.57 / 3600)
    assert rows["cls_prompts"].work == "1,800 it x 1 proc"
    assert rows["cls_prompts"].gpu_hours == pytest.approx(1800 * 0.026 / 3600)
    assert rows["stage2_train"].work == "80,000 it x 2 proc"
    assert rows["stage2_train"].gpu_hours == pytest.approx(80000 * 0.333 * 2 / 3600)
    assert rows["stage2_eval"].work == "1 image" and rows["stage2_eval"].gpu_hours is None
    table = format_plan(report)
    assert table.splitlines()[0].split() == ["step", "work", "GPU-h", "CPU-h", "disk"]
    total = next(line for line in table.splitlines() if line.startswith("total"))
    assert total.split()[1] == f"{sum(p.gpu_hours or 0 for p in report.plan):.0f}"
    # One process trains Mask2Former 2xb2 at total batch 2: a problem, or a note when accepted.
    report = preflight(pipe, names, world_size=1)
    assert len(report.problems) == 1
    assert (
        "total batch of 4 (2 processes x 2), but this run trains with 2 (1 x 2)"
        in (report.problems[0])
    )
    assert "--nproc-per-node 2" in report.problems[0]
    report = preflight(pipe, names, world_size=1, allow_batch_change=True)
    assert report.problems == [] and any("accepted" in n for n in report.notes)


def test_from_a_later_step_needs_the_earlier_outputs_and_a_tag_is_a_note(tmp_path):
    root = _voc_root(tmp_path / "VOC2012", ["a"], ["c"], ["a"])
    pipe = _load({"data_root": str(root), "clip": "openai", "sam": "x.pth"}, tmp_path / "w")
    report = preflight(pipe, {"seg_prompts", "seg_cams"})
    assert report.problems == [
        f"{tmp_path / 'w'}/coarse_seeds/seeds/train_aug: not found (needed by step seg_prompts; "
        "written by step coarse_seeds, which this run does not select: run it first)"
    ]
    assert any(n.startswith("clip='openai' is a tag, not a file") for n in report.notes)
    (tmp_path / "w" / "coarse_seeds" / "seeds" / "train_aug").mkdir(parents=True)
    assert preflight(pipe, {"seg_prompts"}).problems == []


def test_known_weights_file_with_another_hash_is_refused(tmp_path):
    root = _voc_root(tmp_path / "VOC2012", ["a"], ["c"], ["a"])
    sam = tmp_path / "sam_vit_h_4b8939.pth"  # the published name, other bytes
    sam.write_bytes(b"not the SAM checkpoint")
    pipe = _load({"data_root": str(root), "clip": "openai", "sam": str(sam)}, tmp_path / "w")
    cache = HashCache(None)
    report = preflight(pipe, {"sam_masks"}, cache=cache)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{sam}: sha256 ")
    assert "is not the published a7bf3b02f3eb..." in report.problems[0]


def test_too_little_disk_is_a_problem(tmp_path, monkeypatch):
    root = _voc_root(tmp_path / "VOC2012", ["a"], ["c"], ["a"])
    pipe = _load({"data_root": str(root), "clip": "openai", "sam": "x.pth"}, tmp_path / "w")
    (tmp_path / "w" / "fine_seeds" / "seeds" / "train_aug").mkdir(parents=True)
    usage = shutil.disk_usage(tmp_path)._replace(free=10**9)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    report = preflight(pipe, {"stage2_train"}, world_size=2)
    assert report.problems == [
        f"{tmp_path / 'w'}: 1.0 GB free, the outputs need about 7.8 GB (configs/costs.yml): "
        "free space or choose another --work-dir"
    ]


def test_images_of_every_split_are_counted_without_reading_them(tmp_path):
    ids = [f"2007_{i:06d}" for i in range(5)]
    root = _voc_root(tmp_path / "VOC2012", ids[:3], ids[3:], ids[:3])
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "JPEGImages" / "extra.jpg")
    result = check_dataset("voc12", str(root), "train_aug,val", "train_aug", "train_aug,val")
    assert result.problems == []
    assert [n.rsplit(": ", 1)[1] for n in result.notes] == [
        "3 images (the official train_aug has 10,582)",
        "2 images (the official val has 1,449)",
    ]
