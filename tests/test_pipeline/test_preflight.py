"""The preflight of tools/reproduce.py: every missing input listed at once, weights hashes, the
total batch against the process count, free disk, and the plan with estimates."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tool_modules import load_tool

from fma.datasets.labels import save_image_labels
from fma.datasets.meta import VOC12
from fma.pipeline.checks import check_dataset
from fma.pipeline.config import check_wiring, load_pipeline
from fma.pipeline.fingerprint import HashCache
from fma.pipeline.preflight import format_plan, preflight
from fma.pipeline.runner import Launcher, run_pipeline

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


M2F = REPO / "configs" / "stage2" / "mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py"
DEEPLAB = "configs/stage2/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-seed-512x512.py"


def _m2f(tmp_path: Path, total: str) -> str:
    """The Mask2Former VOC config with ``total_batch = <total>`` (its name keeps ``2xb2``)."""
    path = tmp_path / f"m2f_2xb2-total-{total}.py"
    path.write_text(f"_base_ = [{str(M2F)!r}]\ntotal_batch = {total}\n")
    return str(path)


def _no_total(tmp_path: Path) -> str:
    return _m2f(tmp_path, "None")


def _load(overrides: dict[str, str], work: Path):
    return load_pipeline(FMA_VOC12, root=REPO, work_dir=str(work), overrides=overrides,
                         run_checks=True)  # fmt: skip


def test_empty_folder_lists_every_missing_input_at_once(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [str(FMA_VOC12), "--data-root", str(empty), "--work-dir", str(tmp_path / "w"),
            "--clip", str(tmp_path / "w8" / "ViT-B-16.pt"),
            "--sam", str(tmp_path / "w8" / "sam_vit_h_4b8939.pth"), "--dry-run",
            "--set", f"stage2={_no_total(tmp_path)}"]  # fmt: skip
    assert load_tool("reproduce").main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1  # one message
    assert "the preflight found 4 problem(s); nothing was run" in err
    assert f"{empty}: not a VOC2012 folder (no JPEGImages/)" in err
    assert f"{tmp_path / 'w8' / 'ViT-B-16.pt'}: not found (needed by step cls_prompts" in err
    assert f"{tmp_path / 'w8' / 'sam_vit_h_4b8939.pth'}: not found (needed by step sam_masks" in err
    assert (
        "but this run trains with 2 (1 x 2) (the config sets no total_batch, so nothing holds "
        "it); run with --launcher pytorch --nproc-per-node 2"
    ) in err
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


def _complete(tmp_path: Path, stage2: str):
    root = _voc_root(tmp_path / "VOC2012", ["a", "b"], ["c"], ["a", "b", "d"])
    clip, sam = tmp_path / "tiny-clip.pt", tmp_path / "tiny-sam.pth"
    clip.write_bytes(b"c")
    sam.write_bytes(b"s")
    (tmp_path / "w" / "fine_seeds" / "seeds" / "train_aug").mkdir(parents=True)  # stage II's
    overrides = {"data_root": str(root), "clip": str(clip), "sam": str(sam), "stage2": stage2}
    return _load(overrides, tmp_path / "w")


def test_complete_tree_plans_with_estimates(tmp_path):
    pipe = _complete(tmp_path, DEEPLAB)
    names = {s.name for s in pipe.steps}
    report = preflight(pipe, names, world_size=2)
    assert report.problems == []
    rows = {p.step: p for p in report.plan}
    assert rows["sam_masks"].work == "3 images"
    assert rows["sam_masks"].gpu_hours == pytest.approx(3 * 1.57 / 3600)
    assert rows["cls_prompts"].work == "1,800 it, total 16 = 1 proc x 16"
    assert rows["cls_prompts"].gpu_hours == pytest.approx(1800 * 0.026 / 3600)
    # DeepLabV3+ 4xb4 on 2 processes: 4 images each, 2 accumulated micro-batches per update; the
    # GPU-hours are those of the recipe's 4 processes (0.102 s per iteration at batch 4).
    assert rows["stage2_train"].work == "40,000 it, total 16 = 2 proc x 4 x 2 acc"
    assert rows["stage2_train"].gpu_hours == pytest.approx(40000 * 0.102 * 4 / 3600)
    assert rows["stage2_eval"].work == "1 image" and rows["stage2_eval"].gpu_hours is None
    table = format_plan(report)
    assert table.splitlines()[0].split() == ["step", "work", "GPU-h", "CPU-h", "disk"]
    total = next(line for line in table.splitlines() if line.startswith("total"))
    gpu = sum(p.gpu_hours or 0 for p in report.plan)
    assert total.split()[1] == (f"{gpu:.2f}" if gpu < 10 else f"{gpu:.0f}")
    for world, work in ((1, "total 16 = 1 proc x 4 x 4 acc"), (4, "total 16 = 4 proc x 4"),
                        (8, "total 16 = 8 proc x 2")):  # fmt: skip
        report = preflight(pipe, {"stage2_train"}, world_size=world)
        assert report.problems == [] and report.plan[0].work == f"40,000 it, {work}"
        assert report.plan[0].gpu_hours == pytest.approx(40000 * 0.102 * 4 / 3600)


def test_mask2former_total_is_held_by_accumulation(tmp_path):
    pipe = _complete(tmp_path, _m2f(tmp_path, "4"))
    report = preflight(pipe, {"stage2_train"}, world_size=1)
    assert report.problems == [] and report.step_args == {}
    assert report.plan[0].work == "80,000 it, total 4 = 1 proc x 2 x 2 acc"


def test_total_that_cannot_be_held_is_a_problem_unless_accepted(tmp_path):
    pipe = _complete(tmp_path, DEEPLAB)
    report = preflight(pipe, {"stage2_train"}, world_size=3)
    assert report.problems == [
        f"step stage2_train: {DEEPLAB}: total_batch=16 cannot be split over 3 processes (16 is "
        "not a multiple of 3): run on 1, 2, 4, 8, 16 processes, or choose another total with "
        "--cfg-options total_batch=N (e.g. 12); in a pipeline: --nproc-per-node with a number "
        "of processes that holds it, or --allow-batch-change to train with total 12 (3 x 4)"
    ]
    report = preflight(pipe, {"stage2_train"}, world_size=3, allow_batch_change=True)
    assert report.problems == []
    assert any("(--allow-batch-change: it trains with total 12)" in n for n in report.notes)
    assert report.step_args == {"stage2_train": ["--cfg-options", "total_batch=12"]}
    assert report.plan[0].work == "40,000 it, total 12 = 3 proc x 4"
    # The run passes the accepted total to the step (and so to its fingerprint).
    out = io.StringIO()
    three = Launcher("pytorch", nproc_per_node=3)
    assert run_pipeline(pipe, only="stage2_train", dry_run=True, launcher=three, out=out,
                        allow_batch_change=True) == 0  # fmt: skip
    (cmd,) = [line for line in out.getvalue().splitlines() if "tools/train.py" in line]
    assert cmd.endswith("--cfg-options total_batch=12 --launcher pytorch")


def test_config_without_total_is_checked_against_its_name(tmp_path):
    pipe = _complete(tmp_path, _no_total(tmp_path))
    report = preflight(pipe, {"stage2_train"}, world_size=1)
    assert len(report.problems) == 1
    assert (
        "total batch of 4 (2 processes x 2), but this run trains with 2 (1 x 2)"
        in (report.problems[0])
    )
    assert "--nproc-per-node 2" in report.problems[0]
    assert report.plan[0].work == "80,000 it x 1 proc"
    report = preflight(pipe, {"stage2_train"}, world_size=1, allow_batch_change=True)
    assert report.problems == [] and any("accepted" in n for n in report.notes)
    assert preflight(pipe, {"stage2_train"}, world_size=2).problems == []


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


def test_a_step_runs_on_imported_inputs_given_by_vars(tmp_path):
    """--set masks=... seg_cams=... --only fine_seeds: the seeding step reads the given folders
    (e.g. the authors' masks and CAMs from tools/import_official.py), and the preflight asks for
    nothing the skipped steps would have written."""
    root = _voc_root(tmp_path / "VOC2012", ["a"], ["c"], ["a"])
    masks, cams = tmp_path / "official" / "masks", tmp_path / "official" / "cams"
    pipe = _load({"data_root": str(root), "clip": "openai", "sam": "x.pth",
                  "masks": str(masks), "seg_cams": str(cams)}, tmp_path / "w")  # fmt: skip
    step = pipe.step("fine_seeds")
    assert f"seeding.mask_dir={masks}" in step.args and f"seeding.cam_dir={cams}" in step.args
    assert step.inputs == [str(cams), str(masks)]
    assert check_wiring(pipe) == []
    assert [p.split(":")[0] for p in preflight(pipe, {"fine_seeds"}).problems] == [
        str(cams), str(masks)
    ]  # fmt: skip
    masks.mkdir(parents=True)
    cams.mkdir(parents=True)
    assert preflight(pipe, {"fine_seeds"}).problems == []
    assert pipe.step("coarse_seeds").inputs[1] == str(masks)  # every reader of the masks


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


def test_only_split_lists_count_images(tmp_path):
    """A custom folder's classes.txt is an input, not a list of images."""
    from fma.pipeline.preflight import _is_split_list

    assert _is_split_list("/d/ImageSets/Segmentation/train_aug.txt")
    assert _is_split_list("/d/ImageSets/val.txt") and _is_split_list("/d/splits/train.txt")
    assert not _is_split_list("/d/classes.txt") and not _is_split_list("/d/prompt_names.txt")
