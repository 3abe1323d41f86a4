"""Stage II on a custom dataset folder: the network is sized from classes.txt, training and
evaluation equal the VOC dataset's on the same images and seeds, and a folder without ground
truth trains without validation (a note, not an error)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from custom_folder import voc_to_custom
from mmengine.config import Config
from stage2_helpers import STAGE2, TINY, assert_same_weights, run_tool, state_dict, train_options

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

from fma.engine.stage2 import adapt_to_custom_dataset

pytestmark = pytest.mark.slow

TINY_CUSTOM = STAGE2 / "deeplabv3plus_r18-tiny_1xb2-cpu_custom-seed-64x64.py"
IDS = [f"synth_{i:03d}" for i in range(6)]


def _custom_options(root: Path, seeds: Path, work: Path, iters: int = 2) -> list:
    return ["--work-dir", work, "--cfg-options", f"train_dataloader.dataset.data_root={root}",
            f"train_dataloader.dataset.seed_dir={seeds}",
            f"val_dataloader.dataset.data_root={root}",
            f"test_dataloader.dataset.data_root={root}",
            f"train_cfg.max_iters={iters}"]  # fmt: skip


@pytest.fixture(scope="module")
def custom(stage2_voc, tmp_path_factory) -> Path:
    return voc_to_custom(stage2_voc["voc"], IDS, tmp_path_factory.mktemp("c") / "pets", val_ids=IDS)


def test_network_sized_from_classes_txt(tmp_path):
    root = tmp_path / "three"
    (root / "images").mkdir(parents=True)
    (root / "classes.txt").write_text("cat\ndog\ntraffic light\n")
    cfg = Config.fromfile(STAGE2 / "mask2former_swin-l-in22k_2xb2-80k_custom-seed-512x512.py")
    cfg.train_dataloader.dataset.data_root = str(root)
    cfg.val_dataloader.dataset.data_root = str(root)
    notes = []
    assert adapt_to_custom_dataset(cfg, log=notes.append) == 4
    head = cfg.model.decode_head
    assert head.num_classes == 4 and head.loss_cls.class_weight == [1.0] * 4 + [0.1]
    # No ground_truth/ and no splits/val.txt: validation off, checkpoints by interval.
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.val_evaluator is None
    assert "save_best" not in cfg.default_hooks.checkpoint
    assert len(notes) == 2 and "sized for the 4 classes of CustomSeedDataset" in notes[0]
    assert "no ground truth for split 'val'" in notes[1]
    voc = Config.fromfile(TINY["deeplabv3plus"])
    assert adapt_to_custom_dataset(voc) == 21 and voc.model.decode_head.num_classes == 21


def test_training_and_evaluation_equal_the_voc_dataset(custom, stage2_voc, tmp_path):
    seeds = stage2_voc["seeds_no_255"]
    w_voc, w_custom = tmp_path / "voc", tmp_path / "custom"
    assert (
        run_tool("train", [TINY["deeplabv3plus"], *train_options(stage2_voc["voc"], seeds, w_voc)])
        == 0
    )
    assert run_tool("train", [TINY_CUSTOM, *_custom_options(custom, seeds, w_custom)]) == 0
    assert (
        state_dict(w_custom / "iter_2.pth")["state_dict"]["decode_head.conv_seg.weight"].shape[0]
        == 21
    )
    assert_same_weights(w_voc / "iter_2.pth", w_custom / "iter_2.pth")
    m_voc = json.loads((w_voc / "metrics_val_iter_2.json").read_text())
    m_custom = json.loads((w_custom / "metrics_val_iter_2.json").read_text())
    assert m_custom["dataset"] == "custom" and m_custom["n_images"] == len(IDS)
    assert m_custom["IoU"] == m_voc["IoU"] and m_custom["mIoU"] == m_voc["mIoU"]
    out = tmp_path / "test"
    argv = [TINY_CUSTOM, w_custom / "iter_2.pth", *_custom_options(custom, seeds, out)[:-1]]
    assert run_tool("test", argv) == 0
    (metrics,) = out.glob("metrics_val*.json")
    assert json.loads(metrics.read_text())["mIoU"] == m_voc["mIoU"]


def test_folder_without_ground_truth_trains_without_validation(
    custom, stage2_voc, tmp_path, capsys
):
    root = tmp_path / "no_gt"
    shutil.copytree(custom, root, symlinks=True, ignore=shutil.ignore_patterns("ground_truth"))
    work = tmp_path / "work"
    assert (
        run_tool("train", [TINY_CUSTOM, *_custom_options(root, stage2_voc["seeds_no_255"], work)])
        == 0
    )
    assert "has no ground truth for split 'val'" in capsys.readouterr().out
    assert (work / "iter_2.pth").is_file() and not list(work.glob("metrics_val_iter_*.json"))
