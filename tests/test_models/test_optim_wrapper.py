"""CudaAmpOptimWrapper: the original's fp16 autocast + GradScaler on CUDA, fp32 on CPU."""

from __future__ import annotations

import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module
import pytest
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, init_default_scope


def _build(**kw):
    init_default_scope("fma")
    params = torch.nn.Linear(2, 2).parameters()
    cfg = dict(type="CudaAmpOptimWrapper", optimizer=torch.optim.SGD(params, lr=0.1), **kw)
    return OPTIM_WRAPPERS.build(cfg)


def test_plain_fp32_wrapper_without_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ow = _build(loss_scale=dict(init_scale=2.0**16), dtype="float16")
    assert type(ow) is OptimWrapper


@pytest.mark.parametrize("amp", [True, False])
def test_amp_wrapper_with_cuda(monkeypatch, amp: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(amp_module, "is_cuda_available", lambda: True)
    ow = _build(loss_scale=dict(init_scale=2.0**16), dtype="float16", amp=amp)
    if not amp:
        assert type(ow) is OptimWrapper
        return
    assert type(ow) is AmpOptimWrapper and ow.cast_dtype == torch.float16
    assert ow.loss_scaler._init_scale == 2.0**16


@pytest.mark.parametrize("cuda", [False, True])
def test_accumulative_counts_reach_both_wrappers(monkeypatch, cuda: bool) -> None:
    """tools/train.py holds a total batch on fewer processes with optim_wrapper.accumulative_counts
    (fma.engine.total_batch): the stage I wrapper passes it on, with or without CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(amp_module, "is_cuda_available", lambda: cuda)
    ow = _build(loss_scale=dict(init_scale=2.0**16), dtype="float16", accumulative_counts=4)
    assert type(ow) is (AmpOptimWrapper if cuda else OptimWrapper)
    assert ow._accumulative_counts == 4
