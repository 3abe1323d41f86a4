"""SAM quasi-superpixels: presets, model building and the FMA mask generator.

The only package that imports ``segment_anything``; the stage run is :mod:`fma.apis.sam_masks`.
Importing :mod:`fma.sam` is cheap: the presets are plain data, and the generator, builder,
superpixel source and panels (which pull in torch, segment-anything, OpenCV or scikit-image) are
imported on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import Any

from fma.sam.presets import (
    AMG_PRESETS,
    SUPERPIXEL_PRESETS,
    AmgPreset,
    SuperpixelPreset,
    get_preset,
    get_superpixel_preset,
    list_presets,
)

__all__ = [
    "AMG_PRESETS",
    "SAM_CHECKPOINTS",
    "SUPERPIXEL_PRESETS",
    "AmgPreset",
    "FmaMaskGenerator",
    "SuperpixelGenerator",
    "SuperpixelPreset",
    "build_sam",
    "build_tiny_sam",
    "containment_filter",
    "download_checkpoint",
    "get_preset",
    "get_superpixel_preset",
    "list_presets",
    "read_image_rgb",
    "resolve_checkpoint",
]

_LAZY = {
    "SAM_CHECKPOINTS": "fma.sam.builder",
    "build_sam": "fma.sam.builder",
    "build_tiny_sam": "fma.sam.tiny",
    "download_checkpoint": "fma.sam.builder",
    "resolve_checkpoint": "fma.sam.builder",
    "FmaMaskGenerator": "fma.sam.level_masks",
    "containment_filter": "fma.sam.level_masks",
    "SuperpixelGenerator": "fma.sam.superpixels",
    "read_image_rgb": "fma.sam.show",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fma.sam' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
