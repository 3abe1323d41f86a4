"""SAMS seeding speed and memory on VOC-sized images, against a per-mask-loop reference.

For K = 50, 150 and 300 SAM-like masks on a 375x500 image (ellipses with log-uniform areas that
cover the image about 1.5 times, roughly like filtered SAM masks) and a 3-class CAM on the
24x32 patch grid, it times, on one CPU thread:

* ``sams``: :mod:`fma.seeding.sams` (steps 1-7) on the masks' runs, built once beforehand
  (the form in which the tools read mask files);
* ``loop ref``: a straightforward implementation with one Python iteration per mask (boolean
  indexing per mask for the means; a painting loop, as in the original code);
* ``rle decode``: decoding the masks from COCO RLE (:func:`fma.io.masks.records.decode_rle`), paid
  once per image before seeding and reported apart from it;
* ``matmul pool``: the mask means as a dense float32 (K, H*W) x (H*W, P) product, the
  alternative to the prefix sums over runs used by ``sams`` (pooling step only).

Times are the fastest of several calls. Peak memory is the tracemalloc peak of numpy
allocations during one ``sams`` call (the input runs are allocated before and not counted).
Run with ``python benchmarks/seeding.py`` (or call :func:`main`).
"""

from __future__ import annotations

import os
import platform
import time
import tracemalloc

import numpy as np

H, W = 375, 500
P = 3
MASK_COUNTS = (50, 150, 300)


def sam_like_masks(rng: np.random.Generator, k: int, coverage: float = 1.5) -> np.ndarray:
    """(k, H, W) bool ellipses with log-uniform areas summing to about ``coverage * H * W``."""
    areas = np.exp(rng.uniform(np.log(100), np.log(H * W / 4), k))
    areas = np.maximum(areas / areas.sum() * coverage * H * W, 100)
    yy, xx = np.mgrid[:H, :W]
    masks = np.zeros((k, H, W), bool)
    for i in range(k):
        r = np.sqrt(areas[i] / np.pi)
        aspect = rng.uniform(0.5, 2.0)
        ry, rx = r * np.sqrt(aspect), r / np.sqrt(aspect)
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        masks[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    return masks


def loop_reference(masks, cam, fg_cls, levels, gamma):
    """Per-mask loops: mean per mask, min-max, background, sort, paint mask by mask."""
    import torch
    import torch.nn.functional as F

    k = masks.shape[0]
    up = F.interpolate(torch.from_numpy(cam)[None], size=(H, W), mode="bilinear")[0]
    up = torch.clamp(up, min=0)
    lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
    f = ((up - lo) / (hi - lo + 1e-7)).numpy()
    pooled = np.zeros((k, f.shape[0]))
    for i in range(k):
        pooled[i] = f[:, masks[i]].mean(axis=1)
    score = (pooled - pooled.min(0)) / (pooled.max(0) - pooled.min(0) + 1e-7)
    labels, conf = [], []
    lut = [0, *fg_cls]
    for i in range(k):
        s = [(1 - score[i].max()) ** gamma, *score[i]]
        j = int(np.argmax(s))
        labels.append(lut[j])
        conf.append(s[j])
    seed = np.zeros((H, W), np.uint8)
    for i in sorted(range(k), key=lambda i: (levels[i], conf[i])):
        seed[masks[i]] = labels[i]
    return seed


def _time(fn, repeat: int) -> float:
    """Fastest of ``repeat`` calls after one warm-up call, in seconds (least disturbed by other
    processes on a shared machine)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    import torch

    from fma.io.masks.records import decode_rle, encode_rle
    from fma.io.masks.runs import runs_from_dense
    from fma.seeding import SamsOptions, mask_fg_scores, seed_from_scores, upsample_cam

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    fg_cls = [8, 12, 15]
    gamma = 0.7
    opts = SamsOptions(gamma=gamma)
    print(
        f"SAMS seeding, {W}x{H} image, P={P} classes, CAM 24x32, one thread "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, numpy {np.__version__})"
    )
    header = (
        f"{'K':>4} {'cover':>5} | {'sams ms':>8} {'img/s':>7} {'peak MiB':>8} | "
        f"{'loop ms':>8} {'img/s':>6} {'speedup':>7} {'same':>4} | "
        f"{'rle decode ms':>13} {'matmul pool ms':>14}"
    )
    print(header)
    print("-" * len(header))
    for k in MASK_COUNTS:
        masks = sam_like_masks(rng, k)
        levels = rng.integers(0, 3, k)
        cam = (rng.normal(size=(P, 24, 32)) + np.linspace(-1, 2, 32)).astype(np.float32)

        runs = runs_from_dense(masks, levels=levels)

        def sams(runs=runs, cam=cam):
            return seed_from_scores(runs, mask_fg_scores(cam, runs, opts), fg_cls, opts).seed

        def ref(masks=masks, levels=levels, cam=cam):
            return loop_reference(masks, cam, fg_cls, levels, gamma)

        t_sams = _time(sams, 10)
        peak = _peak_mib(sams)
        t_ref = _time(ref, 3)
        same = np.array_equal(sams(), ref())
        rles = encode_rle(masks)
        t_rle = _time(lambda rles=rles: decode_rle(rles, H, W), 5)
        f = upsample_cam(cam, (H, W)).reshape(P, -1)

        def matmul_pool(masks=masks, f=f):
            m = masks.reshape(masks.shape[0], -1).view(np.uint8).astype(np.float32)
            return (m @ f.T) / masks.reshape(masks.shape[0], -1).sum(1)[:, None]

        t_mm = _time(matmul_pool, 5)
        cover = masks.sum() / (H * W)
        match = "yes" if same else "NO"
        print(
            f"{k:>4} {cover:>5.2f} | {t_sams * 1e3:>8.1f} {1 / t_sams:>7.1f} {peak:>8.1f} | "
            f"{t_ref * 1e3:>8.1f} {1 / t_ref:>6.1f} {t_ref / t_sams:>6.1f}x {match:>4} | "
            f"{t_rle * 1e3:>13.1f} {t_mm * 1e3:>14.1f}"
        )


if __name__ == "__main__":
    main()
