"""Stage I data pipeline steps (numpy + PIL, no mmcv), registered in ``fma.registry.TRANSFORMS``.

Every step is a callable ``results: dict -> dict``. Keys: ``img`` (H, W, 3) uint8 RGB, ``seed``
(H, W) uint8 label map (optional), ``img_path``, ``seed_path``, ``img_id``, ``gt_labels`` (list of
dataset class ids), ``ori_shape`` / ``img_shape`` (H, W), ``flip``.

Training order (method-fma 5): LoadImage [-> LoadSeed] -> RandomColorJitter -> RandomRescale ->
RandomCrop -> RandomFlip -> PackClsInputs. Inference (6.1): LoadImage -> ResizeToMultiple ->
PackClsInputs. Randomness uses numpy's global generator, which mmengine seeds per worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.structures import BaseDataElement
from PIL import Image

from fma.io.label_maps import read_label_map
from fma.registry import TRANSFORMS

__all__ = [
    "LoadImage",
    "LoadSeed",
    "PackClsInputs",
    "RandomColorJitter",
    "RandomCrop",
    "RandomFlip",
    "RandomRescale",
    "ResizeToMultiple",
]


def _resize(results: dict[str, Any], size_hw: tuple[int, int]) -> None:
    """Resize ``img`` (bicubic) and ``seed`` (nearest) in place to ``(H, W)``."""
    h, w = size_hw
    img = Image.fromarray(results["img"]).resize((w, h), Image.BICUBIC)
    results["img"] = np.asarray(img)
    if "seed" in results:
        seed = Image.fromarray(results["seed"]).resize((w, h), Image.NEAREST)
        results["seed"] = np.asarray(seed)
    results["img_shape"] = (h, w)


@TRANSFORMS.register_module()
class LoadImage:
    """Read ``img_path`` as an RGB uint8 array; sets ``img``, ``ori_shape``, ``img_shape``."""

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        path = results["img_path"]
        try:
            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB"))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{path}: image not found; check data_root") from exc
        results["img"] = img
        results["ori_shape"] = img.shape[:2]
        results["img_shape"] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadSeed:
    """Read ``seed_path`` (a seed / pseudo label PNG) as ``seed`` (H, W) uint8."""

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if "seed_path" not in results:
            raise KeyError("LoadSeed needs 'seed_path': set the dataset's seed_dir")
        seed = read_label_map(results["seed_path"])
        if "img" in results and seed.shape != results["img"].shape[:2]:
            raise ValueError(
                f"{results['seed_path']}: seed size {seed.shape} differs from the image "
                f"{results['img'].shape[:2]}"
            )
        results["seed"] = seed
        return results


@TRANSFORMS.register_module()
class RandomColorJitter:
    """Colour jitter: brightness, contrast, saturation, hue; each with ``prob``, random order.

    Brightness adds ``U(-brightness, brightness)``; contrast and saturation multiply the image /
    the HSV saturation by ``U(lo, hi)``; hue adds ``U(-hue, hue)`` to the 0..255 hue of PIL's HSV
    (OpenCV's ``HSV_FULL`` scale). Values are clipped to 0..255.
    """

    def __init__(
        self,
        brightness: float = 25.0,
        contrast: tuple[float, float] = (0.6, 1.4),
        saturation: tuple[float, float] = (0.5, 1.5),
        hue: float = 25.0,
        prob: float = 0.5,
    ) -> None:
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.hue, self.prob = hue, prob

    def _hsv(self, img: np.ndarray, ds: float, dh: float) -> np.ndarray:
        hsv = np.asarray(Image.fromarray(img).convert("HSV")).astype(np.float32)
        hsv[..., 1] = np.clip(hsv[..., 1] * ds, 0, 255)
        hsv[..., 0] = np.mod(hsv[..., 0] + dh, 256)
        return np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"))

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        img = results["img"]
        for op in np.random.permutation(4):
            if np.random.rand() >= self.prob:
                continue
            if op == 0:
                delta = np.random.uniform(-self.brightness, self.brightness)
                img = np.clip(img.astype(np.float32) + delta, 0, 255).astype(np.uint8)
            elif op == 1:
                alpha = np.random.uniform(*self.contrast)
                img = np.clip(img.astype(np.float32) * alpha, 0, 255).astype(np.uint8)
            elif op == 2:
                img = self._hsv(img, np.random.uniform(*self.saturation), 0.0)
            else:
                img = self._hsv(img, 1.0, np.random.uniform(-self.hue, self.hue))
        results["img"] = img
        return results


@TRANSFORMS.register_module()
class RandomRescale:
    """Rescale so the long side is ``T ~ U{low..high}``, the short side at least ``short_min``.

    ``scale = max(T / long_side, short_min / short_side)`` (FMA-WSSS ``rand_range``).
    """

    def __init__(self, low: int, high: int, short_min: int = 224) -> None:
        if not 0 < low <= high:
            raise ValueError(f"need 0 < low <= high, got {low}, {high}")
        self.low, self.high, self.short_min = low, high, short_min

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        h, w = results["img"].shape[:2]
        target = np.random.randint(self.low, self.high + 1)
        scale = max(target / max(h, w), self.short_min / min(h, w))
        size = (max(round(h * scale), 1), max(round(w * scale), 1))
        if min(size) < self.short_min:  # rounding must not undercut the crop size
            size = tuple(max(s, self.short_min) for s in size)
        _resize(results, size)
        return results


@TRANSFORMS.register_module()
class RandomCrop:
    """Random ``size x size`` crop; smaller images are padded (image 0, seed ``seed_pad``)."""

    def __init__(self, size: int = 224, img_pad: int = 0, seed_pad: int = 255) -> None:
        self.size, self.img_pad, self.seed_pad = size, img_pad, seed_pad

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        img = results["img"]
        h, w = img.shape[:2]
        s = self.size
        ph, pw = max(s - h, 0), max(s - w, 0)
        if ph or pw:
            img = np.pad(img, ((0, ph), (0, pw), (0, 0)), constant_values=self.img_pad)
            if "seed" in results:
                results["seed"] = np.pad(
                    results["seed"], ((0, ph), (0, pw)), constant_values=self.seed_pad
                )
        y = np.random.randint(0, img.shape[0] - s + 1)
        x = np.random.randint(0, img.shape[1] - s + 1)
        results["img"] = np.ascontiguousarray(img[y : y + s, x : x + s])
        if "seed" in results:
            results["seed"] = np.ascontiguousarray(results["seed"][y : y + s, x : x + s])
        results["img_shape"] = (s, s)
        return results


@TRANSFORMS.register_module()
class RandomFlip:
    """Horizontal flip with probability ``prob``; sets ``flip``."""

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        flip = bool(np.random.rand() < self.prob)
        if flip:
            results["img"] = np.ascontiguousarray(results["img"][:, ::-1])
            if "seed" in results:
                results["seed"] = np.ascontiguousarray(results["seed"][:, ::-1])
        results["flip"] = flip
        return results


@TRANSFORMS.register_module()
class ResizeToMultiple:
    """Resize (bicubic) so both sides are the next multiple of ``divisor`` (method-fma 6.1)."""

    def __init__(self, divisor: int = 16) -> None:
        self.divisor = divisor

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        h, w = results["img"].shape[:2]
        d = self.divisor
        size = (-(-h // d) * d, -(-w // d) * d)
        if size != (h, w):
            _resize(results, size)
        return results


@TRANSFORMS.register_module()
class PackClsInputs:
    """Pack ``img`` as a (3, H, W) uint8 tensor and a ``BaseDataElement`` data sample.

    The data sample holds ``gt_labels`` (int64 dataset class ids), ``seed`` ((H, W) int64) when
    loaded, and the ``meta_keys`` found in ``results`` as metainfo.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = (
            "img_id", "img_path", "ori_shape", "img_shape", "flip", "gt_path",
        ),
    ) -> None:  # fmt: skip
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        img = np.ascontiguousarray(results["img"].transpose(2, 0, 1))
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        sample.gt_labels = torch.as_tensor(list(results.get("gt_labels", [])), dtype=torch.long)
        if "seed" in results:
            sample.seed = torch.from_numpy(np.asarray(results["seed"]).astype(np.int64))
        return {"inputs": torch.from_numpy(img), "data_samples": sample}
