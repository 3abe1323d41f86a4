"""Mask2Former's deformable attention on CUDA without compiled mmcv ops: the decision and the
pure-PyTorch fallback.

A CPU tensor cannot be on CUDA, so the compiled branch of mmcv's forward is reached with a tensor
subclass that claims ``is_cuda`` while mmcv's ``IS_CUDA_AVAILABLE`` is set to True.
"""

from __future__ import annotations

import logging

import pytest
import torch

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

from mmcv.ops import multi_scale_deform_attn as msda

from fma.mmseg_ext import hooks
from fma.mmseg_ext.hooks import DEFORM_ATTN_COST, deform_attn_path, use_pytorch_deform_attn


@pytest.mark.parametrize(
    ("compiled", "cuda", "required", "expected"),
    [
        (False, False, False, "pytorch"),
        (False, False, True, "pytorch"),
        (True, False, False, "pytorch"),
        (True, False, True, "pytorch"),
        (True, True, False, "compiled"),
        (True, True, True, "compiled"),
        (False, True, False, "fallback"),
        (False, True, True, "refuse"),
    ],
)
def test_the_decision(compiled, cuda, required, expected):
    path = deform_attn_path(compiled_ops=compiled, cuda=cuda, require_compiled=required)
    assert path == expected


@pytest.fixture
def logged(monkeypatch):
    """Undo the process-wide patch after the test; collect what it logs."""
    monkeypatch.setattr(
        msda, "MultiScaleDeformableAttnFunction", msda.MultiScaleDeformableAttnFunction
    )
    calls: list[tuple[str, int]] = []

    def print_log(msg: str, logger: str | None = None, level: int = logging.INFO) -> None:
        calls.append((msg, level))

    monkeypatch.setattr(hooks, "print_log", print_log)
    return calls


class _ClaimsCuda(torch.Tensor):
    """A CPU tensor that answers ``is_cuda`` with True (ops keep the subclass)."""

    @property
    def is_cuda(self) -> bool:
        return True


def _attention_and_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    attn = msda.MultiScaleDeformableAttention(
        embed_dims=16, num_heads=4, num_levels=2, num_points=3, dropout=0.0, batch_first=True
    )
    with torch.no_grad():  # beyond mmcv's init (zero attention weights, fixed offsets)
        for p in attn.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    shapes = torch.tensor([[4, 6], [2, 3]])
    start = torch.tensor([0, 24])
    bs, nq, nv = 2, 5, 24 + 6
    inputs = {
        "query": torch.randn(bs, nq, 16, generator=g, requires_grad=True),
        "value": torch.randn(bs, nv, 16, generator=g),
        "reference_points": torch.rand(bs, nq, 2, 2, generator=g),
        "spatial_shapes": shapes,
        "level_start_index": start,
    }
    return attn, inputs


def _forward(attn, inputs, claims_cuda: bool):
    kwargs = dict(inputs)
    if claims_cuda:
        kwargs["value"] = inputs["value"].as_subclass(_ClaimsCuda)
    out = attn(**kwargs)
    return out.as_subclass(torch.Tensor)


def test_patched_forward_equals_mmcv_pytorch_function(monkeypatch, logged):
    attn, inputs = _attention_and_inputs()
    reference = _forward(attn, inputs, claims_cuda=False)  # mmcv's own CPU path
    (grad_ref,) = torch.autograd.grad(reference.sum(), inputs["query"])
    monkeypatch.setattr(msda, "IS_CUDA_AVAILABLE", True)
    if hooks.compiled_ops_missing():  # the compiled branch is taken: fma's stand-in raises
        with pytest.raises(NotImplementedError, match="ms_deform_attn_forward"):
            _forward(attn, inputs, claims_cuda=True)
    monkeypatch.setattr(hooks, "compiled_ops_missing", lambda: True)
    assert use_pytorch_deform_attn() is True
    patched = _forward(attn, inputs, claims_cuda=True)
    (grad,) = torch.autograd.grad(patched.sum(), inputs["query"])
    assert patched.shape == (2, 5, 16)
    assert torch.equal(patched, reference) and torch.equal(grad, grad_ref)
    assert reference.abs().max() > 0.1  # not a degenerate all-zero comparison


def test_the_fallback_is_mmcv_function_on_random_inputs(logged, monkeypatch):
    monkeypatch.setattr(hooks, "compiled_ops_missing", lambda: True)
    use_pytorch_deform_attn()
    g = torch.Generator().manual_seed(3)
    shapes = torch.tensor([[5, 7], [3, 4], [1, 2]])
    start = torch.tensor([0, 35, 47])
    value = torch.randn(2, 49, 4, 8, generator=g)
    loc = torch.rand(2, 6, 4, 3, 2, 2, generator=g)
    weights = torch.rand(2, 6, 4, 3, 2, generator=g)
    out = msda.MultiScaleDeformableAttnFunction.apply(value, shapes, start, loc, weights, 64)
    ref = msda.multi_scale_deformable_attn_pytorch(value, shapes, loc, weights)
    assert out.shape == (2, 6, 32) and torch.equal(out, ref)
    # an independent check of one output: bilinear sampling at a pixel centre is the pixel
    loc_c = torch.zeros_like(loc)
    loc_c[..., 0] = (2 + 0.5) / 7  # x of column 2 on level 0 (width 7)
    loc_c[..., 1] = (1 + 0.5) / 5  # y of row 1 (height 5)
    w_c = torch.zeros_like(weights)
    w_c[:, :, :, 0, 0] = 1.0  # all weight on level 0, point 0
    out_c = msda.MultiScaleDeformableAttnFunction.apply(value, shapes, start, loc_c, w_c, 64)
    pixel = value[:, 1 * 7 + 2]  # (bs, heads, dims)
    assert torch.allclose(out_c, pixel.reshape(2, 1, 32).expand(2, 6, 32), atol=1e-6)


def test_one_warning_line_and_only_once(logged, monkeypatch):
    monkeypatch.setattr(hooks, "compiled_ops_missing", lambda: True)
    assert use_pytorch_deform_attn() is True
    assert use_pytorch_deform_attn() is False
    ((msg, level),) = logged
    assert level == logging.WARNING and "\n" not in msg
    assert DEFORM_ATTN_COST in msg and "--require-compiled-ops" in msg


def test_no_patch_when_mmcv_has_compiled_ops(logged, monkeypatch):
    monkeypatch.setattr(hooks, "compiled_ops_missing", lambda: False)
    original = msda.MultiScaleDeformableAttnFunction
    with pytest.raises(RuntimeError, match="has compiled ops"):
        use_pytorch_deform_attn()
    assert msda.MultiScaleDeformableAttnFunction is original and logged == []


def test_an_mmcv_without_the_pytorch_function_is_named(logged, monkeypatch):
    monkeypatch.delattr(msda, "multi_scale_deformable_attn_pytorch")
    with pytest.raises(RuntimeError, match="multi_scale_deform_attn.py has no .* mmcv-lite==2.1.0"):
        use_pytorch_deform_attn()
    assert logged == []
