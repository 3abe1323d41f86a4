"""The total batch of a run: the per-process batch and accumulation that hold it on any number of
processes, the configs' totals, and an accumulating mmengine run that makes the same optimizer
updates, with the same learning rates and weights, as the recipe's one big batch."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from torch.utils.data import Dataset

from fma._compat import mmengine_checkpoint_globals
from fma.engine.total_batch import (
    BatchPlan,
    TotalBatchError,
    apply_total_batch,
    plan_total_batch,
    world_size_of,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("total", "world", "batch", "want"),
    [
        (4, 1, 2, "total 4 = 1 proc x 2 x 2 acc"),  # Mask2Former 2xb2 on one GPU
        (4, 2, 2, "total 4 = 2 proc x 2"),  # its recipe
        (4, 4, 2, "total 4 = 4 proc x 1"),  # more GPUs: fewer images each
        (16, 1, 4, "total 16 = 1 proc x 4 x 4 acc"),  # DeepLabV3+ 4xb4 on one GPU
        (16, 2, 4, "total 16 = 2 proc x 4 x 2 acc"),
        (16, 4, 4, "total 16 = 4 proc x 4"),
        (16, 8, 4, "total 16 = 8 proc x 2"),
        (16, 1, 6, "total 16 = 1 proc x 4 x 4 acc"),  # largest divisor of 16 not above 6
        (16, 1, 16, "total 16 = 1 proc x 16"),  # stage I
        (16, 2, 16, "total 16 = 2 proc x 8"),
    ],
)
def test_plan_holds_the_total(total, world, batch, want):
    plan = plan_total_batch(total, world, batch)
    assert plan.describe() == want
    assert plan.world_size * plan.batch_size * plan.accumulative_counts == total
    assert plan.batch_size <= batch and plan.config_batch_size == batch


def test_plan_refuses_what_cannot_be_held():
    with pytest.raises(TotalBatchError) as err:
        plan_total_batch(4, 3, 2)
    text = str(err.value)
    assert "total_batch=4 cannot be split over 3 processes" in text
    assert "run on 1, 2, 4 processes" in text and "--cfg-options total_batch=N (e.g. 6)" in text
    with pytest.raises(TotalBatchError, match="batch_size=16 is more than total_batch=2"):
        plan_total_batch(2, 1, 16)
    with pytest.raises(TotalBatchError, match="world size must be an integer >= 1"):
        plan_total_batch(4, 0, 2)


def test_world_size_of_the_launchers():
    assert world_size_of("none", {"WORLD_SIZE": "8"}) == 1
    assert world_size_of("pytorch", {"WORLD_SIZE": "2"}) == 2
    assert world_size_of("slurm", {"SLURM_NTASKS": "4"}) == 4
    with pytest.raises(TotalBatchError, match="--launcher pytorch but WORLD_SIZE is not set"):
        world_size_of("pytorch", {})


def _load(rel: str) -> Config:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Config.fromfile(str(REPO / rel), import_custom_modules=False)


DEEPLAB = "configs/stage2/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-seed-512x512.py"
COCO_CLS = "configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-20500it_coco14.py"
COCO_SEG = "configs/stage1/fma-seg_prompt-clip-vit-b16_1xb16-75k_coco14.py"


@pytest.mark.parametrize(
    "rel",
    [
        "configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py",
        "configs/stage1/fma-seg_prompt-clip-vit-b16_1xb16-17k_voc12.py",
        "configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-1800it_custom.py",
        "configs/stage1/fma-seg_prompt-clip-vit-b16_1xb16-17k_custom.py",
        COCO_CLS,
        COCO_SEG,
        DEEPLAB,
        "configs/stage2/deeplabv3plus_r101-d8_4xb4-80k_coco14-seed-512x512.py",
    ],
)
def test_recipe_configs_state_their_total(rel):
    cfg = _load(rel)
    assert cfg.total_batch == 16
    # The config's own recipe: its name's processes x its batch_size.
    procs = 4 if "4xb4" in rel else 1
    assert cfg.train_dataloader.batch_size * procs == 16


def test_apply_sets_batch_accumulation_and_loop():
    cfg = _load(DEEPLAB)
    plan = apply_total_batch(cfg, 1, config=DEEPLAB)
    assert plan == BatchPlan(16, 1, 4, 4, 4, "config")
    assert cfg.train_dataloader.batch_size == 4 and cfg.optim_wrapper.accumulative_counts == 4
    assert cfg.train_cfg.type == "AccumIterBasedTrainLoop"
    assert cfg.train_cfg.accumulative_counts == 4 and cfg.train_cfg.max_iters == 40000
    assert cfg.fma_batch == plan.record()
    cfg = _load(DEEPLAB)  # on its 4 processes nothing changes
    assert apply_total_batch(cfg, 4, config=DEEPLAB).describe() == "total 16 = 4 proc x 4"
    assert (
        cfg.train_cfg.type == "IterBasedTrainLoop"
        and "accumulative_counts" not in cfg.optim_wrapper
    )
    cfg = _load(DEEPLAB)
    with pytest.raises(TotalBatchError) as err:
        apply_total_batch(cfg, 3, config=DEEPLAB)
    assert str(err.value).startswith(f"{DEEPLAB}: total_batch=16 cannot be split over 3 processes")
    cfg = _load(DEEPLAB)
    cfg.total_batch = None  # no total: trains as given, recorded
    plan = apply_total_batch(cfg, 2, config=DEEPLAB)
    assert (plan.total_batch, plan.batch_size, plan.accumulative_counts) == (8, 4, 1)
    assert plan.total_from.startswith("processes x batch_size")


@pytest.mark.parametrize(
    ("rel", "world", "batch", "sub_batches"),
    [(COCO_CLS, 1, 16, 4), (COCO_CLS, 2, 8, 2), (COCO_CLS, 4, 4, 1), (COCO_SEG, 8, 2, 1)],
)
def test_sub_batches_keep_their_size(rel, world, batch, sub_batches):
    cfg = _load(rel)
    group = 16 // cfg.model.sub_batches  # 4 images (cls), 2 (seg)
    apply_total_batch(cfg, world, config=rel)
    assert cfg.train_dataloader.batch_size == batch and cfg.model.sub_batches == sub_batches
    assert batch // sub_batches == group


def test_sub_batches_that_cannot_be_held_are_refused():
    cfg = _load(COCO_CLS)
    with pytest.raises(TotalBatchError, match="sub_batches=4 normalises groups of 4 images"):
        apply_total_batch(cfg, 8, config=COCO_CLS)


# ----------------------------------------------------------------- an accumulating mmengine run
class _Points(Dataset):
    """12 samples (x: 2 floats, y: 1 float), in order."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(12, 2, generator=g)
        self.y = torch.randn(12, 1, generator=g)

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> dict:
        return {"inputs": self.x[i], "data_samples": self.y[i]}


