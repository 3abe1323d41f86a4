"""Stage I models: losses (torch only) and the mmengine prompt-learning model.

``fma.models.losses`` is importable without mmengine. The mmengine classes (``PromptCLIP``,
``CLIPDataPreprocessor``) load on first attribute access, so ``import fma.models`` stays free of
mmengine and open_clip.
"""

from __future__ import annotations

from typing import Any

from fma.models.losses import (
    CAMActivationLoss,
    MultiLabelContrastiveLoss,
    cam_activation_loss,
    multilabel_contrastive_loss,
)

__all__ = [
    "CAMActivationLoss",
    "CLIPDataPreprocessor",
    "MultiLabelContrastiveLoss",
    "PromptCLIP",
    "cam_activation_loss",
    "multilabel_contrastive_loss",
]

_LAZY = {
    "PromptCLIP": "fma.models.prompt_clip",
    "CLIPDataPreprocessor": "fma.models.data_preprocessor",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fma.models' has no attribute {name!r}")
