"""SEPL refinement speed and peak memory on VOC-sized synthetic images.

Compares, per number of SAM masks K (default 50, 150, 300) on 375x500 images:

* ``fma``: :func:`fma.seeding.sepl.refine_pseudo_label` on the masks' runs, built in memory
  beforehand (:func:`fma.io.masks.runs.runs_from_dense`);
* ``fma + amg PNG read``: the same plus reading the masks from an amg.py folder
  (:func:`fma.io.masks.amg.read_amg_folder`, then converted to runs), i.e. the per-image cost
  of ``tools/refine_labels.py`` on such folders without the label PNG read/write;
* ``fma + fma RLE JSON read``: the same with the masks read from an fma ``sam_masks`` file
  (``<id>.json.gz``: gunzip, JSON parse, COCO RLE counts decoded into runs,
  :func:`fma.io.masks.runs.load_mask_runs`);
* ``per-mask loop``: the straightforward reference: the official merger's expressions
  (``np.sum((pre_cls == cur) * pre_cls)``, ``np.logical_or``) with an inner Python loop over
  in-memory masks; the "x loop" column is the speed-up over it;
* ``per-mask loop, tuned``: the same loop with in-place ORs and ``np.count_nonzero`` (one
  cache-friendly pass per mask and class), a stronger baseline ("x tuned" column);
* ``official loop``: the official ``max_iou_imp2`` merger re-implemented as written, re-reading
  every mask PNG from disk once per present class.

Single process, single thread; times are CPU seconds of the process (best of ``repeats``
passes), so images/s means images per second of one core. Peak memory is the tracemalloc peak
of the call (numpy buffers included, inputs excluded). Every implementation's output is
checked against ``fma``'s ("match" column).

Run: ``python benchmarks/_sepl_bench.py [--quick]``; ``run(rows)`` appends the result rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _reference_merge
import numpy as np

from fma.io.masks.amg import read_amg_folder, write_amg_folder
from fma.io.masks.records import encode_rle, make_record, save_sam_masks
from fma.io.masks.runs import load_mask_runs, runs_from_dense
from fma.seeding.sepl import refine_pseudo_label

H, W = 375, 500
NUM_CLASSES = 21
# Images with 0..5 foreground classes among the 1,464 TransCAM pseudo labels of VOC12 train.
CLASS_COUNT_FREQ = np.array([6, 957, 374, 111, 14, 2]) / 1464


def synthetic_image(k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A pseudo label and K SAM-like masks (objects and parts).

    The label holds 0-5 foreground ellipses, the number drawn with the class-count frequencies
    of the official TransCAM pseudo labels (65 % of the images have one class).

    Masks are ellipses with log-uniform radii (6 to 250 px); a third are parts placed inside
    an earlier mask, like AMG's whole / part / sub-part outputs.
    """
    rng = np.random.default_rng(seed)  # the label depends on the seed only, not on K
    yy, xx = np.mgrid[0:H, 0:W]
    label = np.zeros((H, W), np.uint8)
    n_cls = rng.choice(len(CLASS_COUNT_FREQ), p=CLASS_COUNT_FREQ)
    for c in rng.choice(np.arange(1, NUM_CLASSES), size=n_cls, replace=False):
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        ry, rx = rng.uniform(40, 150), rng.uniform(40, 200)
        label[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = c
    rng = np.random.default_rng([seed, k])
    masks = np.zeros((k, H, W), bool)
    centers = np.stack([rng.uniform(0, H, k), rng.uniform(0, W, k)], 1)
    radii = np.exp(rng.uniform(np.log(6), np.log(250), (k, 2)))
    for i in range(k):
        if i and rng.random() < 0.33:  # a part of an earlier mask
            j = int(rng.integers(0, i))
            centers[i] = centers[j] + rng.normal(0, 0.3, 2) * radii[j]
            radii[i] = radii[j] * rng.uniform(0.2, 0.6, 2)
        cy, cx = centers[i]
        ry, rx = radii[i]
        masks[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return label, masks


def per_mask_loop(label: np.ndarray, masks: np.ndarray, num_cls: int) -> np.ndarray:
    """Straightforward ``max_iou_imp2``: the official expressions on in-memory masks."""
    used = np.zeros(len(masks), bool)
    processed_mask = np.zeros_like(label)
    for i in range(1, num_cls):
        pre_cls = label == i
        if np.sum(pre_cls) == 0:
            continue
        candidates = []
        sam_mask = np.zeros_like(pre_cls)
        for k in range(len(masks)):
            if used[k]:
                continue
            cur_sam = masks[k]
            sam_mask = np.logical_or(sam_mask, cur_sam)
            inter = np.sum((pre_cls == cur_sam) * pre_cls)
            if 2 * inter - np.sum(cur_sam) > 0 or inter / np.sum(pre_cls) >= 0.85:
                candidates.append(cur_sam)
                used[k] = True
        candidates.append(np.logical_and(sam_mask == 0, pre_cls == 1))
        processed_mask[np.sum(candidates, axis=0) > 0] = i
    return processed_mask


def per_mask_loop_tuned(label: np.ndarray, masks: np.ndarray, num_classes: int) -> np.ndarray:
    """Tuned per-mask loop: in-place ORs and ``count_nonzero``, one pass per mask and class."""
    out = np.zeros_like(label)
    used = np.zeros(len(masks), bool)
    for c in range(1, num_classes):
        p = label == c
        size = int(p.sum())
        if size == 0:
            continue
        region = np.zeros_like(p)
        covered = np.zeros_like(p)
        for k in range(len(masks)):
            if used[k]:
                continue
            m = masks[k]
            covered |= m
            inter = int(np.count_nonzero(m & p))
            if 2 * inter - int(np.count_nonzero(m)) > 0 or inter / size >= 0.85:
                used[k] = True
                region |= m
        region |= p & ~covered
        out[region] = c
    return out


#: The official ``max_iou_imp2`` merger as written (every PNG decoded once per present class).
official_loop = _reference_merge.official_sepl


def _measure(
    fn: Callable[[int], np.ndarray], n: int, repeats: int
) -> tuple[float, float, list[np.ndarray]]:
    """CPU seconds per image (best of ``repeats`` passes over ``fn(0..n-1)``), peak traced MiB.

    CPU time of this process (``time.process_time``) rather than wall time, so that other
    processes sharing the machine do not count; every implementation here is single-threaded.
    """
    fn(0)  # warm-up (imports, caches)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for j in range(n):
            fn(j)
        best = min(best, (time.process_time() - t0) / n)
    outs = []
    peak = 0
    tracemalloc.start()
    for j in range(n):
        tracemalloc.reset_peak()
        outs.append(fn(j))
        peak = max(peak, tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    return best, peak / 2**20, outs


def _implementations(
    data: list[tuple[np.ndarray, np.ndarray]],
    folders: list[Path],
    n_fast: int,
    n_loop: int,
    n_official: int,
) -> list[tuple[str, Callable[[int], np.ndarray], int]]:
    runs = [runs_from_dense(masks) for _, masks in data[:n_fast]]

    def fma(j: int) -> np.ndarray:
        return refine_pseudo_label(data[j][0], runs[j], NUM_CLASSES)

    def fma_png(j: int) -> np.ndarray:
        return refine_pseudo_label(data[j][0], read_amg_folder(folders[j]).masks, NUM_CLASSES)

    def fma_json(j: int) -> np.ndarray:
        masks = load_mask_runs(folders[j].parent / f"{folders[j].name}.json.gz")
        return refine_pseudo_label(data[j][0], masks, NUM_CLASSES)

    def loop(j: int) -> np.ndarray:
        return per_mask_loop(data[j][0], data[j][1], NUM_CLASSES)

    def tuned(j: int) -> np.ndarray:
        return per_mask_loop_tuned(data[j][0], data[j][1], NUM_CLASSES)

    def official(j: int) -> np.ndarray:
        return official_loop(data[j][0], str(folders[j]), NUM_CLASSES)

    return [
        ("fma", fma, n_fast),
        ("fma + amg PNG read", fma_png, n_fast),
        ("fma + fma RLE JSON read", fma_json, n_fast),
        ("per-mask loop", loop, n_loop),
        ("per-mask loop, tuned", tuned, n_loop),
        ("official loop (PNG per class)", official, n_official),
    ]  # fmt: skip


def run(
    rows: list[dict[str, Any]] | None = None,
    *,
    mask_counts: Sequence[int] = (50, 150, 300),
    n_fast: int = 20,
    n_loop: int = 6,
    n_official: int = 2,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """Benchmark every implementation for each K; append one dict per (K, implementation).

    Row keys: ``K``, ``impl``, ``images_per_s``, ``ms_per_image``, ``peak_mib``, ``x_loop``
    (speed-up over the straightforward per-mask loop), ``x_tuned`` (over the tuned loop),
    ``match`` (output equal to ``fma``'s), ``n_images``.
    """
    rows = [] if rows is None else rows
    for k in mask_counts:
        n_img = max(n_fast, n_loop, n_official)
        data = [synthetic_image(k, seed=s) for s in range(n_img)]
        with tempfile.TemporaryDirectory() as tmp:
            folders = []
            for s, (_, masks) in enumerate(data):
                folders.append(Path(tmp) / f"img{s}")
                write_amg_folder(folders[-1], masks)
                recs = [make_record(r, area=0, bbox=[0, 0, 0, 0]) for r in encode_rle(masks)]
                gz = folders[-1].parent / f"{folders[-1].name}.json.gz"
                save_sam_masks(gz, f"img{s}", H, W, recs)
            results = {}
            for name, fn, n in _implementations(data, folders, n_fast, n_loop, n_official):
                reps = repeats if n >= n_fast else 1
                sec, peak, outs = _measure(fn, n, reps)
                want = [refine_pseudo_label(data[j][0], data[j][1], NUM_CLASSES) for j in range(n)]
                match = all(np.array_equal(a, b) for a, b in zip(outs, want, strict=True))
                results[name] = (sec, peak, match, n)
        loop_sec = results["per-mask loop"][0]
        tuned_sec = results["per-mask loop, tuned"][0]
        for name, (sec, peak, match, n) in results.items():
            rows.append(
                {
                    "K": k,
                    "impl": name,
                    "images_per_s": 1.0 / sec,
                    "ms_per_image": 1000.0 * sec,
                    "peak_mib": peak,
                    "x_loop": loop_sec / sec,
                    "x_tuned": tuned_sec / sec,
                    "match": match,
                    "n_images": n,
                }
            )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Plain-text table of :func:`run` rows."""
    head = (
        f"{'K':>4}  {'implementation':<30} {'img/s':>8} {'ms/img':>9} {'peak MiB':>9} "
        f"{'x loop':>7} {'x tuned':>8} {'match':>5} {'n':>3}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        match = "yes" if r["match"] else "NO"
        lines.append(
            f"{r['K']:>4}  {r['impl']:<30} {r['images_per_s']:>8.1f} {r['ms_per_image']:>9.1f} "
            f"{r['peak_mib']:>9.1f} {r['x_loop']:>7.1f} {r['x_tuned']:>8.1f} {match:>5} "
            f"{r['n_images']:>3}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="SEPL refinement speed (single process).")
    p.add_argument("--quick", action="store_true", help="fewer images per measurement")
    p.add_argument("--masks", type=int, nargs="+", default=[50, 150, 300], help="mask counts K")
    args = p.parse_args(argv)
    kw = {"n_fast": 5, "n_loop": 2, "n_official": 1, "repeats": 1} if args.quick else {}
    rows = run(mask_counts=args.masks, **kw)
    print(f"SEPL max_iou_imp2, {H}x{W} images, {NUM_CLASSES} classes, one process, CPU time")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