class _Linear(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1, bias=False)
        torch.nn.init.constant_(self.lin.weight, 0.5)

    def forward(self, inputs, data_samples=None, mode="tensor"):
        out = self.lin(inputs)
        if mode == "loss":
            return {"loss": ((out - data_samples) ** 2).mean()}
        return out


class _Trace(Hook):
    """Weights and learning rate after every iteration (before the schedulers step)."""

    def __init__(self) -> None:
        self.rows: list[tuple[list[float], float]] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        w = runner.model.lin.weight.detach().flatten().tolist()
        self.rows.append((w, runner.optim_wrapper.get_lr()["lr"][0]))


def _run(tmp_path: Path, name: str, batch: int, total: int | None, iters: int = 3, resume=False):
    cfg = ConfigDict(
        train_dataloader=dict(batch_size=batch, num_workers=0,
                              sampler=dict(type="DefaultSampler", shuffle=False),
                              collate_fn=dict(type="default_collate")),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=iters),
        total_batch=total,
    )  # fmt: skip
    plan = apply_total_batch(cfg, 1, config=name)
    cfg.pop("total_batch"), cfg.pop("fma_batch")
    cfg.train_dataloader.dataset = _Points()
    trace = _Trace()
    runner = Runner(
        model=_Linear(), work_dir=str(tmp_path / name), **cfg,
        param_scheduler=dict(type="MultiStepLR", milestones=[2], gamma=0.1, end=3, by_epoch=False),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1, by_epoch=False)),
        custom_hooks=[trace], resume=resume, log_level="WARNING",
    )  # fmt: skip
    with mmengine_checkpoint_globals():
        runner.train()
    return plan, trace.rows, runner


def test_accumulation_makes_the_recipe_updates(tmp_path, monkeypatch):
    steps: list[str] = []
    real_step = OptimWrapper.step

    def counting_step(self, **kw):
        steps.append("step")
        return real_step(self, **kw)

    monkeypatch.setattr(OptimWrapper, "step", counting_step)
    _, recipe, _ = _run(tmp_path, "recipe", batch=4, total=4)
    n_recipe, steps[:] = len(steps), []
    plan, accum, runner = _run(tmp_path, "accum", batch=2, total=4)
    assert plan.describe() == "total 4 = 1 proc x 2 x 2 acc"
    assert type(runner.train_loop).__name__ == "AccumIterBasedTrainLoop"
    assert n_recipe == len(steps) == 3 and runner.iter == 3
    assert [lr for _, lr in recipe] == pytest.approx([0.1, 0.1, 0.01])  # per update
    assert [lr for _, lr in accum] == [lr for _, lr in recipe]
    for (wa, _), (wb, _) in zip(accum, recipe, strict=True):
        assert wa == pytest.approx(wb, rel=1e-6, abs=1e-7)
    assert sorted(p.name for p in (tmp_path / "accum").glob("iter_*.pth")) == [
        "iter_1.pth", "iter_2.pth", "iter_3.pth"
    ]  # fmt: skip
    # mmengine's own accumulation counts micro-batches: 3 iterations make 2 updates (the last
    # of a single micro-batch), not 3.
    steps[:] = []
    _plain_mmengine_accumulation(tmp_path)
    assert len(steps) == 2


def _plain_mmengine_accumulation(tmp_path: Path) -> None:
    runner = Runner(
        model=_Linear(), work_dir=str(tmp_path / "plain"),
        train_dataloader=dict(batch_size=2, num_workers=0, dataset=_Points(),
                              sampler=dict(type="DefaultSampler", shuffle=False),
                              collate_fn=dict(type="default_collate")),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=2),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=3),
        default_hooks=dict(checkpoint=None), log_level="WARNING",
    )  # fmt: skip
    runner.train()


def test_resumed_accumulation_equals_uninterrupted(tmp_path):
    _, full, _ = _run(tmp_path, "full", batch=2, total=4, iters=3)
    _run(tmp_path, "part", batch=2, total=4, iters=2)
    _, rest, runner = _run(tmp_path, "part", batch=2, total=4, iters=3, resume=True)
    assert runner.iter == 3 and len(rest) == 1  # one more update, after 2 x 2 skipped batches
    assert rest[0][0] == pytest.approx(full[-1][0], rel=1e-6, abs=1e-7)
    assert rest[0][1] == full[-1][1]
