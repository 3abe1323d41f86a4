"""Frozen CLIP ViT through open_clip: loading, and the image tower as FMA-WSSS needs it.

:func:`load_clip` builds the open_clip architecture and loads a weights file in any format of
:mod:`fma.clip.weights` (open_clip state dict, ``.safetensors``, OpenAI's TorchScript archive),
or an open_clip tag.

Shape shorthand: ``N`` images of ``H x W`` pixels (multiples of the patch size ``p``),
``h x w = H/p x W/p`` patch grid, ``L = 1 + h*w`` tokens (CLS first), ``D`` token width,
``E`` embedding width, ``T = h*w``.

What :class:`CLIPImageEncoder` adds to open_clip's ``VisionTransformer`` (method-fma 3.1-3.2,
FMA-WSSS ``GetLN1``):

* the patch part of the positional embedding is bilinearly interpolated (align_corners=False)
  from the pretraining grid to any ``h x w``; the CLS position is kept;
* head-averaged attention maps of the last ``n`` blocks, patch-to-patch block, averaged;
* the ``ln_1`` output of the last block as a leaf tensor that requires grad, and the last block
  re-run from it (its attention is computed explicitly, so the result is twice
  differentiable, which training with ``create_graph=True`` needs);
* image embedding = mean over patch tokens of ``ln_post(x) @ proj`` (the CLS token is unused).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, resize_pos_embed, resize_text_pos_embed
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import nn

from fma.clip.weights import ClipWeightsError, ClipWeightsInfo, is_weights_path, read_state_dict
from fma.io.manifest import file_sha256

__all__ = ["CLIPImageEncoder", "ClipWeightsInfo", "VisualFeatures", "load_clip"]


class _RandomInitNote(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded" warning while it is installed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")

    def __enter__(self) -> _RandomInitNote:
        logging.getLogger().addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeFilter(self)


def _fit_state_dict(
    model: CLIP, state: dict[str, torch.Tensor], path: str, fmt: str, model_name: str
) -> None:
    """Load ``state`` into ``model`` as open_clip's ``load_checkpoint`` does (positional
    embeddings resized to the model's grid and context length, ``logit_scale`` reshaped), with
    one-line errors for weights of another architecture."""
    own = model.state_dict()
    for key, value in state.items():  # float16 (OpenAI) -> the model's dtype: exact
        if key in own and value.is_floating_point() and own[key].is_floating_point():
            state[key] = value.to(own[key].dtype)
    if "logit_scale" in state and state["logit_scale"].ndim != model.logit_scale.ndim:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    with contextlib.suppress(AssertionError, RuntimeError):  # mismatches are reported below
        resize_pos_embed(state, model)
        resize_text_pos_embed(state, model)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or reshaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if reshaped:
            k = reshaped[0]
            parts.append(
                f"{len(reshaped)} of another shape (e.g. {k}: {tuple(state[k].shape)} in the "
                f"file, {tuple(own[k].shape)} in the model)"
            )
        raise ClipWeightsError(
            f"{path}: these {fmt} weights do not fit the open_clip model {model_name!r}: "
            f"{'; '.join(parts)}; check model.clip.model_name (ViT-B-16 for OpenAI's "
            "ViT-B-16.pt)"
        )
    model.load_state_dict(state, strict=True)


def load_clip(
    model_name: str = "ViT-B-16",
    pretrained: str | os.PathLike | None = "openai",
    *,
    quick_gelu: bool = True,
    cache_dir: str | None = None,
    device: str | torch.device = "cpu",
    model_config: str | os.PathLike | None = None,
) -> CLIP:
    """Build a frozen open_clip CLIP in eval mode.

    Args:
        model_name: open_clip architecture (``ViT-B-16``; tests register a tiny one with
            ``open_clip.add_model_config``).
        pretrained: a weights file in any format of :mod:`fma.clip.weights` (an open_clip state
            dict read with ``torch.load(..., weights_only=True)``, a ``.safetensors`` file, or
            OpenAI's TorchScript archive ``ViT-B-16.pt``; told apart by content), an open_clip
            tag such as ``"openai"`` (downloaded into ``cache_dir`` when the network allows),
            or None for random weights.
        quick_gelu: use QuickGELU, as OpenAI's weights require.
        cache_dir: download cache for tags.
        device: where to put the model.
        model_config: optional open_clip architecture JSON to register first (its file stem
            becomes a model name), e.g. a tiny test architecture.

    Returns:
        The open_clip ``CLIP`` in float32 with every parameter frozen (``requires_grad=False``).
        Its ``weights_info`` attribute is a :class:`ClipWeightsInfo` (file path, format and
        sha256, or the tag) for manifests.

    Raises:
        FileNotFoundError: ``pretrained`` names a file that does not exist (one line naming it
            and ``python tools/download.py clip``).
        ClipWeightsError: the file is in no accepted format, holds pickled Python objects, or
            holds weights of another architecture (one line; a ``ValueError``).
        RuntimeError: a tag could not be downloaded (the message says how to use a local file).
        ValueError: the architecture is not a plain ViT CLIP.
    """
    if model_config is not None:
        if not Path(model_config).is_file():
            raise FileNotFoundError(f"{model_config}: open_clip model config (JSON) not found")
        open_clip.add_model_config(Path(model_config))
    if isinstance(pretrained, os.PathLike):
        pretrained = os.fspath(pretrained)
    is_path = isinstance(pretrained, str) and is_weights_path(pretrained)
    state = None
    if is_path:
        state, fmt = read_state_dict(pretrained)
        info = ClipWeightsInfo(pretrained, fmt, file_sha256(pretrained))
    elif pretrained is None:
        info = ClipWeightsInfo(None, "random", None)
    else:
        info = ClipWeightsInfo(pretrained, "tag", None)
    quiet = _RandomInitNote() if is_path else contextlib.nullcontext()
    try:
        with quiet:  # the weights are loaded below: open_clip's "initialized randomly" misleads
            model = open_clip.create_model(
                model_name,
                pretrained=None if is_path else pretrained,
                force_quick_gelu=quick_gelu,
                precision="fp32",
                device=device,
                cache_dir=cache_dir,
            )
    except RuntimeError as exc:
        if isinstance(pretrained, str) and not is_path:
            raise RuntimeError(
                f"could not load CLIP {model_name!r} weights {pretrained!r} ({exc}). Without "
                "network access run `python tools/download.py clip` on any machine and pass "
                "the file: pretrained='pretrains/ViT-B-16.pt' (--clip / "
                "model.clip.pretrained)"
            ) from exc
        raise
    if not isinstance(model, CLIP) or not isinstance(model.visual, VisionTransformer):
        raise ValueError(
            f"{model_name!r} is not a ViT CLIP with open_clip's built-in text tower "
            f"(got {type(model).__name__} / {type(model.visual).__name__})"
        )
    if state is not None:
        _fit_state_dict(model, state, str(pretrained), info.format, model_name)
    model.eval()
    model.requires_grad_(False)
    model.weights_info = info
    return model


@dataclasses.dataclass
class VisualFeatures:
    """Intermediate image-tower outputs for Softmax-GradCAM."""

    x_in: torch.Tensor  # (N, L, D) input of the last block, no grad
    act: torch.Tensor  # (N, L, D) ln_1 output of the last block, a leaf that requires grad
    grid: tuple[int, int]  # (h, w) patch grid
    att: torch.Tensor | None = None  # (N, T, T) summed head-averaged attention of frozen blocks


def _attention(
    blk: ResidualAttentionBlock, q: torch.Tensor, need_weights: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Self-attention of a batch-first (N, L, D) input through ``blk.attn``."""
    batch_first = getattr(blk.attn, "batch_first", False)
    x = q if batch_first else q.transpose(0, 1)
    out, weights = blk.attn(x, x, x, need_weights=need_weights, average_attn_weights=True)
    return (out if batch_first else out.transpose(0, 1)), weights


class CLIPImageEncoder(nn.Module):
    """FMA-WSSS view of a frozen open_clip ``VisionTransformer`` (see module docstring).

    Args:
        visual: ``clip.visual`` of a model from :func:`load_clip`.
    """

    def __init__(self, visual: VisionTransformer) -> None:
        super().__init__()
        if not isinstance(visual, VisionTransformer):
            raise ValueError(
                f"expected an open_clip VisionTransformer, got {type(visual).__name__}"
            )
        if visual.attn_pool is not None or visual.proj is None:
            raise ValueError("attention-pooled or projection-less ViTs are not supported")
        blocks = visual.transformer.resblocks
        if not all(isinstance(b, ResidualAttentionBlock) for b in blocks):
            raise ValueError("only open_clip's default ResidualAttentionBlock is supported")
        self.visual = visual
        self.patch_size = tuple(int(v) for v in visual.patch_size)
        self.base_grid = tuple(int(v) for v in visual.grid_size)

    @property
    def num_layers(self) -> int:
        """Number of transformer blocks."""
        return len(self.visual.transformer.resblocks)

    def grid_of(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid of an ``height x width`` input; both must be multiples of the patch size."""
        ph, pw = self.patch_size
        if height % ph or width % pw:
            raise ValueError(
                f"input {height}x{width} is not a multiple of the patch size {ph}x{pw}; resize "
                "it first (fma.cam.align_size rounds up to a multiple of 16)"
            )
        return height // ph, width // pw

    def positional_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """(1 + h*w, D) positional embedding; patch part interpolated bilinearly if needed."""
        pos = self.visual.positional_embedding
        if tuple(grid) == self.base_grid:
            return pos
        g0, g1 = self.base_grid
        patch = pos[1:].reshape(1, g0, g1, -1).permute(0, 3, 1, 2)  # (1, D, g0, g1)
        patch = F.interpolate(patch, size=tuple(grid), mode="bilinear", align_corners=False)
        patch = patch.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
        return torch.cat([pos[:1], patch], dim=0)

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch embedding + CLS + positional embedding + ``ln_pre``: (N, L, D) and the grid."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        grid = self.grid_of(images.shape[2], images.shape[3])
        v = self.visual
        x = v.conv1(images.to(v.conv1.weight.dtype))  # (N, D, h, w)
        x = x.flatten(2).transpose(1, 2)  # (N, T, D)
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding(grid).to(x.dtype)
        return v.ln_pre(x), grid

    def forward_features(self, images: torch.Tensor, att_layers: int = 0) -> VisualFeatures:
        """Run the frozen blocks (no grad) and stop at the last block's ``ln_1``.

        Args:
            images: (N, 3, H, W) normalised images, sides multiples of the patch size.
            att_layers: average the head-averaged attention of this many last blocks (0 = none;
                the last block's own attention is added by :meth:`last_block`).

        Returns:
            :class:`VisualFeatures`; ``att`` holds the *sum* of the attention of the frozen
            blocks among the last ``att_layers`` (see :meth:`merge_attention`).
        """
        if att_layers < 0 or att_layers > self.num_layers:
            raise ValueError(f"att_layers must be in [0, {self.num_layers}], got {att_layers}")
        blocks = self.visual.transformer.resblocks
        first_att = self.num_layers - att_layers
        att_sum = None
        with torch.no_grad():
            x, grid = self.embed(images)
            for i, blk in enumerate(blocks[:-1]):
                if i >= first_att:
                    attn_out, w = _attention(blk, blk.ln_1(x), need_weights=True)
                    x = x + blk.ls_1(attn_out)
                    x = x + blk.ls_2(blk.mlp(blk.ln_2(x)))
                    w = w[:, 1:, 1:]
                    att_sum = w if att_sum is None else att_sum + w
                else:
                    x = blk(x)
            act = blocks[-1].ln_1(x)
        act = act.detach().requires_grad_(True)
        return VisualFeatures(x_in=x.detach(), act=act, grid=grid, att=att_sum)

    def last_block(
        self, x_in: torch.Tensor, act: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Re-run the last block from its ``ln_1`` output.

        ``x = x_in + attn(act); x = x + mlp(ln_2(x))`` with explicit (twice differentiable)
        attention.

        Args:
            x_in: (N, L, D) input of the last block (the residual).
            act: (N, L, D) its ``ln_1`` output.
            need_weights: also return the head-averaged attention (N, L, L), detached.

        Returns:
            ``(x_out, att)``: (N, L, D) block output and the attention or None.
        """
        blk = self.visual.transformer.resblocks[-1]
        attn_out, w = _attention(blk, act, need_weights=True)
        x = x_in + blk.ls_1(attn_out)
        x = x + blk.ls_2(blk.mlp(blk.ln_2(x)))
        return x, (w.detach() if need_weights else None)

    def merge_attention(
        self, frozen_att_sum: torch.Tensor | None, last_att: torch.Tensor | None, att_layers: int
    ) -> torch.Tensor | None:
        """Mean of the last ``att_layers`` attention maps, patch-to-patch block: (N, T, T)."""
        if att_layers == 0 or last_att is None:
            return None
        total = last_att[:, 1:, 1:]
        if frozen_att_sum is not None:
            total = total + frozen_att_sum
        return total / att_layers

    def pool(self, x_out: torch.Tensor) -> torch.Tensor:
        """Image embedding: mean over patch tokens of ``ln_post(x) @ proj``: (N, E)."""
        v = self.visual
        return (v.ln_post(x_out[:, 1:]) @ v.proj).mean(dim=1)

    def forward(self, images: torch.Tensor, att_layers: int = 0) -> dict[str, torch.Tensor]:
        """Convenience forward: features, last block and embedding in one call.

        Returns:
            dict with ``act`` (N, L, D, requires grad), ``emb`` (N, E, a function of ``act``),
            ``att`` (N, T, T) when ``att_layers > 0``, and ``grid`` as a (2,) long tensor.
        """
        feats = self.forward_features(images, att_layers)
        x_out, last_att = self.last_block(feats.x_in, feats.act, need_weights=att_layers > 0)
        out = {
            "act": feats.act,
            "emb": self.pool(x_out),
            "grid": torch.tensor(feats.grid),
        }
        att = self.merge_attention(feats.att, last_att, att_layers)
        if att is not None:
            out["att"] = att
        return out
