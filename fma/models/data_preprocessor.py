"""CLIP input normalisation for stage I (an mmengine ``ImgDataPreprocessor``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import ImgDataPreprocessor

from fma.registry import MODELS

__all__ = ["CLIP_MEAN", "CLIP_STD", "CLIPDataPreprocessor"]

#: CLIP's RGB normalisation (method-fma 3.1), in 0..1 units.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@MODELS.register_module()
class CLIPDataPreprocessor(ImgDataPreprocessor):
    """Stack RGB uint8 (3, H, W) images into a float batch normalised with CLIP's mean / std.

    Images of one batch must have the same size: padding would shift the patch grid against the
    image and corrupt the CAMs, so a mixed-size batch raises (CAM inference uses batch size 1).

    Args:
        mean: per-channel mean in 0..1 units (CLIP's by default).
        std: per-channel std in 0..1 units.
        non_blocking: asynchronous host-to-device copies.
    """

    def __init__(
        self,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        non_blocking: bool = False,
    ) -> None:
        super().__init__(
            mean=[255.0 * m for m in mean],
            std=[255.0 * s for s in std],
            pad_size_divisor=1,
            non_blocking=non_blocking,
        )

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        """Normalise and stack ``data["inputs"]``; see the class docstring."""
        inputs = data.get("inputs")
        if isinstance(inputs, list | tuple) and inputs:
            sizes = {tuple(t.shape[-2:]) for t in inputs if isinstance(t, torch.Tensor)}
            if len(sizes) > 1:
                raise ValueError(
                    f"a batch holds images of different sizes {sorted(sizes)}; use batch_size=1 "
                    "for full-image CAM inference, or crop training images to one size"
                )
        return super().forward(data, training)
