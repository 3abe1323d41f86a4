"""Stage I CAM inference with two CPU processes (torchrun, gloo) through tools/test.py writes the
same CAM files as a single-process run on the same checkpoint and images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tool_modules import load_tool, torchrun_tool

from fma.io import read_manifest
from fma.io.cams import load_cam

REPO = Path(__file__).resolve().parents[2]
LEAF = "fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py"


def _cfg(tmp_path: Path, voc: Path, tiny: dict) -> Path:
    """Tiny cls config on the synthetic tree (one training iteration, gloo process groups)."""
    text = f"""
_base_ = [{str(REPO / "configs" / "stage1" / LEAF)!r}]
model = dict(n_ctx=4, att_layers=2, clip={tiny!r})
total_batch = 2
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={str(voc)!r}, split='train', pipeline=[
        dict(type='LoadImage'), dict(type='RandomRescale', low=64, high=96, short_min=64),
        dict(type='RandomCrop', size=64), dict(type='PackClsInputs')]))
test_dataloader = dict(num_workers=0, dataset=dict(data_root={str(voc)!r}, split='train'))
param_scheduler = [dict(type='ConstantLR', factor=1.0, begin=0, end=1, by_epoch=False)]
optim_wrapper = dict(optimizer=dict(lr=0.5))
train_cfg = dict(max_iters=1)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
"""
    path = tmp_path / "small_dist.py"
    path.write_text(text)
    return path


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)
def test_two_process_cams_equal_single(tmp_path, synth_voc, tiny_clip_cfg) -> None:
    cfg = _cfg(tmp_path, synth_voc, tiny_clip_cfg)
    work = tmp_path / "work"
    assert load_tool("train").main([str(cfg), "--work-dir", str(work)]) == 0
    ckpt = work / "iter_1.pth"

    single = tmp_path / "cams_single"
    test_args = [str(cfg), str(ckpt), "--work-dir", str(work)]
    assert load_tool("test").main([*test_args, "--out", str(single)]) == 0

    dist = tmp_path / "cams_dist"
    log = torchrun_tool("test", [*test_args, "--out", dist], tmp_path, timeout=300)
    # A real 2-rank run: each rank's test loop covered 3 of the 6 images.
    assert "Distributed training: True" in log and "Iter(test) [3/3]" in log
    assert "Iter(test) [6/6]" not in log

    files = sorted(p.name for p in single.glob("*.npz"))
    assert len(files) == 6 and sorted(p.name for p in dist.glob("*.npz")) == files
    for d in (single, dist):
        man = read_manifest(d, format="cams", version=1, dataset="voc12", split="train")
        assert man.count == 6
    for name in files:
        a, b = load_cam(single / name), load_cam(dist / name)
        assert a.cam.dtype == b.cam.dtype and a.cam.shape == b.cam.shape
        # A different thread count changes float sums in the last bits.
        np.testing.assert_allclose(
            a.cam.astype(np.float32), b.cam.astype(np.float32), rtol=0, atol=1e-3
        )
        np.testing.assert_allclose(a.fg_logit, b.fg_logit, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(a.fg_cls, b.fg_cls)
        assert a.ori_size == b.ori_size
