"""Mask colours for panels: one random palette, random-colour mask painting, distinct hues.

The one place that colours SAM masks for panels (the mask-level panels of the SAM stage, the
refinement panels and the seed panels use it). Colours are deterministic given ``seed``.
"""

from __future__ import annotations

import numpy as np

from fma.io.masks.paint import MaskSource, dense_source, paint_masks

__all__ = ["distinct_colors", "mask_colors", "mask_palette", "paint_mask_colors"]


def mask_palette(n: int = 255, seed: int = 0) -> np.ndarray:
    """(n, 3) uint8 random colours in 40..255 (``numpy.random.default_rng(seed)``).

    The first ``k`` rows do not depend on ``n``, so any mask count shares one palette.
    """
    rng = np.random.default_rng(seed)
    return rng.integers(40, 256, size=(n, 3), dtype=np.uint8)


def distinct_colors(k: int) -> np.ndarray:
    """(k + 1, 3) uint8 distinct-looking colours (golden-ratio hues); row 0 (no mask) is black."""
    golden = (np.arange(k) * 0.618033988749895) % 1.0
    hue = golden[:, None] * 6.0 - np.array([0.0, 2.0, 4.0])[None, :]
    rgb = np.clip(np.abs((hue + 6.0) % 6.0 - 3.0) - 1.0, 0.0, 1.0)
    rgb = np.concatenate([np.zeros((1, 3)), 0.35 + 0.65 * rgb])
    return np.round(rgb * 255.0).astype(np.uint8)


def mask_colors(masks: np.ndarray, seed: int = 0) -> np.ndarray:
    """Draw (K, H, W) bool masks in random colours: (H, W, 3) uint8.

    Each mask gets a random colour (:func:`mask_palette`); where masks overlap the smallest one
    is drawn on top (equal areas: the later mask); uncovered pixels are black.
    """
    masks = np.asarray(masks, dtype=bool)
    k, h, w = masks.shape
    areas = masks.reshape(k, h * w).sum(1)
    return paint_mask_colors(dense_source(masks), areas, h, w, seed)


def paint_mask_colors(
    source: MaskSource, areas: np.ndarray, h: int, w: int, seed: int = 0
) -> np.ndarray:
    """:func:`mask_colors` from masks decoded in batches (memory: a few H x W arrays)."""
    k = len(areas)
    out = np.zeros((h * w, 3), dtype=np.uint8)
    if k == 0:
        return out.reshape(h, w, 3)
    colors = mask_palette(k, seed)
    order = np.argsort(-np.asarray(areas), kind="stable")  # large first: the smallest on top
    top = paint_masks(source, order, h, w).reshape(-1)
    hit = top >= 0
    out[hit] = colors[top[hit]]
    return out.reshape(h, w, 3)
