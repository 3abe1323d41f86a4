"""Painting many masks into one (H, W) index map with bounded memory (for the mask panels).

A panel colours each pixel by one mask covering it (the smallest, the last in painting order).
Decoding all K masks of an image first takes K x H x W bytes, 14 GB for 1,200 masks on a 12 MP
photo; :func:`paint_masks` decodes at most :data:`PAINT_BUDGET_BYTES` of masks at a time and
keeps only the (H, W) index map, so its memory is a small multiple of H x W.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fma.io.masks.records import decode_rle

__all__ = ["PAINT_BUDGET_BYTES", "dense_source", "paint_masks", "rle_source"]

#: Bytes of decoded masks held at once while painting.
PAINT_BUDGET_BYTES = 128 * 2**20

#: ``source(indices) -> (len(indices), H * W) bool``: the masks with those indices.
MaskSource = Callable[[np.ndarray], np.ndarray]


def rle_source(rles: Sequence[dict[str, Any]], height: int, width: int) -> MaskSource:
    """Masks decoded from COCO RLE dicts, only those asked for."""

    def source(idx: np.ndarray) -> np.ndarray:
        return decode_rle([rles[int(i)] for i in idx], height, width).reshape(len(idx), -1)

    return source


def dense_source(masks: np.ndarray) -> MaskSource:
    """Masks taken from a (K, H, W) bool stack already in memory."""
    masks = np.asarray(masks, dtype=bool)
    flat = masks.reshape(masks.shape[0], int(np.prod(masks.shape[1:])))
    return lambda idx: flat[idx]


def paint_masks(
    source: MaskSource,
    order: np.ndarray,
    height: int,
    width: int,
    *,
    budget_bytes: int = PAINT_BUDGET_BYTES,
) -> np.ndarray:
    """Paint masks in ``order``; each pixel keeps the last mask painted over it.

    Args:
        source: gives the masks of a batch of indices (:func:`rle_source`, :func:`dense_source`).
        order: (N,) int mask indices, painted first to last.
        height, width: the image size.
        budget_bytes: decoded mask bytes per batch (at least one mask per batch).

    Returns:
        (H, W) int64 index of the top mask at each pixel, -1 where no mask of ``order`` lies.
    """
    order = np.asarray(order, dtype=np.int64).reshape(-1)
    top = np.full(height * width, -1, dtype=np.int64)
    per = max(1, int(budget_bytes) // max(1, height * width))
    for s in range(0, order.size, per):
        idx = order[s : s + per]
        stack = source(idx)
        hit = stack.any(axis=0)
        last = idx.size - 1 - np.argmax(stack[::-1], axis=0)  # last mask of the batch covering
        top[hit] = idx[last[hit]]
    return top.reshape(height, width)
