"""Fixtures of the SAM-stage tests: tiny SAM models, synthetic images, a fake mask decoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope="session", autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_sam():
    """Tiny SAM (ViT encoder img_size 128, patch 16, one block; decoder with a one-layer
    TwoWayTransformer) from segment_anything.modeling, seed 0, masks local to the point."""
    from fma.sam.builder import build_tiny_sam

    return build_tiny_sam(seed=0)


@pytest.fixture(scope="session")
def random_sam():
    """The same tiny architecture with purely random weights (seed 0)."""
    from fma.sam.builder import build_tiny_sam

    return build_tiny_sam(seed=0, point_local=False)


def _synthetic_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8: smooth stripes plus a few flat rectangles."""
    yy, xx = np.mgrid[:h, :w]
    img = np.stack(
        [np.sin(xx / 5.0) * 127 + 128, np.cos(yy / 4.0) * 127 + 128, (xx + yy) * 2 % 255], -1
    )
    rng = np.random.default_rng(seed)
    for _ in range(4):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y0 : y0 + rng.integers(4, 20), x0 : x0 + rng.integers(4, 20)] = rng.integers(0, 255, 3)
    return img.astype(np.uint8)


def _write_images(folder: Path, n: int, size: tuple[int, int] = (48, 64)) -> list[str]:
    """n synthetic PNG images img_000.. in ``folder``; returns the ids."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        image_id = f"img_{i:03d}"
        Image.fromarray(_synthetic_image(*size, seed=i)).save(folder / f"{image_id}.png")
        ids.append(image_id)
    return ids


def _write_config(path: Path, **sam_masks: object) -> Path:
    """A config file holding ``sam_masks = dict(**sam_masks)``."""
    body = ", ".join(f"{k}={v!r}" for k, v in sam_masks.items())
    path.write_text(f"sam_masks = dict({body})\n")
    return path


@pytest.fixture(scope="session")
def synthetic_image():
    """Function (h, w, seed=0) -> (h, w, 3) uint8 test image."""
    return _synthetic_image


@pytest.fixture(scope="session")
def write_images():
    """Function (folder, n, size=(48, 64)) -> ids: writes n synthetic PNG images."""
    return _write_images


@pytest.fixture(scope="session")
def write_config():
    """Function (path, **sam_masks) -> path: writes a config with a sam_masks section."""
    return _write_config


class FakeDecoder(torch.nn.Module):
    """Stands in for ``Sam.mask_decoder``: returns fixed low-res logits and IoUs per point.

    ``low_res``: (3, h, w) logits, ``iou``: (3,) scores; every point of a batch gets them.
    """

    def __init__(self, low_res: torch.Tensor, iou: torch.Tensor) -> None:
        super().__init__()
        self.low_res = low_res.float()
        self.iou = iou.float()

    def forward(self, *, sparse_prompt_embeddings, multimask_output, **_: object):
        b = sparse_prompt_embeddings.shape[0]
        assert multimask_output
        return self.low_res.expand(b, -1, -1, -1).clone(), self.iou.expand(b, -1).clone()


@pytest.fixture()
def fake_sam(tiny_sam):
    """Factory: the tiny SAM with its mask decoder replaced by :class:`FakeDecoder`."""
    original = tiny_sam.mask_decoder

    def make(low_res: torch.Tensor, iou: torch.Tensor):
        tiny_sam.mask_decoder = FakeDecoder(low_res, iou)
        return tiny_sam

    yield make
    tiny_sam.mask_decoder = original
