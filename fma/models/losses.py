"""Stage I losses: multi-label contrastive loss (L_cls) and CAM activation loss (L_act).

Pure functions on tensors plus thin :class:`torch.nn.Module` wrappers; torch only (no mmengine,
no open_clip), so they can be tested and reused without the training framework.

Shape shorthand: ``N`` images, ``F`` foreground classes, ``P`` positive (image, class) pairs,
``h x w`` CAM grid, ``H x W`` label (crop) size.

Degenerate batches (no valid anchor, no positive pair, only ignored pixels) return a zero that
stays connected to the inputs' graph (``x.sum() * 0``), so ``loss.backward()`` always works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CAMActivationLoss",
    "MultiLabelContrastiveLoss",
    "cam_activation_loss",
    "multilabel_contrastive_loss",
]

_CLS_REDUCTIONS = ("pos_mean", "sample_mean")
_ACT_REDUCTIONS = ("all", "fg-bg", "fg-bg-per-pos")
_ACT_TYPES = ("l1", "l2")


def multilabel_contrastive_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    reduction: str = "pos_mean",
    scale: float | None = None,
) -> torch.Tensor:
    """Multi-label contrastive loss L_cls (method-fma 4.1, FMA-WSSS ``MultiLabelCLLoss``).

    For every valid image ``n`` (at least one positive and one negative class) and positive
    class ``p``: ``l_{n,p} = -log( e^{S_np} / (e^{S_np} + sum_{q negative} e^{S_nq}) )``,
    computed with log-sum-exp.

    Args:
        logits: (N, F) foreground logits ``S`` (100 * cosine; background prompts not involved).
        labels: (N, F) multi-hot labels (bool or 0/1).
        reduction: ``"pos_mean"`` (mean over all positive pairs of valid images, the paper's
            setting) or ``"sample_mean"`` (mean per image, then over valid images).
        scale: optional factor applied to the logits first (None = the original's gamma None).

    Returns:
        Scalar loss; 0 (graph-connected) when no image is a valid anchor.
    """
    if logits.shape != labels.shape or logits.ndim != 2:
        raise ValueError(
            f"logits and labels must both be (N, F); got {tuple(logits.shape)}, "
            f"{tuple(labels.shape)}"
        )
    if reduction not in _CLS_REDUCTIONS:
        raise ValueError(f"reduction must be one of {_CLS_REDUCTIONS}, got {reduction!r}")
    pos = labels.bool()
    valid = pos.any(dim=1) & (~pos).any(dim=1)  # (N,)
    if not bool(valid.any()):
        return logits.sum() * 0
    s = logits * scale if scale is not None else logits
    neg_lse = torch.logsumexp(s.masked_fill(pos, float("-inf")), dim=1)  # (N,)
    pos_mask = pos & valid[:, None]
    n_idx, _ = torch.nonzero(pos_mask, as_tuple=True)
    s_pos = s[pos_mask]  # (P,) row-major, aligned with n_idx
    loss_pos = torch.logaddexp(s_pos, neg_lse[n_idx]) - s_pos
    if reduction == "pos_mean":
        return loss_pos.mean()
    per_img = pos_mask.sum(dim=1).to(loss_pos.dtype)[n_idx]
    return (loss_pos / per_img).sum() / valid.sum()


def cam_activation_loss(
    cam: torch.Tensor,
    img_idx: torch.Tensor,
    cls_ids: torch.Tensor,
    seeds: torch.Tensor,
    *,
    ignore_index: int = 255,
    detach_max: bool = True,
    bg_thresh: float = 0.0,
    loss_type: str = "l1",
    reduce: str = "all",
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CAM activation loss L_act (method-fma 4.2, FMA-WSSS ``CAMIntensityLoss``).

    Per positive pair ``p = (n, c)``, with the raw CAM bilinearly upsampled to the seed size:
    ``F_p = {x: L_n(x) = c}``, ``B_p = {x: L_n(x) not in {c, ignore}}``,
    ``m_p = max(0, max_{F_p} CAM_p)`` (detached by default; 0 for an empty ``F_p``),
    foreground term ``|m_p - CAM_p(x)|`` on ``F_p``, background term
    ``max(CAM_p(x), bg_thresh) - bg_thresh`` on ``B_p`` (squared and halved for ``l2``).

    Reductions (the paper uses ``"all"``): ``"all"`` divides both sums by
    ``N = sum_p |F_p| + |B_p|``; ``"fg-bg"`` gives ``0.5 * sum / (|F| + eps)`` and
    ``0.5 * sum / (|B| + eps)`` over the batch; ``"fg-bg-per-pos"`` does that per pair, then
    averages over pairs.

    Args:
        cam: (P, h, w) raw signed CAMs of the positive pairs.
        img_idx: (P,) int64 image index of each CAM into ``seeds``.
        cls_ids: (P,) int64 label value of each CAM's class in the seed maps (dataset class id,
            i.e. 0-based foreground index + 1).
        seeds: (N, H, W) integer seed / pseudo label maps (0 = background).
        ignore_index: label excluded from both terms.
        detach_max: stop the gradient through ``m_p``.
        bg_thresh: activations below it are not penalised on the background.
        loss_type: ``"l1"`` or ``"l2"``.
        reduce: ``"all"``, ``"fg-bg"`` or ``"fg-bg-per-pos"``.
        eps: denominator epsilon of the ``fg-bg`` reductions.

    Returns:
        ``(loss_fg, loss_bg)`` scalars. Zero (graph-connected) without pairs or, for ``"all"``,
        when every pixel is ignored (the original divides 0 by 0 there).
    """
    if loss_type not in _ACT_TYPES:
        raise ValueError(f"loss_type must be one of {_ACT_TYPES}, got {loss_type!r}")
    if reduce not in _ACT_REDUCTIONS:
        raise ValueError(f"reduce must be one of {_ACT_REDUCTIONS}, got {reduce!r}")
    if cam.ndim != 3 or seeds.ndim != 3:
        raise ValueError(
            f"cam must be (P, h, w) and seeds (N, H, W); got {tuple(cam.shape)}, "
            f"{tuple(seeds.shape)}"
        )
    num_pos = cam.shape[0]
    if img_idx.numel() != num_pos or cls_ids.numel() != num_pos:
        raise ValueError(
            f"{num_pos} CAMs but {img_idx.numel()} image indices and {cls_ids.numel()} class ids"
        )
    zero = cam.sum() * 0
    if num_pos == 0:
        return zero, zero.clone()

    if tuple(cam.shape[1:]) != tuple(seeds.shape[1:]):
        cam = F.interpolate(
            cam[:, None], size=tuple(seeds.shape[1:]), mode="bilinear", align_corners=False
        )[:, 0]
    lab = seeds[img_idx.long()]  # (P, H, W)
    fg = lab == cls_ids.reshape(-1, 1, 1).to(lab.dtype)
    bg = ~fg & (lab != ignore_index)
    fg_f, bg_f = fg.to(cam.dtype), bg.to(cam.dtype)

    max_fg = (cam * fg_f).amax(dim=(1, 2), keepdim=True).clamp_min(0.0)
    if detach_max:
        max_fg = max_fg.detach()
    fg_diff = (max_fg - cam) * fg_f
    bg_diff = (cam.clamp_min(bg_thresh) - bg_thresh) * bg_f
    if loss_type == "l1":
        fg_l, bg_l = fg_diff.abs(), bg_diff.abs()
    else:
        fg_l, bg_l = 0.5 * fg_diff.square(), 0.5 * bg_diff.square()

    fg_num, bg_num = fg_f.sum(dim=(1, 2)), bg_f.sum(dim=(1, 2))  # (P,)
    if reduce == "all":
        total = fg_num.sum() + bg_num.sum()
        if float(total) == 0.0:
            return zero, zero.clone()
        return fg_l.sum() / total, bg_l.sum() / total
    if reduce == "fg-bg":
        return (
            0.5 * fg_l.sum() / (fg_num.sum() + eps),
            0.5 * bg_l.sum() / (bg_num.sum() + eps),
        )
    fg_per = 0.5 * fg_l.sum(dim=(1, 2)) / (fg_num + eps)
    bg_per = 0.5 * bg_l.sum(dim=(1, 2)) / (bg_num + eps)
    return fg_per.mean(), bg_per.mean()


class MultiLabelContrastiveLoss(nn.Module):
    """Module wrapper of :func:`multilabel_contrastive_loss` with a loss weight."""

    def __init__(
        self, reduction: str = "pos_mean", scale: float | None = None, loss_weight: float = 1.0
    ) -> None:
        super().__init__()
        if reduction not in _CLS_REDUCTIONS:
            raise ValueError(f"reduction must be one of {_CLS_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.scale = scale
        self.loss_weight = loss_weight

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, F) logits and labels -> weighted scalar loss."""
        loss = multilabel_contrastive_loss(
            logits, labels, reduction=self.reduction, scale=self.scale
        )
        return self.loss_weight * loss


class CAMActivationLoss(nn.Module):
    """Module wrapper of :func:`cam_activation_loss` with fg / bg weights (1, 1 in the paper)."""

    def __init__(
        self,
        fg_weight: float = 1.0,
        bg_weight: float = 1.0,
        ignore_index: int = 255,
        detach_max: bool = True,
        bg_thresh: float = 0.0,
        loss_type: str = "l1",
        reduce: str = "all",
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if loss_type not in _ACT_TYPES:
            raise ValueError(f"loss_type must be one of {_ACT_TYPES}, got {loss_type!r}")
        if reduce not in _ACT_REDUCTIONS:
            raise ValueError(f"reduce must be one of {_ACT_REDUCTIONS}, got {reduce!r}")
        self.fg_weight = fg_weight
        self.bg_weight = bg_weight
        self.kwargs = dict(
            ignore_index=ignore_index,
            detach_max=detach_max,
            bg_thresh=bg_thresh,
            loss_type=loss_type,
            reduce=reduce,
            eps=eps,
        )

    def forward(
        self,
        cam: torch.Tensor,
        img_idx: torch.Tensor,
        cls_ids: torch.Tensor,
        seeds: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Weighted ``{"loss_act_fg", "loss_act_bg"}``; see :func:`cam_activation_loss`."""
        fg, bg = cam_activation_loss(cam, img_idx, cls_ids, seeds, **self.kwargs)
        return {"loss_act_fg": self.fg_weight * fg, "loss_act_bg": self.bg_weight * bg}
