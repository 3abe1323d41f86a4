"""Softmax-GradCAM on CLIP ViT tokens (method-fma 3.6, FMA-WSSS ``GradCAMCLIP.forward``).

Shape shorthand:

* ``N``: images in the batch; ``L = 1 + h*w`` tokens per image (CLS first); ``D``: token width.
* ``F``: foreground prompts; ``B``: background prompts; ``G = F + B`` (foreground first).
* ``P``: positive (image, foreground class) pairs of the batch, in row-major order of the label
  matrix (image by image, classes ascending).

For each positive pair ``(n, c)``:

1. ``p_{n,c}`` = masked softmax of the logits over the present foreground classes of image ``n``
   and all background prompts (:func:`masked_softmax`, +1e-5 in the denominator).
2. ``w_{c,d}`` = mean over patch tokens (CLS excluded) of ``d p_{n,c} / d A_{n,x,d}`` where ``A``
   is the ``ln_1`` output of the last ViT block.
3. ``CAM_c(x) = sum_d A_{n,x,d} w_{c,d}`` on the patch tokens, reshaped to ``(h, w)``; no ReLU,
   no normalisation. ``A`` is detached in this product; with ``create_graph=True`` the weights
   ``w`` keep their graph, so a loss on the CAM trains whatever the head depends on (prompts).

The model part after ``A`` is given as a *head* ``head(act_rows, img_rows) -> logits``: it maps
(M, L, D) activation rows, row ``k`` belonging to image ``img_rows[k]``, to (M, G) logits (for
CLIP: the last block re-run from ``ln_1`` with the residual of that image, patch-mean pooling,
cosine logits against fixed text features). Each row must depend only on its own activation.

Batching strategies (``batching=``), all equal to the per-pair loop up to float rounding:

* ``"func"`` (the default): the head runs once on the N images and ``torch.func.vmap`` maps
  the head's VJP over one cotangent per "slot" (the j-th positive of every image shares slot
  j), so the backward covers ``S * N`` rows, ``S`` = most positives of one image. One forward,
  one batched backward; fastest on CPU in ``benchmarks/cams.py`` (inference has batch 1, so
  ``S * N = P``). Works with ``create_graph=True`` (regular autograd over the transform).
* ``"rows"``: the head runs on one copy of image ``n``'s activation per positive pair (plus one
  row per image without positives, for the returned logits), and one ordinary backward of the
  sum of the pairs' probabilities gives every pair's gradient. ``P`` rows forward and backward:
  preferable to ``"func"`` when positive counts are very uneven across a large batch (then
  ``S * N`` is much larger than ``P``).
* ``"vmap"``: ``torch.autograd.grad(..., is_grads_batched=True)`` over the slots, as the
  original code does; PyTorch's legacy vmap has no batching rule for layer-norm / softmax
  backward and loops internally.

:func:`oracle_gradcam.softmax_gradcam_loop` (``tests/oracle_gradcam.py``) is the per-pair
reference used in tests and benchmarks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

__all__ = [
    "GradCAMOutput",
    "HeadFn",
    "masked_softmax",
    "positive_pairs",
    "softmax_gradcam",
]

#: ``head(act_rows, img_rows) -> logits``: (M, L, D) activations of images ``img_rows`` (M,)
#: to (M, G) logits; row k may depend only on ``act_rows[k]``.
HeadFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_BATCHING = ("func", "rows", "vmap")


@dataclasses.dataclass
class GradCAMOutput:
    """Result of :func:`softmax_gradcam` for one batch."""

    cam: torch.Tensor  # (P, h, w) float raw signed CAMs
    img_idx: torch.Tensor  # (P,) int64 image index of each CAM
    fg_idx: torch.Tensor  # (P,) int64 0-based foreground class index of each CAM
    logits: torch.Tensor  # (N, G) logits of the images (graph kept when the head has one)
    probs: torch.Tensor  # (N, G) masked softmax probabilities


def masked_softmax(logits: torch.Tensor, labels: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Softmax over the present foreground classes plus all background prompts.

    ``p_{n,g} = e_{n,g} m_{n,g} / (sum_g' e_{n,g'} m_{n,g'} + eps)`` with
    ``e = exp(s - max_g s)`` (max over all G logits, as the original ``MaskedSoftmax``) and
    ``m_{n,g} = labels[n, g]`` for foreground ``g < F`` and 1 for background prompts.

    Args:
        logits: (N, G) float logits, foreground prompts first.
        labels: (N, F) multi-hot (bool or 0/1) present foreground classes.
        eps: added to the denominator.

    Returns:
        (N, G) probabilities; absent foreground classes get exactly 0.
    """
    f = labels.shape[1]
    if f > logits.shape[1]:
        raise ValueError(f"labels have {f} classes but only {logits.shape[1]} logits")
    mask = torch.ones_like(logits, dtype=torch.bool)
    mask[:, :f] = labels.bool()
    e = torch.exp(logits - logits.amax(dim=1, keepdim=True)) * mask
    return e / (e.sum(dim=1, keepdim=True) + eps)


