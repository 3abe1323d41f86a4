"""CAM post-processing: resizing, normalisation, multi-scale/flip fusion and CAM scoring.

Shape shorthand used in this module:

* ``K``: number of CAMs of one image (one per present foreground class).
* ``h, w``: CAM (patch-grid) size; ``H, W``: target (image or label) size.
* ``C``: number of dataset classes including background (class 0).

All functions are pure: they return new tensors, run on the device of their inputs and never
read globals. Tie-breaking in :func:`cam_to_label` is documented there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "align_size",
    "bg_power_scores",
    "cam_to_label",
    "cam_to_score",
    "fuse_cams",
    "min_max_normalize",
    "resize_cams",
    "scaled_aligned_size",
]


def align_size(height: int, width: int, divisor: int = 16) -> tuple[int, int]:
    """Round both sides **up** to a multiple of ``divisor`` (method-fma 6.1).

    Args:
        height: image height in pixels (> 0).
        width: image width in pixels (> 0).
        divisor: the ViT patch size.

    Returns:
        ``(H', W')``, e.g. ``(375, 500) -> (384, 512)``.
    """
    if height <= 0 or width <= 0 or divisor <= 0:
        raise ValueError(f"align_size needs positive sizes, got {(height, width, divisor)}")
    return -(-height // divisor) * divisor, -(-width // divisor) * divisor


def scaled_aligned_size(
    height: int, width: int, scale: float, divisor: int = 16
) -> tuple[int, int]:
    """Size of an input rescaled by ``scale``, sides rounded **up** to multiples of ``divisor``.

    ``ceil(scale * side / divisor) * divisor`` (CLIP-ES's multi-scale sizes), computed as
    :func:`align_size` of ``ceil(scale * side)``; products within 1e-9 of an integer count as
    that integer (``2.2 * 400 = 880.0000000000001`` gives 880, not 896).

    Args:
        height: input height in pixels (> 0).
        width: input width in pixels (> 0).
        scale: scale factor (> 0).
        divisor: the ViT patch size.

    Returns:
        ``(H', W')``, e.g. ``(384, 512), 1.5 -> (576, 768)`` and ``(48, 80), 0.5 -> (32, 48)``.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")

    def up(side: int) -> int:
        v = scale * side
        return max(1, round(v) if abs(v - round(v)) < 1e-9 else math.ceil(v))

    return align_size(up(height), up(width), divisor)


def resize_cams(cam: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize a stack of maps with ``align_corners=False``.

    Args:
        cam: (K, h, w) float tensor.
        size: target ``(H, W)``.
        mode: ``"bilinear"`` (default, as the original) or ``"nearest"``/``"bicubic"``.

    Returns:
        (K, H, W) tensor, same dtype; the input itself when the size already matches.
    """
    if cam.ndim != 3:
        raise ValueError(f"cam must be (K, h, w), got shape {tuple(cam.shape)}")
    size = (int(size[0]), int(size[1]))
    if tuple(cam.shape[1:]) == size:
        return cam
    if cam.shape[0] == 0:
        return cam.new_zeros((0, *size))
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(cam[None], size=size, mode=mode, **kwargs)[0]


def min_max_normalize(
    x: torch.Tensor, eps: float = 1e-7, clamp_min: float | None = 0.0
) -> torch.Tensor:
    """Per-map min-max normalisation over the last two dimensions.

    ``y = (x' - min x') / (max x' - min x' + eps)`` with ``x' = max(x, clamp_min)`` (no clamp when
    ``clamp_min`` is None). This is the original's ``min_max_norm(..., thresh=0., eps=1e-7)``.

    Args:
        x: (..., h, w) float tensor.
        eps: added to the range.
        clamp_min: lower clamp applied first (0 = ReLU).

    Returns:
        Tensor of the same shape with values in [0, 1).
    """
    if clamp_min is not None:
        x = x.clamp_min(clamp_min)
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo + eps)


def cam_to_score(
    cam: torch.Tensor, size: tuple[int, int] | None = None, eps: float = 1e-7
) -> torch.Tensor:
    """CAM to foreground score: optional bilinear resize first, then min-max of ReLU(CAM).

    Args:
        cam: (K, h, w) raw (signed) CAM.
        size: ``(H, W)`` to resize to before normalising; None keeps the CAM size.
        eps: normalisation epsilon (1e-7 as the original).

    Returns:
        (K, H, W) float scores in [0, 1).
    """
    if size is not None:
        cam = resize_cams(cam, size)
    return min_max_normalize(cam, eps=eps, clamp_min=0.0)


def bg_power_scores(score: torch.Tensor, gamma: float) -> torch.Tensor:
    """Prepend the background score ``(1 - max_k score_k) ** gamma`` (method-fma 6.4).

    Args:
        score: (K, H, W) foreground scores in [0, 1].
        gamma: background exponent (> 0).

    Returns:
        (K + 1, H, W): row 0 is background, rows 1..K the input scores. With K = 0 the
        background score is 1 everywhere.
    """
    if score.ndim != 3:
        raise ValueError(f"score must be (K, H, W), got shape {tuple(score.shape)}")
    if score.shape[0] == 0:
        bg = score.new_ones((1, *score.shape[1:]))
    else:
        bg = (1.0 - score.amax(dim=0, keepdim=True)).clamp_min(0.0) ** gamma
    return torch.cat([bg, score], dim=0)


def cam_to_label(
    cam: torch.Tensor,
    fg_cls: torch.Tensor,
    size: tuple[int, int] | None = None,
    gamma: float = 1.0,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Label map from CAMs by scoring (6.4): resize, ReLU, min-max, bg power, argmax.

    Args:
        cam: (K, h, w) raw CAM of one image.
        fg_cls: (K,) integer dataset class ids (1..C-1) of the CAM rows.
        size: output ``(H, W)`` (the ground-truth size); None keeps the CAM size.
        gamma: background exponent.
        eps: normalisation epsilon.

    Returns:
        (H, W) int64 label map with values in ``{0} | set(fg_cls)``. Ties go to the lowest row
        (background first, then the CAM order), as ``torch.argmax`` returns the first maximum.
    """
    fg_cls = torch.as_tensor(fg_cls, device=cam.device).reshape(-1).long()
    if fg_cls.numel() != cam.shape[0]:
        raise ValueError(f"fg_cls has {fg_cls.numel()} entries for {cam.shape[0]} CAMs")
    score = bg_power_scores(cam_to_score(cam, size, eps), gamma)
    idx = score.argmax(dim=0)
    lut = torch.cat([fg_cls.new_zeros(1), fg_cls])
    return lut[idx]


def fuse_cams(
    cams: Sequence[torch.Tensor],
    size: tuple[int, int],
    flipped: Sequence[bool] | None = None,
    reduce: str = "sum",
    relu: bool = False,
) -> torch.Tensor:
    """Fuse CAMs of several scales / horizontal flips of one image.

    Each input is resized bilinearly to ``size``; inputs computed on a horizontally flipped image
    are flipped back; then they are summed (``reduce="sum"``, CLIP-ES style) or averaged.

    Args:
        cams: sequence of (K, h_i, w_i) tensors with the same K (same classes, same order).
        size: common output ``(H, W)``.
        flipped: per input, whether it came from a flipped image (default: none flipped).
        reduce: ``"sum"`` or ``"mean"``.
        relu: clamp each input at 0 before fusing.

    Returns:
        (K, H, W) fused CAM.
    """
    if len(cams) == 0:
        raise ValueError("fuse_cams needs at least one CAM")
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
    flipped = [False] * len(cams) if flipped is None else list(flipped)
    if len(flipped) != len(cams):
        raise ValueError(f"{len(flipped)} flip flags for {len(cams)} CAMs")
    k = cams[0].shape[0]
    out = cams[0].new_zeros((k, int(size[0]), int(size[1])))
    for cam, flip in zip(cams, flipped, strict=True):
        if cam.ndim != 3 or cam.shape[0] != k:
            raise ValueError(f"every CAM must be ({k}, h, w); got {tuple(cam.shape)}")
        x = cam.clamp_min(0.0) if relu else cam
        x = resize_cams(x, size)
        if flip:
            x = x.flip(-1)
        out = out + x
    return out / len(cams) if reduce == "mean" else out
