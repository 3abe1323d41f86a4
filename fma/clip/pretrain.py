"""Building, tokenising for and saving a *trainable* open_clip CLIP (the demo's tiny CLIP).

:func:`fma.clip.load_clip` builds the frozen CLIP of stage I; this module is the other side:
a CLIP with random weights in train mode (:func:`create_trainable_clip`), open_clip's BPE
tokenizer (:func:`tokenize`; its vocabulary ships inside the open_clip wheel, so it works
offline), a symmetric contrastive loss with several positives per row
(:func:`contrastive_loss`) and :func:`save_clip_checkpoint`, which writes the plain state dict
that ``open_clip.create_model(name, pretrained=PATH)`` and ``load_clip`` read back with
``weights_only=True``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.tokenizer import SimpleTokenizer

from fma.io.atomic import atomic_path

__all__ = ["contrastive_loss", "create_trainable_clip", "save_clip_checkpoint", "tokenize"]


def create_trainable_clip(
    model_config: str | os.PathLike, *, quick_gelu: bool = True, seed: int = 0
) -> tuple[CLIP, str]:
    """A randomly initialised open_clip CLIP of the architecture in ``model_config``.

    Args:
        model_config: open_clip architecture JSON; its file stem becomes the model name.
        quick_gelu: QuickGELU activations (stage I loads with ``quick_gelu=True``).
        seed: torch seed of the initialisation.

    Returns:
        ``(model, model_name)``, the model in train mode with every parameter trainable.
    """
    path = Path(model_config)
    open_clip.add_model_config(path)
    torch.manual_seed(seed)
    model = open_clip.create_model(
        path.stem, pretrained=None, force_quick_gelu=quick_gelu, precision="fp32"
    )
    if not isinstance(model, CLIP):
        raise ValueError(f"{path}: expected a plain CLIP architecture, got {type(model).__name__}")
    model.train()
    return model, path.stem


def tokenize(texts: Sequence[str], context_length: int) -> torch.Tensor:
    """(N, context_length) int64 token ids of CLIP's BPE (SOS ... EOT, zero padded)."""
    return _tokenizer(int(context_length))(list(texts))


@functools.lru_cache(maxsize=4)
def _tokenizer(context_length: int) -> SimpleTokenizer:
    return SimpleTokenizer(context_length=context_length)  # reading the BPE vocab takes ~0.3 s


def contrastive_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor, same: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE with several positives per row (CLIP's loss when ``same`` is the eye).

    Args:
        image_emb: (N, E) image embeddings (normalised here).
        text_emb: (N, E) text embeddings of the N captions.
        logit_scale: scalar, the *log* of the temperature scale (CLIP's ``logit_scale``).
        same: (N, N) bool, True where caption j describes image i as well as caption i does
            (the diagonal must be True); the targets spread evenly over those entries.

    Returns:
        Scalar loss, the mean of the image->text and text->image cross entropies.
    """
    logits = logit_scale.exp() * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
    target = same.float() / same.float().sum(dim=1, keepdim=True)
    loss_i = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    loss_t = -(target.T * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    return (loss_i + loss_t) / 2


def save_clip_checkpoint(model: CLIP, path: str | os.PathLike) -> Path:
    """Write ``model``'s state dict (open_clip's checkpoint format) atomically; return the path."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path
