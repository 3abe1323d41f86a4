"""Mixed precision of stage I as in FMA-WSSS: fp16 autocast with a gradient scaler on CUDA.

The original trains the prompts under ``torch.cuda.amp.autocast`` with
``GradScaler(init_scale=2.**16)`` (``cfg.amp`` in its ``configs/clip_cam/base.py``, used by
``src/tasks/train_coop/run.py``), so the CLIP logits and the second-order CAM gradients of L_act
are float16. mmengine's ``AmpOptimWrapper`` does the same but refuses to run without an
accelerator, and CPU autocast has no float16. :func:`CudaAmpOptimWrapper` therefore builds an
``AmpOptimWrapper`` (float16, the given loss scale) when CUDA is available and a plain
``OptimWrapper`` (float32) otherwise or with ``amp=False``, so one config trains on both.
"""

from __future__ import annotations

from typing import Any

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from fma.registry import OPTIM_WRAPPERS

__all__ = ["CudaAmpOptimWrapper"]


@OPTIM_WRAPPERS.register_module()
def CudaAmpOptimWrapper(  # noqa: N802  (a registry type name, used like a class)
    optimizer: torch.optim.Optimizer,
    loss_scale: str | float | dict[str, Any] = "dynamic",
    dtype: str = "float16",
    amp: bool = True,
    **kwargs: Any,
) -> OptimWrapper:
    """``AmpOptimWrapper(loss_scale, dtype)`` on CUDA, else ``OptimWrapper`` (fp32 on CPU).

    Args:
        optimizer: the built optimizer (mmengine passes it).
        loss_scale: ``AmpOptimWrapper``'s ``loss_scale`` (``"dynamic"``, a float or the
            ``GradScaler`` keyword arguments); unused without CUDA.
        dtype: autocast dtype on CUDA; unused without CUDA.
        amp: False builds the plain ``OptimWrapper`` on CUDA too (fp32 training).
        **kwargs: further ``OptimWrapper`` arguments (``accumulative_counts``, ``clip_grad``).
    """
    if amp and torch.cuda.is_available():
        return AmpOptimWrapper(optimizer=optimizer, loss_scale=loss_scale, dtype=dtype, **kwargs)
    return OptimWrapper(optimizer=optimizer, **kwargs)
