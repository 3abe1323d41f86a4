"""Softmax-GradCAM on the tiny open_clip model: batched = per-pair loop, prompts get gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from oracle_gradcam import softmax_gradcam_loop

from fma.cam import softmax_gradcam
from fma.clip import CLIPImageEncoder, PromptLearner, TextEncoder

NAMES = ["cat", "dog", "bird avian", "ground", "sky"]  # F = 3 foreground, B = 2 background


def _head(clip, images):
    enc, text = CLIPImageEncoder(clip.visual), TextEncoder(clip)
    pl = PromptLearner(NAMES, clip.token_embedding, n_ctx=4, seed=0, ctx_std=0.5)
    feats = enc.forward_features(images)
    txt = F.normalize(text(pl(), pl.token_ids), dim=-1)

    def head(act, rows):
        x_out, _ = enc.last_block(feats.x_in[rows], act)
        return clip.logit_scale.exp() * F.normalize(enc.pool(x_out), dim=-1) @ txt.T

    return pl, feats, head


@pytest.mark.parametrize("batching", ["func", "rows", "vmap"])
def test_batched_gradcam_equals_loop_on_clip(tiny_clip, batching: str) -> None:
    images = torch.randn(3, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[1, 1, 1], [0, 0, 0], [0, 1, 0]])
    pl, feats, head = _head(tiny_clip, images)
    fast = softmax_gradcam(
        feats.act, head, labels, feats.grid, create_graph=True, batching=batching
    )
    ref = softmax_gradcam_loop(feats.act, head, labels, feats.grid, create_graph=True)
    assert fast.cam.shape == (4, 4, 6)
    scale = float(ref.cam.detach().abs().max())
    assert scale > 0
    assert torch.allclose(fast.cam, ref.cam, atol=1e-5 * scale)
    assert torch.allclose(fast.logits, ref.logits, atol=1e-4) and fast.logits.requires_grad
    (g_fast,) = torch.autograd.grad(fast.cam.square().sum(), pl.ctx, retain_graph=True)
    (g_ref,) = torch.autograd.grad(ref.cam.square().sum(), pl.ctx)
    assert g_ref.abs().max() > 0
    assert torch.allclose(g_fast, g_ref, atol=1e-4 * float(g_ref.abs().max()))
