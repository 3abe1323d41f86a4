"""Bilinear resize of CAMs in numpy, equal bit for bit to PyTorch's CPU kernel.

``torch.nn.functional.interpolate(x, size, mode="bilinear", align_corners=False)`` on float32
CPU tensors is what the authors' code upsamples CAMs with (method-fma section 9.1). Seeding
needs nothing else from torch, and importing torch costs about 3 CPU seconds per process, so
this module computes the same numbers with numpy:

- Per axis, ATen's ``compute_source_index_and_lambda``: ``scale = float32(n_in) / n_out``; the
  source coordinate ``scale * (i + 0.5) - 0.5`` rounded once to float32 (the kernel is
  compiled with fused multiply-adds), clamped at 0; ``i0 = min(floor(src), n_in - 1)``,
  ``i1 = i0 + (i0 < n_in - 1)``, ``l1 = clip(src - i0, 0, 1)``, ``l0 = 1 - l1`` in float32.
  An axis whose size does not change keeps index ``i`` with weights (1, 0).
- Outputs with ``H + W > 128`` (ATen's generic kernel): the width pass
  ``t = fma(x[i0], l0, x[i1] * l1)``, then the same along the height.
- Outputs with ``H + W <= 128`` (ATen's vectorised kernel): the four corner weights
  ``w_ab = lh_a * lw_b`` in float32 and ``fma(x11, w11, fma(x10, w10, fma(x00, w00, x01 * w01)))``.

A fused multiply-add is computed in float64 and rounded to float32: the product of two float32
numbers is exact in float64, the sum is rounded twice, which differs from a true fma only when
the float64 sum lands exactly halfway between two float32 numbers (about once in 2^29 sums; a
one-ulp difference of one CAM value). The tests compare with ``F.interpolate`` over random
shapes and values. PyTorch also takes the four-term kernel for three-channel inputs when it
runs on one thread; this module always follows the multi-threaded choice, so a seed no longer
depends on the thread count (the two kernels differ in the last bit of a few values).
"""

from __future__ import annotations

import numpy as np

__all__ = ["bilinear_resize"]

_SMALL_OUTPUT = 128  # ATen: H_out + W_out <= 128 selects the vectorised kernel


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1) int64 source indices and (l0, l1) float32 weights of the n_out output samples."""
    if n_in == n_out:
        i = np.arange(n_out, dtype=np.int64)
        return i, i, np.ones(n_out, np.float32), np.zeros(n_out, np.float32)
    scale = float(np.float32(n_in) / np.float32(n_out))
    src = np.maximum(scale * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5, 0.0)
    src = src.astype(np.float32)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    l1 = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1))
    i1 = i0 + (i0 < n_in - 1)
    return i0, i1, np.float32(1) - l1, l1


def _fma(x: np.ndarray, w: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """float32 ``x * w + acc`` with one rounding of the product-sum (see the module docstring)."""
    out = x.astype(np.float64)
    out *= w
    out += acc
    return out.astype(np.float32)


def bilinear_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (P, h, w) float32 maps to (P, H, W) like ``F.interpolate(..., "bilinear")``.

    Args:
        x: (P, h, w) float32 array (other dtypes are converted to float32 first).
        size: (H, W), both >= 1.

    Returns:
        (P, H, W) float32 array, bit-identical to PyTorch's CPU result with
        ``align_corners=False`` (see the module docstring for the two exceptions).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"expected (P, h, w) maps, got shape {x.shape}")
    H, W = int(size[0]), int(size[1])
    if H < 1 or W < 1:
        raise ValueError(f"output size must be positive, got {(H, W)}")
    y0, y1, a0, a1 = _axis(x.shape[1], H)
    x0, x1, b0, b1 = _axis(x.shape[2], W)
    if H + W <= _SMALL_OUTPUT:
        wa0, wa1 = a0[:, None], a1[:, None]
        rows0, rows1 = x[:, y0], x[:, y1]
        out = _fma(rows0[:, :, x0], wa0 * b0, rows0[:, :, x1] * (wa0 * b1))
        out = _fma(rows1[:, :, x0], wa1 * b0, out)
        return _fma(rows1[:, :, x1], wa1 * b1, out)
    t = _fma(x[:, :, x0], b0, x[:, :, x1] * b1)  # (P, h, W): the width pass on the input rows
    low = np.take(t, y1, axis=1)
    low *= a1[:, None]
    out = np.take(t.astype(np.float64), y0, axis=1)  # (P, H, W): the height pass
    out *= a0[:, None]
    out += low
    return out.astype(np.float32)
