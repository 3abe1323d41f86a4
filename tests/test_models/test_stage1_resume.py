"""Stage I resume through tools/train.py: a 3-iteration run resumed to 5 iterations matches an
uninterrupted 5-iteration run, and checkpoints hold only the prompt learner's state."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tool_modules import load_tool

from fma._compat import mmengine_checkpoint_globals

REPO = Path(__file__).resolve().parents[2]
LEAF = "fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py"


def _cfg(tmp_path: Path, voc: Path, tiny: dict) -> Path:
    """Tiny cls config whose schedule spans 5 iterations (warm-up 1, cosine 4)."""
    text = f"""
_base_ = [{str(REPO / "configs" / "stage1" / LEAF)!r}]
model = dict(n_ctx=4, att_layers=2, clip={tiny!r})
total_batch = 2
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={str(voc)!r}, split='train', pipeline=[
        dict(type='LoadImage'), dict(type='RandomColorJitter'),
        dict(type='RandomRescale', low=64, high=96, short_min=64),
        dict(type='RandomCrop', size=64), dict(type='RandomFlip', prob=0.5),
        dict(type='PackClsInputs')]))
test_dataloader = dict(num_workers=0, dataset=dict(data_root={str(voc)!r}, split='train'))
param_scheduler = [
    dict(type='ConstantLR', factor=0.01, begin=0, end=1, by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=4, eta_min=0.0, begin=1, end=5, by_epoch=False),
]
optim_wrapper = dict(optimizer=dict(lr=0.5))
train_cfg = dict(max_iters=5)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
"""
    path = tmp_path / "small_resume.py"
    path.write_text(text)
    return path


def _load(path: Path) -> dict:
    with mmengine_checkpoint_globals():
        return torch.load(path, map_location="cpu", weights_only=True)


def _train(cfg: Path, work: Path, iters: int, resume: bool = False) -> None:
    argv = [str(cfg), "--work-dir", str(work), "--cfg-options", f"train_cfg.max_iters={iters}"]
    assert load_tool("train").main(argv + (["--resume"] if resume else [])) == 0


def test_resume_matches_uninterrupted(tmp_path, synth_voc, tiny_clip_cfg) -> None:
    cfg = _cfg(tmp_path, synth_voc, tiny_clip_cfg)
    work = tmp_path / "resumed"
    _train(cfg, work, 3)
    assert sorted(p.name for p in work.glob("iter_*.pth")) == [f"iter_{i}.pth" for i in (1, 2, 3)]
    assert (work / "last_checkpoint").read_text().strip().endswith("iter_3.pth")
    first3 = _load(work / "iter_3.pth")
    assert first3["meta"]["iter"] == 3

    _train(cfg, work, 5, resume=True)
    assert (work / "last_checkpoint").read_text().strip().endswith("iter_5.pth")
    resumed = _load(work / "iter_5.pth")
    assert resumed["meta"]["iter"] == 5
    # The resumed run started at iteration 3: it skipped 3 batches and logged only iterations 4-5.
    text = "\n".join(f.read_text() for f in work.glob("*/*.log"))
    assert "Auto resumed from the latest checkpoint" in text and "iter_3.pth" in text
    assert "Advance dataloader 3 steps" in text
    steps = [
        json.loads(line)["step"]
        for f in work.glob("*/vis_data/scalars.json")
        for line in f.read_text().splitlines()
        if "loss" in json.loads(line)
    ]
    assert sorted(steps) == [1, 2, 3, 4, 5]
    # Checkpoint 3 was not rewritten by the resumed run.
    again3 = _load(work / "iter_3.pth")
    for k, v in first3["state_dict"].items():
        assert torch.equal(v, again3["state_dict"][k])

    straight = tmp_path / "straight"
    _train(cfg, straight, 5)
    ref = _load(straight / "iter_5.pth")
    assert ref["meta"]["iter"] == 5

    sd, ref_sd = resumed["state_dict"], ref["state_dict"]
    assert sd.keys() == ref_sd.keys() and sd
    # Only the prompt learner is stored: the frozen CLIP never enters a checkpoint.
    assert all(k.startswith("prompt_learner.") for k in sd), sorted(sd)
    params = {n for n, _ in _build_model_params(cfg)}
    assert {k for k in sd if k in params} == params
    for k in sd:
        torch.testing.assert_close(sd[k], ref_sd[k], rtol=0, atol=0, msg=k)
    # The prompts did move between iterations 3 and 5.
    assert all(not torch.equal(first3["state_dict"][k], sd[k]) for k in params)
    # Optimizer momentum and scheduler state are restored too (same as uninterrupted).
    mom = resumed["optimizer"]["state"]
    mom_ref = ref["optimizer"]["state"]
    assert mom.keys() == mom_ref.keys() and mom
    for k in mom:
        torch.testing.assert_close(mom[k]["momentum_buffer"], mom_ref[k]["momentum_buffer"])


def _build_model_params(cfg: Path):
    """Trainable parameter names of the configured model."""
    from mmengine.config import Config

    from fma.registry import MODELS

    model = MODELS.build(Config.fromfile(cfg).model)
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]
