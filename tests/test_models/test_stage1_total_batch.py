"""tools/train.py holds the config's total batch: on one process by gradient accumulation, on two
CPU processes (torchrun, gloo) by accumulation across them, recorded in every checkpoint; a total
that cannot be held stops with one error line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tool_modules import load_tool, torchrun_tool

from fma._compat import mmengine_checkpoint_globals

REPO = Path(__file__).resolve().parents[2]
LEAF = "fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py"


def _cfg(tmp_path: Path, voc: Path, tiny: dict, total: int) -> Path:
    """Tiny cls config, 2 images per process and micro-batch, 2 iterations."""
    text = f"""
_base_ = [{str(REPO / "configs" / "stage1" / LEAF)!r}]
model = dict(n_ctx=4, att_layers=2, clip={tiny!r})
total_batch = {total}
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={str(voc)!r}, split='train', pipeline=[
        dict(type='LoadImage'), dict(type='RandomRescale', low=64, high=96, short_min=64),
        dict(type='RandomCrop', size=64), dict(type='PackClsInputs')]))
test_dataloader = dict(num_workers=0, dataset=dict(data_root={str(voc)!r}, split='train'))
param_scheduler = [dict(type='ConstantLR', factor=1.0, begin=0, end=2, by_epoch=False)]
train_cfg = dict(max_iters=2)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
"""
    path = tmp_path / f"total_{total}.py"
    path.write_text(text)
    return path


def _batch_meta(path: Path) -> dict:
    with mmengine_checkpoint_globals():
        return torch.load(path, map_location="cpu", weights_only=True)["meta"]["fma_batch"]


def test_one_process_accumulates_to_the_total(tmp_path, synth_voc, tiny_clip_cfg, capsys):
    cfg = _cfg(tmp_path, synth_voc, tiny_clip_cfg, total=4)
    work = tmp_path / "work"
    assert load_tool("train").main([str(cfg), "--work-dir", str(work)]) == 0
    want = {
        "total_batch": 4, "world_size": 1, "batch_size": 2, "accumulative_counts": 2,
        "config_batch_size": 2, "total_from": "config",
    }  # fmt: skip
    for name in ("iter_1.pth", "iter_2.pth"):  # one checkpoint per optimizer update
        assert _batch_meta(work / name) == want
    assert not (work / "iter_3.pth").exists()
    log = next(work.glob("*/*.log")).read_text()
    assert "batch: total 4 = 1 proc x 2 x 2 acc (total_batch from config)" in log
    # The total from the command line is recorded as such.
    work2 = tmp_path / "work2"
    argv = [str(cfg), "--work-dir", str(work2), "--cfg-options", "total_batch=2",
            "train_cfg.max_iters=1"]  # fmt: skip
    assert load_tool("train").main(argv) == 0
    rec = _batch_meta(work2 / "iter_1.pth")
    assert (rec["total_batch"], rec["accumulative_counts"], rec["total_from"]) == (
        2, 1, "--cfg-options"
    )  # fmt: skip


def test_total_that_cannot_be_held_stops_with_one_line(tmp_path, synth_voc, tiny_clip_cfg,
                                                       capsys, monkeypatch):  # fmt: skip
    cfg = _cfg(tmp_path, synth_voc, tiny_clip_cfg, total=4)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    work = tmp_path / "work"
    with pytest.raises(SystemExit) as exc:
        load_tool("train").main([str(cfg), "--work-dir", str(work), "--launcher", "pytorch"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {cfg}: total_batch=4 cannot be split over 3 processes (4 is not a multiple of "
        "3): run on 1, 2, 4 processes, or choose another total with --cfg-options total_batch=N "
        "(e.g. 6)"
    ]
    assert not work.exists()  # nothing started


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)
def test_two_processes_hold_the_total(tmp_path, synth_voc, tiny_clip_cfg):
    cfg = _cfg(tmp_path, synth_voc, tiny_clip_cfg, total=8)
    work = tmp_path / "dist"
    log = torchrun_tool("train", [cfg, "--work-dir", work], tmp_path, timeout=300)
    assert "Distributed training: True" in log
    assert "batch: total 8 = 2 proc x 2 x 2 acc" in log
    rec = _batch_meta(work / "iter_2.pth")
    assert (rec["world_size"], rec["batch_size"], rec["accumulative_counts"]) == (2, 2, 2)
    assert rec["total_batch"] == 8 and not (work / "iter_3.pth").exists()
