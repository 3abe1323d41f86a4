"""CLIP image tower wrapper: equality with open_clip's own forward, attention, loading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fma.clip import CLIPImageEncoder, load_clip
from fma.clip.weights import ClipWeightsError


def _hook_outputs(modules):
    store = []
    handles = [m.register_forward_hook(lambda _m, _i, out: store.append(out)) for m in modules]
    return store, handles


def test_last_block_rerun_equals_open_clip_forward(tiny_clip) -> None:
    enc = CLIPImageEncoder(tiny_clip.visual)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    store, handles = _hook_outputs([tiny_clip.visual.transformer.resblocks[-1]])
    with torch.no_grad():
        tiny_clip.encode_image(images)
    for h in handles:
        h.remove()
    ref = store[0]  # (N, L, D) output of open_clip's last block

    feats = enc.forward_features(images)
    assert feats.grid == (4, 4) and feats.act.requires_grad and feats.act.is_leaf
    x_out, _ = enc.last_block(feats.x_in, feats.act)
    assert torch.allclose(x_out, ref, atol=1e-5)
    # embedding = mean over patch tokens of ln_post(x) @ proj (CLS not used)
    want = (tiny_clip.visual.ln_post(ref[:, 1:]) @ tiny_clip.visual.proj).mean(1)
    assert torch.allclose(enc.pool(x_out), want, atol=1e-5)
    # the embedding is differentiable w.r.t. the ln_1 activation
    (g,) = torch.autograd.grad(enc.pool(x_out).sum(), feats.act)
    assert g.abs().sum() > 0


def test_attention_maps_are_head_averaged_patch_blocks(tiny_clip) -> None:
    enc = CLIPImageEncoder(tiny_clip.visual)
    images = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    blocks = tiny_clip.visual.transformer.resblocks
    store, handles = _hook_outputs([b.ln_1 for b in blocks])
    out = enc(images, att_layers=2)
    for h in handles:
        h.remove()
    ref = []
    with torch.no_grad():
        for blk, y in zip(blocks, store[:2], strict=True):
            _, w = blk.attn(y, y, y, need_weights=True, average_attn_weights=True)
            ref.append(w[:, 1:, 1:])
    assert out["att"].shape == (1, 24, 24)
    assert torch.allclose(out["att"], (ref[0] + ref[1]) / 2, atol=1e-6)
    only_last = enc(images, att_layers=1)["att"]
    assert torch.allclose(only_last, ref[1], atol=1e-6)
    assert "att" not in enc(images)


def test_positional_embedding_interpolation(tiny_clip) -> None:
    enc = CLIPImageEncoder(tiny_clip.visual)
    pos = tiny_clip.visual.positional_embedding
    assert enc.positional_embedding((4, 4)) is pos
    with torch.no_grad():
        saved = pos.detach().clone()
        ramp = torch.arange(4.0).repeat(4)  # value = column index, row-major 4x4 grid
        pos[1:] = ramp[:, None].expand(16, pos.shape[1])
        got = enc.positional_embedding((3, 8))
        pos.copy_(saved)
    assert got.shape == (25, pos.shape[1])
    assert torch.equal(got[0], saved[0])  # CLS position kept
    grid = got[1:, 0].reshape(3, 8)
    want_row = F.interpolate(ramp[:4].view(1, 1, 1, 4), size=(1, 8), mode="bilinear")[0, 0, 0]
    assert torch.allclose(grid, want_row.expand(3, 8))  # rows equal: layout is row-major (h, w)
    assert (grid[0, 1:] >= grid[0, :-1]).all()


def test_input_must_be_patch_aligned(tiny_clip) -> None:
    enc = CLIPImageEncoder(tiny_clip.visual)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        enc.forward_features(torch.zeros(1, 3, 60, 64))


def test_load_weights_file_by_path(tiny_clip, tmp_path) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(tiny_clip.state_dict(), path)
    loaded = load_clip("tiny_clip", pretrained=str(path))
    ref = tiny_clip.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert not any(p.requires_grad for p in loaded.parameters())
    assert not loaded.training


class _NotAllowed:
    pass


def test_load_rejects_pickled_objects(tiny_clip, tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": tiny_clip.state_dict(), "extra": _NotAllowed()}, path)
    with pytest.raises(ClipWeightsError, match="pickled Python objects") as err:
        load_clip("tiny_clip", pretrained=path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_weights_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_clip("tiny_clip", pretrained=str(tmp_path / "nope.pt"))
