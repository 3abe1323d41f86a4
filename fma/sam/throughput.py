"""SAM throughput: reduced precision, SDPA attention, batched crop passes, batch sizes from memory.

Everything here leaves the fp32 path as segment-anything computes it:

* ``precision``: ``"fp32"`` (default, the paper setting) runs the model as built; ``"bf16"`` and
  ``"fp16"`` run the image encoder and the mask decoder under ``torch.autocast`` (fp16 on CUDA
  only). Image embeddings and decoder outputs are returned as float32, so thresholds, stability
  scores, upsampling and boxes stay in fp32.
* :class:`SdpaAttention`: the image encoder's attention through
  ``torch.nn.functional.scaled_dot_product_attention`` with segment-anything's decomposed
  relative-position bias as the additive mask (as pytorch-labs' segment-anything-fast does). In
  fp32 it agrees with segment-anything's attention to about 1e-6 relative, not bit for bit, so
  :func:`prepare_sam` installs it only for reduced precision.
* :func:`encode_images`: the crops of one image (resized to the long side, normalised, padded
  to the square input exactly as ``SamPredictor.set_image``) in one encoder call. A batched
  matrix product may round differently from a batch-1 one, so batching is chosen automatically
  only in reduced precision (:func:`auto_crop_batch`); fp32 runs one crop per call.
* :func:`auto_points_per_batch`: on CUDA, the prompts decoded together from the free memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "PRECISIONS",
    "SdpaAttention",
    "auto_crop_batch",
    "auto_points_per_batch",
    "autocast",
    "check_precision",
    "encode_images",
    "prepare_sam",
    "set_features",
    "use_sdpa_attention",
]

#: Precision names -> autocast dtype (None: no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
#: Bytes one point prompt needs in the decoder and the mask post-processing (fp32 upper bound
#: at a 1024 px input: the image embedding repeated per prompt, the upscaled mask features, three
#: 1024x1024 float masks and their temporaries), used by :func:`auto_points_per_batch`.
BYTES_PER_POINT = 96 << 20
#: Bytes one 1024x1024 crop needs in the ViT-H encoder under autocast with SDPA attention
#: (activations of the widest block, the relative-position bias of a global block), used by
#: :func:`auto_crop_batch`.
BYTES_PER_CROP = 3 << 30


def check_precision(precision: str, device: str | torch.device) -> None:
    """Raise ValueError for an unknown precision, or fp16 on a device other than CUDA."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise ValueError(
            f"precision='fp16' needs a CUDA device (got {str(device)!r}); on CPU use 'bf16' "
            "or 'fp32'"
        )


