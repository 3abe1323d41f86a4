"""CLIP's frozen text tower fed with token embeddings instead of token ids (CoOp style).

Shape shorthand: ``G`` prompts, ``S`` context length (77), ``D`` text width, ``E`` embedding width.
"""

from __future__ import annotations

import torch
from open_clip.model import CLIP
from torch import nn

__all__ = ["TextEncoder"]


class TextEncoder(nn.Module):
    """``text_projection(ln_final(transformer(emb + pos))[EOT])`` of an open_clip ``CLIP``.

    The same computation as ``CLIP.encode_text`` except that the token embedding lookup is
    skipped, so learnable context vectors can be spliced in. The EOT position of each prompt is
    the argmax of its token ids (EOT has the largest id in CLIP's vocabulary).

    Args:
        clip: a model from :func:`fma.clip.load_clip` (frozen).
    """

    def __init__(self, clip: CLIP) -> None:
        super().__init__()
        if getattr(clip, "text_pool_type", "argmax") != "argmax":
            raise ValueError(
                f"only argmax (EOT) text pooling is supported, got {clip.text_pool_type!r}"
            )
        self.transformer = clip.transformer
        self.positional_embedding = clip.positional_embedding
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.register_buffer("attn_mask", clip.attn_mask, persistent=False)

    @property
    def context_length(self) -> int:
        """Number of token positions (77 for CLIP)."""
        return int(self.positional_embedding.shape[0])

    def forward(self, prompts: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """Encode prompt token embeddings.

        Args:
            prompts: (G, S, D) token embeddings (SOS, context, name, '.', EOT, padding).
            token_ids: (G, S) token ids of the prompts, used only to locate EOT.

        Returns:
            (G, E) text features (not normalised).
        """
        if prompts.ndim != 3 or token_ids.shape != prompts.shape[:2]:
            raise ValueError(
                f"prompts must be (G, S, D) and token_ids (G, S); got {tuple(prompts.shape)}, "
                f"{tuple(token_ids.shape)}"
            )
        cast = self.transformer.get_cast_dtype()
        x = prompts.to(cast) + self.positional_embedding.to(cast)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        eot = token_ids.argmax(dim=-1)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        proj = self.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj
