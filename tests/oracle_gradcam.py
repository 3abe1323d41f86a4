"""The per-pair oracle of Softmax-GradCAM for tests and benchmarks.

:func:`softmax_gradcam_loop` takes one backward call per positive (image, class) pair, the most
direct reading of the method; ``fma.cam.softmax_gradcam`` computes the same CAMs with batched
backward calls and is checked against it. Import as ``from oracle_gradcam import ...``
(``tests/`` is on ``sys.path`` through the rootdir conftest; benchmarks add it themselves).
"""

from __future__ import annotations

import torch

from fma.cam.gradcam import (
    GradCAMOutput,
    HeadFn,
    _cam_from_grads,
    _check,
    _empty,
    _head_logits,
    masked_softmax,
    positive_pairs,
)

__all__ = ["softmax_gradcam_loop"]


def softmax_gradcam_loop(
    act: torch.Tensor,
    head: HeadFn,
    labels: torch.Tensor,
    grid_size: tuple[int, int],
    *,
    create_graph: bool = False,
    eps: float = 1e-5,
) -> GradCAMOutput:
    """Reference implementation of :func:`softmax_gradcam`: one backward call per positive pair.

    Same arguments and result as :func:`softmax_gradcam`; slower, used to check it.
    """
    grid = _check(act, labels, grid_size)
    n = act.shape[0]
    leaf = act.detach().clone().requires_grad_(True)
    logits = _head_logits(head, leaf, torch.arange(n, device=act.device))
    probs = masked_softmax(logits, labels, eps)
    img_idx, fg_idx = positive_pairs(labels)
    if img_idx.numel() == 0:
        return _empty(leaf.detach(), logits, probs, grid)
    grads = []
    for i, c in zip(img_idx.tolist(), fg_idx.tolist(), strict=True):
        (g,) = torch.autograd.grad(probs[i, c], leaf, create_graph=create_graph, retain_graph=True)
        grads.append(g[i])
    cam = _cam_from_grads(leaf, torch.stack(grads), img_idx, grid)
    return GradCAMOutput(cam=cam, img_idx=img_idx, fg_idx=fg_idx, logits=logits, probs=probs)
