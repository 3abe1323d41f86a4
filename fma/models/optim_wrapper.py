"""Mixed precision of stage I as in FMA-WSSS: fp16 autocast with a gradient scaler on CUDA.

The original trains the prompts under ``torch.cuda.amp.autocast`` with
``GradScaler(init_scale=2.**16)`` (``cfg.amp`` in its ``configs/clip_cam/base.py``, used by
``src/tasks/train_coop/run.py``), so the CLIP logits and the second-order CAM gradients of L_act
are float16. mmengine's ``AmpOptimWrapper`` does the same but refuses to run without an
accelerator, and CPU autocast has no float16. :func:`CudaAmpOptimWrapper` therefore builds an
``AmpOptimWrapper`` (float16, the given loss scale) when CUDA is available and a plain
``OptimWrapper`` (float32) otherwise or with ``amp=False``, so one config trains on both.

:class:`Bf16AmpOptimWrapper` is the bfloat16 mixed precision of ``tools/train.py --amp bf16``
(any stage, stage II included): mmengine's ``AmpOptimWrapper`` with ``cast_dtype`` bfloat16,
built on CUDA and on the CPU alike (CPU autocast supports bfloat16), without loss scaling
(bfloat16 has float32's exponent range, so gradients do not underflow as in float16).
"""

from __future__ import annotations

from typing import Any

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from fma.registry import OPTIM_WRAPPERS

__all__ = ["Bf16AmpOptimWrapper", "CudaAmpOptimWrapper"]


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


@OPTIM_WRAPPERS.register_module()
class Bf16AmpOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` with bfloat16 autocast, on CUDA or the CPU, unscaled.

    ``optim_context`` (inherited) runs the forward under ``autocast(dtype=torch.bfloat16)`` on
    the current device; the loss scaler is a disabled ``GradScaler`` (``backward`` and ``step``
    pass through, its state dict is empty), so gradients are those of the bfloat16 forward.
    ``AmpOptimWrapper.__init__`` is skipped because it refuses to build without an accelerator.

    Args:
        dtype: must be ``"bfloat16"`` (or ``torch.bfloat16``); present so that a config written
            for ``AmpOptimWrapper`` (``dtype=...``) reads the same.
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``accumulative_counts``,
            ``clip_grad``).

    Raises:
        ValueError: another ``dtype``.
    """

    def __init__(self, dtype: str | torch.dtype = "bfloat16", **kwargs: Any) -> None:
        if dtype not in ("bfloat16", torch.bfloat16):
            raise ValueError(f"Bf16AmpOptimWrapper casts to bfloat16 only, got dtype={dtype!r}")
        kwargs.pop("loss_scale", None)  # no scaling in bfloat16
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler("cuda", enabled=False)
        self.cast_dtype = torch.bfloat16