def positive_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive (image, class) pairs of a multi-hot label matrix in row-major order.

    Args:
        labels: (N, F) multi-hot labels.

    Returns:
        ``(img_idx, fg_idx)``, two (P,) int64 tensors.
    """
    img_idx, fg_idx = torch.nonzero(labels.bool(), as_tuple=True)
    return img_idx, fg_idx


def _check(act: torch.Tensor, labels: torch.Tensor, grid_size: tuple[int, int]) -> tuple[int, int]:
    if act.ndim != 3:
        raise ValueError(f"act must be (N, L, D), got shape {tuple(act.shape)}")
    if labels.ndim != 2 or labels.shape[0] != act.shape[0]:
        raise ValueError(
            f"labels must be (N, F) with N = {act.shape[0]} images, got {tuple(labels.shape)}"
        )
    h, w = int(grid_size[0]), int(grid_size[1])
    if h * w + 1 != act.shape[1]:
        raise ValueError(
            f"grid {h}x{w} needs {h * w + 1} tokens (CLS + patches), act has {act.shape[1]}"
        )
    return h, w


def _cam_from_grads(
    act: torch.Tensor, grads: torch.Tensor, img_idx: torch.Tensor, grid: tuple[int, int]
) -> torch.Tensor:
    """(P, L, D) gradients of each pair -> (P, h, w) CAMs, ``sum_d A_xd mean_x' dp/dA_x'd``."""
    weights = grads[:, 1:, :].mean(dim=1)  # (P, D)
    patches = act.detach()[img_idx, 1:, :]  # (P, h*w, D)
    cam = torch.einsum("pxd,pd->px", patches, weights)
    return cam.reshape(-1, grid[0], grid[1])


def _head_logits(head: HeadFn, rows: torch.Tensor, img_rows: torch.Tensor) -> torch.Tensor:
    logits = head(rows, img_rows)
    if logits.ndim != 2 or logits.shape[0] != rows.shape[0]:
        raise ValueError(
            f"head must return ({rows.shape[0]}, G) logits for {rows.shape[0]} rows, "
            f"got {tuple(logits.shape)}"
        )
    return logits


def softmax_gradcam(
    act: torch.Tensor,
    head: HeadFn,
    labels: torch.Tensor,
    grid_size: tuple[int, int],
    *,
    create_graph: bool = False,
    eps: float = 1e-5,
    batching: str = "func",
) -> GradCAMOutput:
    """Softmax-GradCAM of every positive class with one (batched) backward call.

    Args:
        act: (N, L, D) ``ln_1`` output of the last ViT block (used as data; detached inside).
        head: maps activation rows to logits, see :data:`HeadFn` and the module docstring.
        labels: (N, F) multi-hot present foreground classes (the positives).
        grid_size: ``(h, w)`` patch grid, ``h * w + 1 == L``.
        create_graph: keep the graph of the gradients (training): the CAM is then
            differentiable w.r.t. the head's parameters / inputs other than ``act``.
        eps: masked-softmax epsilon.
        batching: ``"func"`` (one forward, ``torch.func.vmap`` over the VJP per slot),
            ``"rows"`` (one row per positive, plain backward) or ``"vmap"``
            (``is_grads_batched`` over slots); see the module docstring.

    Returns:
        :class:`GradCAMOutput`. Without positives ``cam`` is (0, h, w) and no backward runs.
    """
    grid = _check(act, labels, grid_size)
    if batching not in _BATCHING:
        raise ValueError(f"batching must be one of {_BATCHING}, got {batching!r}")
    n = act.shape[0]
    base = act.detach()
    img_idx, fg_idx = positive_pairs(labels)
    num_pos = img_idx.numel()
    arange = torch.arange(n, device=act.device)
    counts = labels.bool().sum(dim=1)  # positives per image

    if batching == "rows":
        # Rows: one copy of image n's activation per positive pair (row-major, so image n's
        # first pair row is at starts[n]), then one row per image without positives. An
        # image's logits are read from its first row.
        starts = torch.cumsum(counts, dim=0) - counts
        no_pos = counts == 0
        img_rows = torch.cat([img_idx, arange[no_pos]])
        rows = base[img_rows].requires_grad_(True)
        all_logits = _head_logits(head, rows, img_rows)
        first = torch.where(no_pos, num_pos + torch.cumsum(no_pos.long(), 0) - 1, starts)
        logits = all_logits[first]
        probs = masked_softmax(logits, labels, eps)
        if num_pos == 0:
            return _empty(base, logits, probs, grid)
        pair_probs = masked_softmax(all_logits[:num_pos], labels[img_idx], eps)
        chosen = pair_probs[torch.arange(num_pos, device=act.device), fg_idx]
        (g,) = torch.autograd.grad(chosen.sum(), rows, create_graph=create_graph)
        grads = g[:num_pos]
    elif batching == "func":
        if num_pos == 0:
            logits = _head_logits(head, base, arange)
            return _empty(base, logits, masked_softmax(logits, labels, eps), grid)

        def probs_of(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            lg = _head_logits(head, a, arange)
            return masked_softmax(lg, labels, eps), lg

        probs, vjp_fn, logits = torch.func.vjp(probs_of, base, has_aux=True)
        slot, cot = _slot_cotangents(probs, counts, img_idx, fg_idx)
        (g,) = torch.func.vmap(vjp_fn)(cot)  # (S, N, L, D)
        grads = g[slot, img_idx]
        if not create_graph:
            grads = grads.detach()
    else:
        leaf = base.clone().requires_grad_(True)
        logits = _head_logits(head, leaf, arange)
        probs = masked_softmax(logits, labels, eps)
        if num_pos == 0:
            return _empty(base, logits, probs, grid)
        slot, grad_out = _slot_cotangents(probs, counts, img_idx, fg_idx)
        (g,) = torch.autograd.grad(
            probs,
            leaf,
            grad_outputs=grad_out,
            create_graph=create_graph,
            retain_graph=True,
            is_grads_batched=True,
        )  # (S, N, L, D)
        grads = g[slot, img_idx]
    cam = _cam_from_grads(base, grads, img_idx, grid)
    return GradCAMOutput(cam=cam, img_idx=img_idx, fg_idx=fg_idx, logits=logits, probs=probs)


def _slot_cotangents(
    probs: torch.Tensor, counts: torch.Tensor, img_idx: torch.Tensor, fg_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slot of each positive pair and the one-hot cotangents of all slots.

    The j-th positive of every image shares slot j (pairs are image-major, so a pair's slot is
    its index minus the index of its image's first pair).

    Args:
        probs: (N, G) probabilities the cotangents are for.
        counts: (N,) int64 positives per image.
        img_idx: (P,) int64 image of each pair.
        fg_idx: (P,) int64 class of each pair.

    Returns:
        ``(slot, cot)``: (P,) int64 slots and (S, N, G) cotangents, S = ``counts.max()``, with
        ``cot[slot[p], img_idx[p], fg_idx[p]] = 1``.
    """
    starts = torch.cumsum(counts, dim=0) - counts
    slot = torch.arange(img_idx.numel(), device=probs.device) - starts[img_idx]
    cot = probs.new_zeros((int(counts.max()), *probs.shape))
    cot[slot, img_idx, fg_idx] = 1.0
    return slot, cot


def _empty(
    base: torch.Tensor, logits: torch.Tensor, probs: torch.Tensor, grid: tuple[int, int]
) -> GradCAMOutput:
    empty = torch.zeros(0, dtype=torch.long, device=base.device)
    cam = base.new_zeros((0, grid[0], grid[1]))
    return GradCAMOutput(cam=cam, img_idx=empty, fg_idx=empty.clone(), logits=logits, probs=probs)
