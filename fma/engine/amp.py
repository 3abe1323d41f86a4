"""Mixed precision of ``tools/train.py --amp {fp16,bf16}`` for any training config.

The paper's configs train stage II in float32 (the default: no ``--amp``) and stage I with the
original's float16 autocast on CUDA (``CudaAmpOptimWrapper``). ``--amp`` trades exactness for
time and memory:

* ``bf16``: :class:`fma.models.optim_wrapper.Bf16AmpOptimWrapper` (mmengine's
  ``AmpOptimWrapper``, ``cast_dtype`` bfloat16, no loss scaling), on CUDA or the CPU;
* ``fp16``: mmengine's ``AmpOptimWrapper`` with ``dtype="float16"`` and dynamic loss scaling
  (the config's ``loss_scale`` when it has one), as mmseg's ``tools/train.py --amp``; CUDA only.

The choice is recorded as the top-level ``fma_amp`` of the config (``"bf16"``/``"fp16"``), which
the Runner dumps into the work dir and stores, with the whole ``optim_wrapper``, in every
checkpoint's ``meta['cfg']``.
"""

from __future__ import annotations

from typing import Any

import fma.registry  # noqa: F401  (the "fma" scope that holds Bf16AmpOptimWrapper)

__all__ = ["AMP_CHOICES", "AmpError", "apply_amp"]

#: The values of ``--amp``.
AMP_CHOICES = ("fp16", "bf16")


class AmpError(ValueError):
    """The mixed precision asked for cannot run here (fp16 without CUDA, an unknown name)."""


def apply_amp(cfg: Any, precision: str | None, *, cuda: bool | None = None) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision ``precision`` (None: leave it as it is).

    Args:
        cfg: the loaded mmengine ``Config`` (changed in place): ``optim_wrapper.type``,
            ``dtype``, ``loss_scale`` and the top-level ``fma_amp``.
        precision: ``"bf16"``, ``"fp16"`` or None.
        cuda: whether the run has CUDA (default: ``torch.cuda.is_available()``).

    Raises:
        AmpError: ``precision`` is not one of :data:`AMP_CHOICES`, or it is ``"fp16"`` without
            CUDA (mmengine's ``AmpOptimWrapper`` refuses the CPU, whose autocast is bfloat16).
    """
    if precision is None:
        return
    if precision not in AMP_CHOICES:
        raise AmpError(f"--amp {precision}: choose one of {', '.join(AMP_CHOICES)}")
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    wrapper = cfg.optim_wrapper
    wrapper.pop("amp", None)  # CudaAmpOptimWrapper's switch, not AmpOptimWrapper's
    if precision == "bf16":
        wrapper.type = "fma.Bf16AmpOptimWrapper"
        wrapper.dtype = "bfloat16"
        wrapper.pop("loss_scale", None)
    else:
        if not cuda:
            raise AmpError("--amp fp16 needs CUDA (CPU autocast is bfloat16): use --amp bf16")
        wrapper.type = "AmpOptimWrapper"
        wrapper.dtype = "float16"
        wrapper.setdefault("loss_scale", "dynamic")
    cfg.fma_amp = precision
