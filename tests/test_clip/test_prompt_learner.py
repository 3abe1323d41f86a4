"""CoOp prompt learner: layouts against the original per-class construction, init, gradients."""

from __future__ import annotations

import pytest
import torch
from open_clip.tokenizer import SimpleTokenizer

from fma.clip import PromptLearner, TextEncoder, seed_to_int

NAMES = ["aeroplane", "person with clothes,people,human", "", "tvmonitor screen"]


def _original_layout(pl: PromptLearner) -> torch.Tensor:
    """FMA-WSSS ``CoOpLearner.forward`` (per-class concatenation) for the same buffers."""
    ctx = pl.ctx if pl.ctx.ndim == 3 else pl.ctx.unsqueeze(0).expand(pl.num_prompts, -1, -1)
    pre, suf, m = pl.token_prefix, pl.token_suffix, pl.n_ctx
    out = []
    for i, n in enumerate(pl.name_lens):
        name, rest = suf[i : i + 1, :n], suf[i : i + 1, n:]
        c = ctx[i : i + 1]
        if pl.class_token_position == "end":
            parts = [pre[i : i + 1], c, suf[i : i + 1]]
        elif pl.class_token_position == "front":
            parts = [pre[i : i + 1], name, c, rest]
        else:
            parts = [pre[i : i + 1], c[:, : m // 2], name, c[:, m // 2 :], rest]
        out.append(torch.cat(parts, dim=1))
    return torch.cat(out)


@pytest.mark.parametrize("position", ["end", "front", "middle"])
@pytest.mark.parametrize("csc", [False, True])
def test_layout_matches_original(tiny_clip, position: str, csc: bool) -> None:
    pl = PromptLearner(
        NAMES, tiny_clip.token_embedding, n_ctx=4, csc=csc, class_token_position=position
    )
    prompts = pl()
    assert prompts.shape == (4, 77, 32)
    assert torch.equal(prompts, _original_layout(pl))
    assert pl.ctx.shape == ((4, 4, 32) if csc else (4, 32))


def test_end_layout_known_tokens(tiny_clip) -> None:
    pl = PromptLearner(NAMES, tiny_clip.token_embedding, n_ctx=3)
    ids = SimpleTokenizer()([f"X X X {n}." for n in NAMES])
    assert torch.equal(pl.token_ids, ids)
    assert pl.name_lens[0] == 2 and pl.name_lens[2] == 0  # "aero" "plane"
    emb = tiny_clip.token_embedding(ids)
    prompts = pl().detach()
    assert torch.equal(prompts[:, 1:4], pl.ctx.detach().expand(4, 3, 32))
    assert torch.equal(prompts[:, :1], emb[:, :1]) and torch.equal(prompts[:, 4:], emb[:, 4:])
    # empty name: [SOS][ctx][.][EOT] in both layouts
    front = PromptLearner(NAMES, tiny_clip.token_embedding, n_ctx=3, class_token_position="front")
    assert torch.equal(front()[2], prompts[2])


def test_placeholder_context_reproduces_encode_text(tiny_clip) -> None:
    pl = PromptLearner(NAMES, tiny_clip.token_embedding, n_ctx=5)
    x_emb = tiny_clip.token_embedding(SimpleTokenizer()("X"))[0, 1]
    with torch.no_grad():
        pl.ctx.copy_(x_emb.expand(5, -1))
        got = TextEncoder(tiny_clip)(pl(), pl.token_ids)
        want = tiny_clip.encode_text(pl.token_ids)
    assert torch.allclose(got, want, atol=1e-6)


def test_init_seed_std_and_state_dict(tiny_clip) -> None:
    a = PromptLearner(NAMES, tiny_clip.token_embedding, n_ctx=16, ctx_std=0.015, seed="seed")
    b = PromptLearner(NAMES, tiny_clip.token_embedding, n_ctx=16, ctx_std=0.015, seed="seed")
    c = PromptLearner(NAMES, tiny_clip.token_embedding, n_ctx=16, ctx_std=0.015, seed=1)
    assert torch.equal(a.ctx, b.ctx) and not torch.equal(a.ctx, c.ctx)
    assert abs(float(a.ctx.detach().std()) - 0.015) < 0.003
    assert abs(float(a.ctx.detach().mean())) < 0.003
    assert list(a.state_dict()) == ["ctx"]
    assert seed_to_int(7) == 7 and seed_to_int("a") == seed_to_int("a") != seed_to_int("b")


def test_gradient_reaches_context(tiny_clip) -> None:
    pl = PromptLearner(NAMES, tiny_clip.token_embedding, n_ctx=4, csc=True,
                       class_token_position="front")  # fmt: skip
    feats = TextEncoder(tiny_clip)(pl(), pl.token_ids)
    feats[1].sum().backward()
    assert pl.ctx.grad[1].abs().sum() > 0
    assert torch.equal(pl.ctx.grad[0], torch.zeros_like(pl.ctx.grad[0]))  # class-specific


def test_errors(tiny_clip) -> None:
    with pytest.raises(ValueError, match="class_token_position"):
        PromptLearner(NAMES, tiny_clip.token_embedding, class_token_position="start")
    with pytest.raises(ValueError, match="does not fit"):
        PromptLearner(["word " * 70], tiny_clip.token_embedding)
    with pytest.raises(ValueError, match="seed"):
        seed_to_int(1.5)  # type: ignore[arg-type]
