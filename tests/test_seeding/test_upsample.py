"""The numpy CAM resize equals PyTorch's CPU bilinear kernel bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fma.seeding.sams import upsample_cam
from fma.seeding.upsample import bilinear_resize


def _torch_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0].numpy()


def _cases(seed: int, n: int, max_out: int):
    rng = np.random.default_rng(seed)
    for k in range(n):
        p, h, w = (int(v) for v in rng.integers(1, [7, 40, 40]))
        size = (int(rng.integers(1, max_out)), int(rng.integers(1, max_out)))
        x = rng.random((p, h, w), dtype=np.float32) * np.float32(10 ** rng.uniform(-3, 3))
        if k % 3 == 0:
            x = x.astype(np.float16).astype(np.float32)  # stored CAMs are float16
        if k % 2:
            x -= x.mean()
        yield x, size


@pytest.mark.parametrize("max_out", [70, 520], ids=["small-output-kernel", "generic-kernel"])
def test_equals_torch_on_random_maps(max_out: int) -> None:
    torch.set_num_threads(2)  # the module follows ATen's multi-threaded kernel choice
    for x, size in _cases(max_out, 80, max_out):
        got = bilinear_resize(x, size)
        want = _torch_resize(x, size)
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (x.shape, size)


def test_known_values_and_identity_axis() -> None:
    # 1 x 2 -> 1 x 4: source x = 0.5 * (i + 0.5) - 0.5 = [-0.25 -> 0, 0.25, 0.75, 1.25 -> 1]
    x = np.array([[[0.0, 4.0]]], dtype=np.float32)
    np.testing.assert_array_equal(bilinear_resize(x, (1, 4)), [[[0.0, 1.0, 3.0, 4.0]]])
    y = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    np.testing.assert_array_equal(bilinear_resize(y, (2, 3)), y)


def test_upsample_cam_accepts_float16_and_tensors() -> None:
    x = np.random.default_rng(0).random((2, 18, 32)).astype(np.float16)
    want = _torch_resize(x.astype(np.float32), (281, 500))
    np.testing.assert_array_equal(upsample_cam(x, (281, 500)), want)
    np.testing.assert_array_equal(upsample_cam(torch.from_numpy(x), (281, 500)), want)


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(P, h, w\)"):
        bilinear_resize(np.zeros((4, 4), np.float32), (8, 8))
    with pytest.raises(ValueError, match="positive"):
        bilinear_resize(np.zeros((1, 4, 4), np.float32), (0, 8))