@contextlib.contextmanager
def autocast(precision: str, device: str | torch.device) -> Iterator[None]:
    """``torch.autocast`` to the precision's dtype on ``device``; no-op for ``fp32``."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=dtype):
        yield


class SdpaAttention(torch.nn.Module):
    """segment-anything's image-encoder ``Attention`` through fused scaled-dot-product attention.

    Shares the parameters of the module it replaces (``qkv``, ``proj``, ``rel_pos_h``,
    ``rel_pos_w``). Input and output: (B, H, W, C).
    """

    def __init__(self, attn: torch.nn.Module) -> None:
        super().__init__()
        self.num_heads = attn.num_heads
        self.scale = attn.scale
        self.qkv = attn.qkv
        self.proj = attn.proj
        self.use_rel_pos = attn.use_rel_pos
        if self.use_rel_pos:
            self.rel_pos_h = attn.rel_pos_h
            self.rel_pos_w = attn.rel_pos_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from segment_anything.modeling.image_encoder import get_rel_pos

        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, nHead, H*W, C)
        bias = None
        if self.use_rel_pos:
            r_q = q.reshape(b * self.num_heads, h, w, -1)
            rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, get_rel_pos(h, h, self.rel_pos_h))
            rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, get_rel_pos(w, w, self.rel_pos_w))
            bias = (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(
                b, self.num_heads, h * w, h * w
            )
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


def use_sdpa_attention(image_encoder: torch.nn.Module) -> int:
    """Replace the attention of every encoder block by :class:`SdpaAttention` (in place).

    Returns:
        The number of blocks changed (0 when already done).
    """
    n = 0
    for blk in getattr(image_encoder, "blocks", ()):
        if not isinstance(blk.attn, SdpaAttention):
            blk.attn = SdpaAttention(blk.attn)
            n += 1
    return n


def prepare_sam(sam: Any, precision: str) -> Any:
    """Make ``sam`` ready for ``precision``: SDPA attention in the encoder for bf16/fp16 (the
    fp32 model stays segment-anything's, byte for byte). Returns ``sam`` (changed in place)."""
    check_precision(precision, next(sam.parameters()).device)
    if precision != "fp32":
        use_sdpa_attention(sam.image_encoder)
    return sam


def encode_images(
    predictor: Any, images: Sequence[np.ndarray], precision: str = "fp32"
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Image embeddings of several images in one encoder call.

    Each image goes through the steps of ``SamPredictor.set_image`` (resize of the long side,
    normalisation, padding to the square input); the padded inputs are stacked.

    Args:
        predictor: ``segment_anything.SamPredictor``.
        images: (H_i, W_i, 3) uint8 RGB arrays.
        precision: a key of :data:`PRECISIONS`.

    Returns:
        (features, input_sizes): (N, C, h, w) float32 embeddings and the resized (H, W) of each
        image (``SamPredictor.input_size``).
    """
    model = predictor.model
    inputs, sizes = [], []
    for image in images:
        resized = predictor.transform.apply_image(image)
        t = torch.as_tensor(resized, device=predictor.device).permute(2, 0, 1).contiguous()
        sizes.append((int(t.shape[1]), int(t.shape[2])))
        inputs.append(model.preprocess(t[None]))
    with torch.no_grad(), autocast(precision, predictor.device):
        features = model.image_encoder(torch.cat(inputs))
    return features.float(), sizes


def set_features(
    predictor: Any,
    features: torch.Tensor,
    original_size: tuple[int, int],
    input_size: tuple[int, int],
) -> None:
    """Set a predictor's image state from precomputed (1, C, h, w) embeddings, as
    ``SamPredictor.set_torch_image`` leaves it."""
    predictor.reset_image()
    predictor.original_size = tuple(original_size)
    predictor.input_size = tuple(input_size)
    predictor.features = features
    predictor.is_image_set = True


def _free_cuda_bytes(device: torch.device) -> int:
    free, _ = torch.cuda.mem_get_info(device)
    # Memory the caching allocator holds but does not use is free for this process too.
    reserved = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + max(0, reserved))


def auto_points_per_batch(
    device: str | torch.device, default: int, *, free_bytes: int | None = None
) -> int:
    """Prompts decoded together: on CUDA, half the free memory over :data:`BYTES_PER_POINT`,
    rounded down to a power of two in [64, 256] (256: the FMA-WSSS GPU runs); elsewhere
    ``default``.

    Args:
        device: the model's device.
        default: the preset's value (kept on CPU).
        free_bytes: free device memory (default: measured).
    """
    dev = torch.device(device)
    if dev.type != "cuda":
        return default
    free = _free_cuda_bytes(dev) if free_bytes is None else free_bytes
    n = max(1, free // 2 // BYTES_PER_POINT)
    return int(min(256, max(64, 1 << (int(n).bit_length() - 1))))


def auto_crop_batch(
    device: str | torch.device, precision: str, n_crops: int, *, free_bytes: int | None = None
) -> int:
    """Crops per encoder call: 1 in fp32 (the batch-1 rounding is kept) and on CPU (no gain);
    on CUDA in bf16/fp16 as many of the ``n_crops`` as half the free memory holds at
    :data:`BYTES_PER_CROP` each."""
    dev = torch.device(device)
    if precision == "fp32" or dev.type != "cuda" or n_crops <= 1:
        return 1
    free = _free_cuda_bytes(dev) if free_bytes is None else free_bytes
    return int(max(1, min(n_crops, free // 2 // BYTES_PER_CROP)))
