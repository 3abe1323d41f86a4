"""``tools/train.py --amp bf16``: the tiny stage II configs train 2 iterations in bfloat16 mixed
precision on the CPU, with mmengine's AmpOptimWrapper casting to bfloat16, recorded in the
checkpoint; fp32 stays the default and fp16 without CUDA stops with one line."""

from __future__ import annotations

import json

import pytest
import torch
from stage2_helpers import TINY, run_tool, state_dict, train_options

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from fma.engine.amp import AmpError, apply_amp
from fma.models.optim_wrapper import Bf16AmpOptimWrapper


def _cfg(net: str) -> Config:
    return Config.fromfile(TINY[net])


@pytest.mark.parametrize("net", sorted(TINY))
def test_default_stays_fp32(net) -> None:
    cfg = _cfg(net)
    apply_amp(cfg, None)
    assert cfg.optim_wrapper.type == "OptimWrapper" and "fma_amp" not in cfg


def test_bf16_config_builds_amp_wrapper_casting_to_bfloat16_on_cpu() -> None:
    cfg = _cfg("deeplabv3plus")
    apply_amp(cfg, "bf16", cuda=False)
    assert cfg.fma_amp == "bf16" and cfg.optim_wrapper.dtype == "bfloat16"
    layer = torch.nn.Linear(3, 2)
    wrapper_cfg = dict(cfg.optim_wrapper, optimizer=torch.optim.SGD(layer.parameters(), lr=0.1))
    wrapper_cfg.pop("_scope_", None)
    ow = OPTIM_WRAPPERS.build(wrapper_cfg)
    assert isinstance(ow, AmpOptimWrapper) and type(ow) is Bf16AmpOptimWrapper
    assert ow.cast_dtype == torch.bfloat16 and not ow.loss_scaler.is_enabled()
    with ow.optim_context(layer):
        out = layer(torch.ones(1, 3))
    assert out.dtype == torch.bfloat16
    before = layer.weight.detach().clone()
    ow.update_params(out.float().sum())  # unscaled: SGD moves each weight by lr * grad = 0.1
    assert torch.allclose(before - layer.weight.detach(), torch.full((2, 3), 0.1))
    assert ow.state_dict()["loss_scaler"] == {}


def test_fp16_without_cuda_and_other_dtypes_are_refused() -> None:
    with pytest.raises(AmpError, match="needs CUDA"):
        apply_amp(_cfg("deeplabv3plus"), "fp16", cuda=False)
    with pytest.raises(AmpError, match="choose one of"):
        apply_amp(_cfg("deeplabv3plus"), "tf32", cuda=False)
    with pytest.raises(ValueError, match="bfloat16 only"):
        Bf16AmpOptimWrapper(dtype="float16", optimizer=torch.optim.SGD([torch.zeros(1)], lr=1))


def test_fp16_on_cuda_is_mmengines_amp_wrapper() -> None:
    cfg = _cfg("mask2former")
    apply_amp(cfg, "fp16", cuda=True)
    wrapper = cfg.optim_wrapper
    assert (wrapper.type, wrapper.dtype, wrapper.loss_scale) == (
        "AmpOptimWrapper", "float16", "dynamic",
    )  # fmt: skip
    assert cfg.fma_amp == "fp16"


@pytest.mark.e2e
def test_fp16_on_cpu_tool_exits_with_one_line(stage2_voc, tmp_path, capsys) -> None:
    argv = [TINY["deeplabv3plus"], "--amp", "fp16",
            *train_options(stage2_voc["voc"], stage2_voc["seeds_no_255"], tmp_path)]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        run_tool("train", argv)
    assert exc.value.code == 2
    assert "--amp fp16 needs CUDA" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("net", sorted(TINY))
def test_tiny_stage2_trains_two_iterations_in_bf16(net, stage2_voc, tmp_path) -> None:
    argv = [TINY[net], "--amp", "bf16",
            *train_options(stage2_voc["voc"], stage2_voc["seeds_no_255"], tmp_path)]  # fmt: skip
    assert run_tool("train", argv) == 0
    ckpt = state_dict(tmp_path / "iter_2.pth")
    assert "fma.Bf16AmpOptimWrapper" in ckpt["meta"]["cfg"]
    assert "fma_amp = 'bf16'" in ckpt["meta"]["cfg"]
    assert ckpt["optimizer"]["loss_scaler"] == {}
    (scalars,) = tmp_path.glob("*/vis_data/scalars.json")
    losses = [json.loads(line).get("loss") for line in scalars.read_text().splitlines()]
    losses = [v for v in losses if v is not None]
    assert len(losses) == 2 and all(v == v and abs(v) < 1e4 for v in losses)
    for value in ckpt["state_dict"].values():
        assert value.dtype != torch.bfloat16  # the weights stay float32
        if value.is_floating_point():
            assert torch.isfinite(value).all()
