"""Every stage II config loads, restates what mmseg's ADE20K/VOC bases derive from their own
variables, and reads its seeds from one clearly named folder."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from stage2_helpers import STAGE2, TINY

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

from mmengine.config import Config

LEAVES = {
    "mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py": (
        21, "VOCSeedDataset", "train_aug", "work_dirs/sams-fine_voc12/seeds/train_aug", 80000, 2
    ),
    "mask2former_swin-l-in22k_2xb2-100k_coco14-seed-512x512.py": (
        81, "COCOObjectDataset", "train", "work_dirs/sams-fine_coco14/seeds/train", 100000, 2
    ),
    "deeplabv3plus_r101-d8_4xb4-40k_voc12aug-seed-512x512.py": (
        21, "VOCSeedDataset", "train_aug", "work_dirs/sams-fine_voc12/seeds/train_aug", 40000, 4
    ),
    "deeplabv3plus_r101-d8_4xb4-80k_coco14-seed-512x512.py": (
        81, "COCOObjectDataset", "train", "work_dirs/sams-fine_coco14/seeds/train", 80000, 4
    ),
}  # fmt: skip


def _pipelines(cfg) -> dict[str, list]:
    return {
        "train": cfg.train_dataloader.dataset.pipeline,
        "val": cfg.val_dataloader.dataset.pipeline,
        "test": cfg.test_dataloader.dataset.pipeline,
        "tta": cfg.tta_pipeline[1]["transforms"][2],
    }


# Custom-folder leaves: (the VOC leaf they inherit from, the seed folder they default to).
CUSTOM = {
    "mask2former_swin-l-in22k_2xb2-80k_custom-seed-512x512.py": (
        "mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py"
    ),
    "deeplabv3plus_r18-tiny_1xb2-cpu_custom-seed-64x64.py": (
        "deeplabv3plus_r18-tiny_1xb2-cpu_voc12-seed-64x64.py"
    ),
}


def test_every_stage2_config_is_checked():
    listed = set(LEAVES) | {p.name for p in TINY.values()} | set(CUSTOM)
    assert {p.name for p in STAGE2.glob("*.py")} == listed


@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_custom_leaf_is_its_voc_recipe_on_a_custom_folder(name):
    cfg, voc = Config.fromfile(STAGE2 / name), Config.fromfile(STAGE2 / CUSTOM[name])
    train, val = cfg.train_dataloader.dataset, cfg.val_dataloader.dataset
    assert (train.type, train.split, val.type, val.split) == (
        "CustomSeedDataset", "all", "CustomSeedDataset", "val"
    )  # fmt: skip
    assert train.seed_dir == "work_dirs/pipelines/fma_custom/fine_seeds/seeds/all"
    assert cfg.test_dataloader.dataset.type == "CustomSeedDataset"
    assert cfg.val_evaluator.dataset == cfg.test_evaluator.dataset == "custom"
    assert cfg.model == voc.model and cfg.train_cfg == voc.train_cfg
    assert train.pipeline == voc.train_dataloader.dataset.pipeline
    assert cfg.optim_wrapper == voc.optim_wrapper


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_leaf_restates_dataset_values(name):
    classes, dataset_type, split, seeds, iters, batch = LEAVES[name]
    cfg = Config.fromfile(STAGE2 / name)
    assert cfg.default_scope == "mmseg"
    assert cfg.custom_imports.imports[0] == "fma.mmseg_ext"  # before mmdet loads mmcv.ops
    assert cfg.custom_imports.allow_failed_imports is False
    head = cfg.model.decode_head
    assert head.num_classes == classes
    if "mask2former" in name:
        assert "mmdet.models" in cfg.custom_imports.imports
        assert head.loss_cls.class_weight == [1.0] * classes + [0.1]
        assert cfg.model.backbone.embed_dims == 192 and cfg.model.backbone.depths == [2, 2, 18, 2]
        assert cfg.model.backbone.init_cfg.checkpoint.endswith("_22k_20220412-6580f57d.pth")
    else:
        assert cfg.model.auxiliary_head.num_classes == classes
        assert cfg.model.backbone.depth == 101
    assert tuple(cfg.data_preprocessor.size) == (512, 512)
    assert tuple(cfg.model.data_preprocessor.size) == (512, 512)
    crops = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == "RandomCrop"]
    assert [tuple(t.crop_size) for t in crops] == [(512, 512)]
    for stage, pipeline in _pipelines(cfg).items():
        loads = [t for t in pipeline if t["type"] == "LoadAnnotations"]
        assert [t["reduce_zero_label"] for t in loads] == [False], stage
    train = cfg.train_dataloader.dataset
    assert train.type == dataset_type and train.split == split and train.seed_dir == seeds
    assert cfg.train_dataloader.batch_size == batch
    val = cfg.val_dataloader.dataset
    assert val.type == dataset_type and val.split == "val" and val.get("seed_dir") is None
    assert cfg.val_evaluator.type == "SegMetric" and cfg.test_evaluator.type == "SegMetric"
    assert cfg.train_cfg.max_iters == iters and cfg.param_scheduler[0].end == iters
    assert cfg.default_hooks.checkpoint.save_best == "mIoU"
    assert [h.type for h in cfg.custom_hooks] == ["SeedProvenanceHook"]


def _base_depth(path: Path) -> int:
    """Files on the longest ``_base_`` path from ``path`` down to an mmseg:: file or a leaf base
    (``path`` counts; mmseg's own files do not)."""
    bases: list[str] = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_base_":
            value = ast.literal_eval(node.value)
            bases = [value] if isinstance(value, str) else list(value)
    own = [(path.parent / b).resolve() for b in bases if not b.startswith("mmseg::")]
    return 1 + max((_base_depth(b) for b in own), default=0)


def test_base_depth_counts_the_longest_path(tmp_path):
    (tmp_path / "a.py").write_text('_base_ = ["mmseg::x.py"]\n')
    (tmp_path / "b.py").write_text('_base_ = ["./a.py"]\n')
    (tmp_path / "c.py").write_text('_base_ = ["./a.py", "./b.py"]\n')
    assert [_base_depth(tmp_path / n) for n in ("a.py", "b.py", "c.py")] == [1, 2, 3]


@pytest.mark.parametrize("name", sorted(LEAVES) + sorted(p.name for p in TINY.values()))
def test_inheritance_depth_at_most_three(name):
    """A leaf, its bases and theirs: at most three fma files on any path (mmseg's not counted)."""
    assert _base_depth(STAGE2 / name) <= 3


@pytest.mark.parametrize("net", sorted(TINY))
def test_tiny_configs_are_small_and_random(net):
    cfg = Config.fromfile(TINY[net])
    assert tuple(cfg.model.data_preprocessor.size) == (64, 64)
    assert cfg.model.backbone.init_cfg is None
    assert cfg.train_cfg.max_iters == 2 and cfg.train_dataloader.num_workers == 0
