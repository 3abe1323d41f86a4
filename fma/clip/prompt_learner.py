"""CoOp prompt learner: learnable context vectors spliced into CLIP prompt embeddings.

Shape shorthand: ``G`` prompts (foreground names first, then background names), ``M`` context
vectors, ``S`` context length (77), ``D`` text width.

Each prompt is the tokenised string ``"X X ... X {name}."`` (``M`` placeholders); the token
embeddings of SOS and of everything after the placeholders are frozen buffers and the
placeholders are replaced by learnable vectors (method-fma 3.3, FMA-WSSS ``CoOpLearner``):

* ``class_token_position="end"``:    ``[SOS][ctx x M][name][.][EOT]``
* ``class_token_position="front"``:  ``[SOS][name][ctx x M][.][EOT]``
* ``class_token_position="middle"``: ``[SOS][ctx x M//2][name][ctx x (M - M//2)][.][EOT]``

An empty name gives ``[SOS][ctx x M][.][EOT]``, a fully learnable prompt. ``csc=True`` gives
every prompt its own context (G, M, D); otherwise one context (M, D) is shared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import torch
from open_clip.tokenizer import SimpleTokenizer
from torch import nn

__all__ = ["PromptLearner", "seed_to_int"]

_POSITIONS = ("end", "front", "middle")


def seed_to_int(seed: int | str) -> int:
    """Map an int or a string seed (e.g. the original's hash seeds) to a 63-bit int seed."""
    if isinstance(seed, bool) or not isinstance(seed, int | str):
        raise ValueError(f"seed must be an int or a str, got {seed!r}")
    if isinstance(seed, int):
        return seed
    return int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:8], "big") >> 1


class PromptLearner(nn.Module):
    """CoOp context vectors plus the frozen prompt token embeddings.

    Args:
        class_names: the G prompt names, foreground first (``""`` = fully learnable prompt).
        token_embedding: CLIP's (frozen) token embedding ``clip.token_embedding``.
        n_ctx: number of context vectors M.
        csc: class-specific contexts (G, M, D) instead of one shared (M, D).
        class_token_position: ``"end"``, ``"front"`` or ``"middle"``.
        ctx_std: contexts are drawn from N(0, ctx_std^2).
        seed: seed (int or str) of the context initialisation; independent of global RNG state.
        tokenizer: open_clip ``SimpleTokenizer`` (default: CLIP's BPE, context length 77).
        context_length: token positions S; must match the text tower.

    Attributes:
        ctx: the learnable parameter; the only entry of :meth:`state_dict`.
        token_ids: (G, S) int64 buffer, token ids of ``"X ... X {name}."`` (locates EOT).
        name_lens: number of BPE tokens of each name.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        token_embedding: nn.Embedding,
        *,
        n_ctx: int = 16,
        csc: bool = False,
        class_token_position: str = "end",
        ctx_std: float = 0.0125,
        seed: int | str = 0,
        tokenizer: Callable[..., torch.Tensor] | None = None,
        context_length: int = 77,
    ) -> None:
        super().__init__()
        if class_token_position not in _POSITIONS:
            raise ValueError(
                f"class_token_position must be one of {_POSITIONS}, got {class_token_position!r}"
            )
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
        if len(class_names) == 0:
            raise ValueError("class_names is empty")
        tok = tokenizer if tokenizer is not None else SimpleTokenizer(context_length=context_length)
        names = [str(n).replace("_", " ") for n in class_names]
        name_lens = [len(tok.encode(n)) for n in names]
        placeholder = " ".join(["X"] * n_ctx)
        if len(tok.encode(placeholder)) != n_ctx:
            raise ValueError("the tokenizer does not map each 'X' placeholder to one token")
        longest = max(name_lens)
        if 1 + n_ctx + longest + 2 > context_length:
            raise ValueError(
                f"a prompt with {n_ctx} context tokens and a {longest}-token name does not fit "
                f"in {context_length} positions; shorten the name or use fewer context vectors"
            )
        token_ids = tok([f"{placeholder} {n}." for n in names], context_length=context_length)
        token_ids = token_ids.long()

        weight = token_embedding.weight
        with torch.no_grad():
            emb = token_embedding(token_ids.to(weight.device)).float()  # (G, S, D)
        g, dim = len(names), emb.shape[-1]

        gen = torch.Generator().manual_seed(seed_to_int(seed))
        shape = (g, n_ctx, dim) if csc else (n_ctx, dim)
        self.ctx = nn.Parameter(torch.randn(shape, generator=gen) * ctx_std)

        self.register_buffer("token_prefix", emb[:, :1].clone(), persistent=False)
        self.register_buffer("token_suffix", emb[:, 1 + n_ctx :].clone(), persistent=False)
        self.register_buffer("token_ids", token_ids, persistent=False)
        self.register_buffer(
            "order", self._order(name_lens, n_ctx, class_token_position, context_length), False
        )
        self.class_names = tuple(names)
        self.name_lens = tuple(name_lens)
        self.n_ctx = n_ctx
        self.csc = csc
        self.class_token_position = class_token_position

    @staticmethod
    def _order(name_lens: Sequence[int], m: int, position: str, s: int) -> torch.Tensor:
        """(G, S) gather index from the 'end' layout [SOS][ctx][name][rest] to ``position``."""
        order = torch.arange(s).repeat(len(name_lens), 1)
        if position == "end":
            return order
        for i, n in enumerate(name_lens):
            ctx = list(range(1, 1 + m))
            name = list(range(1 + m, 1 + m + n))
            if position == "front":
                seq = name + ctx
            else:
                half = m // 2
                seq = ctx[:half] + name + ctx[half:]
            order[i, 1 : 1 + m + n] = torch.tensor(seq, dtype=torch.long)
        return order

    @property
    def num_prompts(self) -> int:
        """G, the number of prompts."""
        return len(self.class_names)

    def forward(self) -> torch.Tensor:
        """Prompt token embeddings (G, S, D), float32, differentiable w.r.t. :attr:`ctx`."""
        ctx = self.ctx
        if ctx.ndim == 2:
            ctx = ctx.unsqueeze(0).expand(self.num_prompts, -1, -1)
        prefix = self.token_prefix.to(ctx.dtype)
        suffix = self.token_suffix.to(ctx.dtype)
        prompts = torch.cat([prefix, ctx, suffix], dim=1)  # 'end' layout
        if self.class_token_position == "end":
            return prompts
        idx = self.order[:, :, None].expand(-1, -1, prompts.shape[-1])
        return torch.gather(prompts, 1, idx)
