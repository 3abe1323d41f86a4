"""Softmax-GradCAM: known answers and the batched call against the per-pair loop."""

from __future__ import annotations

import math

import pytest
import torch
from oracle_gradcam import softmax_gradcam_loop
from torch import nn

import fma  # noqa: F401  (installs the torchvision shim before anything imports it)
from fma.cam import masked_softmax, positive_pairs, softmax_gradcam


def test_masked_softmax_known_answer() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0, 0.0]])  # F = 2 fg prompts, B = 2 bg prompts
    labels = torch.tensor([[1, 0]])
    p = masked_softmax(logits, labels, eps=1e-5)
    e = [math.exp(1 - 3), 0.0, math.exp(0), math.exp(0 - 3)]
    den = sum(e) + 1e-5
    assert torch.allclose(p, torch.tensor([[v / den for v in e]]), atol=1e-7)
    assert p[0, 1] == 0.0  # absent fg class


def test_positive_pairs_row_major() -> None:
    labels = torch.tensor([[0, 1, 1], [0, 0, 0], [1, 0, 0]])
    img, fg = positive_pairs(labels)
    assert img.tolist() == [0, 0, 2]
    assert fg.tolist() == [1, 2, 0]


def test_gradcam_linear_head_known_answer() -> None:
    # logits = (mean of patch tokens of A) @ T^T: dp_c/dA_x = (1/hw) sum_g J_cg T_g for every x.
    torch.manual_seed(0)
    h, w, d = 2, 3, 4
    act = torch.randn(1, 1 + h * w, d, dtype=torch.float64)
    text = torch.randn(5, d, dtype=torch.float64)  # F = 3, B = 2

    def head(a: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return a[:, 1:].mean(1) @ text.T

    labels = torch.tensor([[1, 0, 1]])
    out = softmax_gradcam(act, head, labels, (h, w), eps=0.0)

    s = (act[:, 1:].mean(1) @ text.T)[0]
    assert torch.allclose(out.logits[0], s)
    mask = torch.tensor([1, 0, 1, 1, 1], dtype=torch.bool)
    p = torch.where(mask, torch.exp(s - s.max()), torch.zeros_like(s))
    p = p / p.sum()
    expected = []
    for c in (0, 2):
        jac = p[c] * ((torch.arange(5) == c).double() - p) * mask  # dp_c / ds_g
        weight = (jac[:, None] * text).sum(0) / (h * w)
        expected.append((act.detach()[0, 1:] @ weight).reshape(h, w))
    assert torch.allclose(out.cam, torch.stack(expected), atol=1e-12)
    for batching in ("vmap", "func"):
        vm = softmax_gradcam(act, head, labels, (h, w), eps=0.0, batching=batching)
        assert torch.allclose(vm.cam, torch.stack(expected), atol=1e-12), batching
    assert out.img_idx.tolist() == [0, 0] and out.fg_idx.tolist() == [0, 2]


class _TinyHead(nn.Module):
    """The last ViT block re-run from ln_1 plus a patch-mean embedding and cosine logits."""

    def __init__(self, d: int, num_prompts: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.text = nn.Parameter(torch.randn(num_prompts, d))

    def forward(self, x_in: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = x_in + self.attn(act, act, act, need_weights=True)[0]
        x = x + self.mlp(self.ln_2(x))
        emb = nn.functional.normalize(x[:, 1:].mean(1), dim=-1)
        return 100 * emb @ nn.functional.normalize(self.text, dim=-1).T


def _setup(labels: torch.Tensor, h: int = 3, w: int = 4, d: int = 16):
    torch.manual_seed(1)
    model = _TinyHead(d, labels.shape[1] + 3).double()
    for name, prm in model.named_parameters():
        prm.requires_grad_(name == "text")
    x_in = torch.randn(labels.shape[0], 1 + h * w, d, dtype=torch.float64)
    act = nn.functional.layer_norm(x_in, (d,))

    def head(a: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return model(x_in[rows], a)

    return model, act, head, (h, w)


@pytest.mark.parametrize(
    "labels",
    [
        [[1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0]],  # 3 slots, an image without positives
        [[0, 1, 0, 0], [1, 0, 0, 0]],  # one positive per image: single plain backward
        [[1, 1, 1, 1]],  # all classes present
    ],
)
@pytest.mark.parametrize("batching", ["func", "rows", "vmap"])
def test_batched_equals_loop(labels: list[list[int]], batching: str) -> None:
    lab = torch.tensor(labels)
    model, act, head, grid = _setup(lab)
    fast = softmax_gradcam(act, head, lab, grid, create_graph=True, batching=batching)
    ref = softmax_gradcam_loop(act, head, lab, grid, create_graph=True)
    assert fast.cam.shape == (int(lab.sum()), *grid)
    assert torch.equal(fast.img_idx, ref.img_idx) and torch.equal(fast.fg_idx, ref.fg_idx)
    scale = float(ref.cam.detach().abs().max())
    assert scale > 0
    assert torch.allclose(fast.cam, ref.cam, rtol=0, atol=1e-10 * scale)
    # Second-order path into the prompts (create_graph=True) matches too.
    assert torch.allclose(fast.logits, ref.logits) and torch.allclose(fast.probs, ref.probs)
    (g_fast,) = torch.autograd.grad(fast.cam.square().sum(), model.text, retain_graph=True)
    (g_ref,) = torch.autograd.grad(ref.cam.square().sum(), model.text)
    assert g_ref.abs().max() > 0
    assert torch.allclose(g_fast, g_ref, rtol=1e-8, atol=1e-12 * float(g_ref.abs().max()))


def test_no_graph_without_create_graph() -> None:
    lab = torch.tensor([[1, 0, 1, 0]])
    _, act, head, grid = _setup(lab)
    out = softmax_gradcam(act, head, lab, grid)
    assert not out.cam.requires_grad


def test_no_positives_returns_empty_without_backward() -> None:
    lab = torch.zeros(2, 4, dtype=torch.long)
    calls = []

    def counting_head(a: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        calls.append(a.shape[0])
        return head(a, rows)

    _, act, head, grid = _setup(lab)
    for batching in ("func", "rows", "vmap"):
        out = softmax_gradcam(act, counting_head, lab, grid, create_graph=True, batching=batching)
        assert out.cam.shape == (0, *grid)
        assert out.img_idx.numel() == 0 and out.fg_idx.numel() == 0
        assert out.logits.shape == (2, 7) and out.logits.requires_grad  # text graph kept
    assert calls == [2, 2, 2]


def test_input_errors() -> None:
    lab = torch.tensor([[1, 0, 0, 0]])
    _, act, head, _ = _setup(lab)
    with pytest.raises(ValueError, match="tokens"):
        softmax_gradcam(act, head, lab, (5, 5))
    with pytest.raises(ValueError, match="images"):
        softmax_gradcam(act, head, torch.ones(2, 4), (3, 4))
    with pytest.raises(ValueError, match="batching"):
        softmax_gradcam(act, head, lab, (3, 4), batching="loop")
    with pytest.raises(ValueError, match="head must return"):
        softmax_gradcam(act, lambda a, r: head(a, r)[:, None], lab, (3, 4))
