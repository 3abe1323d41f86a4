"""Class-aware attention affinity (CAA) refinement of CAMs (method-fma 7, CLIP-ES style).

Shape shorthand: ``K`` CAMs of one image on an ``h x w`` patch grid, ``T = h * w`` patch tokens.

Steps (FMA-WSSS ``src/libs/seeding/aff``):

1. ``score_k = min-max(ReLU(CAM_k))`` per class (:func:`fma.cam.postprocess.cam_to_score`).
2. Affinity from attention (:func:`attention_to_affinity`): ``n`` Sinkhorn-like rounds of
   "divide by column sums, then by row sums", then symmetrise ``A = (W + W^T) / 2``.
3. Box mask per class (:func:`box_mask`): quantise ``u = floor(255 * score)`` (uint8), binarise
   ``u > int(tau * max u)``, take the bounding box of every contour and fill the boxes.
4. Propagation (:func:`propagate`): ``R_k(i) = sum_j (A^t)_{ij} B_k(j) X_k(j)`` with ``X_k`` the
   score or the raw CAM. The result is not renormalised.

Contours without OpenCV. The original calls ``cv2.findContours(RETR_TREE)`` and fills the
bounding rectangle of every contour. Border following traces 8-connected foreground components;
each component has one outer contour whose bounding rectangle is the component's bounding box,
and RETR_TREE also returns hole contours, which run along foreground pixels of the same
component and so have bounding rectangles inside that box. The union of the filled rectangles
therefore equals the union of the bounding boxes of the 8-connected components, which
:func:`component_boxes` computes with pooling on tensors (tested against OpenCV and scipy).

Box-end quirk: the original writes a box as ``[x, y, min(x+w, W-1), min(y+h, H-1)]`` and fills
``[y0:y1, x0:x1]`` (end-exclusive), so a box touching the right or bottom border loses its last
column or row and the last row/column of the grid is never covered. ``box_end_exclusive=True``
(the default) reproduces this; ``False`` fills the true bounding boxes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fma.cam.postprocess import cam_to_score

__all__ = [
    "attention_to_affinity",
    "box_mask",
    "caa_refine",
    "component_boxes",
    "propagate",
    "quantize_threshold",
]

_APPLY_TO = ("score", "cam")


def attention_to_affinity(att: torch.Tensor, n_iters: int = 1) -> torch.Tensor:
    """Sinkhorn-like normalisation of an attention matrix, then symmetrisation.

    Args:
        att: (..., T, T) non-negative attention (patch-to-patch block, CLS removed). float16
            input is computed in float32.
        n_iters: rounds of ``W /= W.sum(-2)`` (column sums) followed by ``W /= W.sum(-1)`` (row
            sums); 0 only symmetrises.

    Returns:
        (..., T, T) symmetric affinity ``(W + W^T) / 2``.
    """
    if att.ndim < 2 or att.shape[-1] != att.shape[-2]:
        raise ValueError(f"att must be (..., T, T), got shape {tuple(att.shape)}")
    if n_iters < 0:
        raise ValueError(f"n_iters must be >= 0, got {n_iters}")
    w = att.float() if att.dtype in (torch.float16, torch.bfloat16) else att
    for _ in range(n_iters):
        w = w / w.sum(dim=-2, keepdim=True)
        w = w / w.sum(dim=-1, keepdim=True)
    return (w + w.transpose(-2, -1)) / 2


def quantize_threshold(score: torch.Tensor, thresh: float) -> torch.Tensor:
    """Binarise scores as the original: ``u = uint8(255 * s)``, keep ``u > int(thresh * max u)``.

    Args:
        score: (K, h, w) scores in [0, 1].
        thresh: relative threshold tau.

    Returns:
        (K, h, w) bool.
    """
    u = (score * 255).to(torch.uint8)  # truncation, as numpy's astype(np.uint8)
    u_max = u.flatten(1).amax(dim=1).to(torch.float64)
    thr = torch.floor(u_max * float(thresh))  # int(thresh * max u) for non-negative values
    return u.to(torch.float64) > thr[:, None, None]


def component_boxes(binary: torch.Tensor) -> torch.Tensor:
    """Bounding box of the 8-connected component of every foreground pixel.

    Iterates 3x3 max-pooling restricted to the foreground until nothing changes (at most the
    longest geodesic path of a component).

    Args:
        binary: (K, h, w) bool foreground maps.

    Returns:
        (K, 4, h, w) float tensor ``(y_min, x_min, y_max, x_max)`` (inclusive ends) per pixel;
        undefined (very negative / positive sentinels) on background pixels.
    """
    if binary.ndim != 3:
        raise ValueError(f"binary must be (K, h, w), got shape {tuple(binary.shape)}")
    k, h, w = binary.shape
    dev = binary.device
    big = float(h + w + 1)
    ys = torch.arange(h, device=dev, dtype=torch.float32)[:, None].expand(h, w)
    xs = torch.arange(w, device=dev, dtype=torch.float32)[None, :].expand(h, w)
    # Max-pooling of (-y, -x, y, x) gives (-y_min, -x_min, y_max, x_max) of the neighbourhood.
    coords = torch.stack([-ys, -xs, ys, xs])[None].expand(k, 4, h, w)
    fg = binary[:, None].expand(k, 4, h, w)
    state = torch.where(fg, coords, torch.full_like(coords, -big))
    while True:
        pooled = F.max_pool2d(state, kernel_size=3, stride=1, padding=1)
        new = torch.where(fg, pooled, state)
        if torch.equal(new, state):
            break
        state = new
    sign = torch.tensor([-1.0, -1.0, 1.0, 1.0], device=dev)[None, :, None, None]
    return state * sign


def box_mask(score: torch.Tensor, thresh: float, box_end_exclusive: bool = True) -> torch.Tensor:
    """Union of the bounding boxes of the thresholded score's contours, per class.

    Args:
        score: (K, h, w) scores in [0, 1] (min-max normalised ReLU CAM).
        thresh: relative threshold tau (see :func:`quantize_threshold`).
        box_end_exclusive: reproduce the original's clipped, end-exclusive box ends (the last
            row and column are never covered); False fills the full bounding boxes.

    Returns:
        (K, h, w) bool mask; all False for a class without any pixel above the threshold.
    """
    if score.ndim != 3:
        raise ValueError(f"score must be (K, h, w), got shape {tuple(score.shape)}")
    k, h, w = score.shape
    binary = quantize_threshold(score, thresh)
    boxes = component_boxes(binary)  # (K, 4, h, w)
    kk, yy, xx = torch.nonzero(binary, as_tuple=True)
    y0 = boxes[kk, 0, yy, xx].long()
    x0 = boxes[kk, 1, yy, xx].long()
    y1 = boxes[kk, 2, yy, xx].long() + 1  # exclusive ends
    x1 = boxes[kk, 3, yy, xx].long() + 1
    if box_end_exclusive:
        y1 = y1.clamp_max(h - 1)
        x1 = x1.clamp_max(w - 1)
    # 2-D difference array: +1 at (y0, x0) and (y1, x1), -1 at (y0, x1) and (y1, x0); the
    # cumulative sum then counts the boxes covering each cell.
    diff = torch.zeros(k, h + 1, w + 1, dtype=torch.int32, device=score.device)
    ones = torch.ones_like(y0, dtype=torch.int32)
    diff.index_put_((kk, y0, x0), ones, accumulate=True)
    diff.index_put_((kk, y1, x1), ones, accumulate=True)
    diff.index_put_((kk, y0, x1), -ones, accumulate=True)
    diff.index_put_((kk, y1, x0), -ones, accumulate=True)
    cover = diff.cumsum(dim=1).cumsum(dim=2)[:, :h, :w]
    return cover > 0


def propagate(
    aff: torch.Tensor, mask: torch.Tensor, x: torch.Tensor, power: int = 2
) -> torch.Tensor:
    """``R_k(i) = sum_j (A^t)_{ij} M_k(j) X_k(j)`` (masked affinity propagation).

    Args:
        aff: (T, T) affinity.
        mask: (K, h, w) bool or float source mask ``M_k`` (box mask).
        x: (K, h, w) values to propagate (score or raw CAM).
        power: matrix power ``t`` of the affinity (>= 1).

    Returns:
        (K, h, w) propagated values (not renormalised).
    """
    k, h, w = x.shape
    if aff.shape != (h * w, h * w):
        raise ValueError(
            f"aff must be ({h * w}, {h * w}) for a {h}x{w} grid, got {tuple(aff.shape)}"
        )
    if power < 1:
        raise ValueError(f"power must be >= 1, got {power}")
    a_t = torch.linalg.matrix_power(aff.to(x.dtype), power)
    src = (x * mask.to(x.dtype)).reshape(k, h * w)  # (K, T)
    return (src @ a_t.transpose(0, 1)).reshape(k, h, w)


def caa_refine(
    cam: torch.Tensor,
    att: torch.Tensor,
    *,
    sinkhorn_iters: int = 1,
    power: int = 2,
    box_thresh: float = 0.4,
    apply_to: str = "score",
    box_end_exclusive: bool = True,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Refine the CAMs of one image with its attention (method-fma 7).

    Settings of the paper's runs: VOC coarse ``(1, 2, 0.4, "score")``, VOC fine
    ``(1, 2, 0.5, "cam")``, COCO coarse ``(1, 2, 0.6, "cam")`` as
    ``(sinkhorn_iters, power, box_thresh, apply_to)``.

    Args:
        cam: (K, h, w) raw CAM at patch resolution.
        att: (T, T) attention, T = h * w (mean of the last layers, patch block).
        sinkhorn_iters: normalisation rounds in :func:`attention_to_affinity`.
        power: affinity matrix power ``t``.
        box_thresh: relative threshold tau of the box masks.
        apply_to: ``"score"`` (min-max ReLU CAM) or ``"cam"`` (raw signed CAM).
        box_end_exclusive: see :func:`box_mask`.
        eps: min-max epsilon of the score.

    Returns:
        (K, h, w) refined CAM (float32 or the CAM's dtype), not renormalised.
    """
    if apply_to not in _APPLY_TO:
        raise ValueError(f"apply_to must be one of {_APPLY_TO}, got {apply_to!r}")
    if cam.ndim != 3:
        raise ValueError(f"cam must be (K, h, w), got shape {tuple(cam.shape)}")
    if cam.dtype in (torch.float16, torch.bfloat16):
        cam = cam.float()
    score = cam_to_score(cam, eps=eps)
    if cam.shape[0] == 0:
        return cam.clone()
    aff = attention_to_affinity(att, sinkhorn_iters)
    mask = box_mask(score.detach(), box_thresh, box_end_exclusive)
    return propagate(aff, mask, score if apply_to == "score" else cam, power)
