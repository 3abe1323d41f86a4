"""Large images: time and peak memory of superpixel mask encoding and of the mask panels.

Each row runs in a fresh process, so its peak RSS is its own. Segments form a grid (about
9,900 of them on 4000x3000, as Felzenszwalb superpixels gave on a 12 MP photo).

Run: ``python benchmarks/large_images.py [--size 4000x3000] [--cell 35]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _grid(h: int, w: int, cell: int) -> np.ndarray:
    ys, xs = np.arange(h)[:, None] // cell, np.arange(w)[None, :] // cell
    return (ys * (w // cell + 1) + xs).astype(np.int64)


def _dense_chunked(labels: np.ndarray, chunk: int = 64) -> int:
    """The previous encoder: (chunk, H, W) bool masks through pycocotools.encode."""
    from fma.io.masks.records import encode_rle

    ids = np.unique(labels)
    n = 0
    for s in range(0, len(ids), chunk):
        n += len(encode_rle(labels[None] == ids[s : s + chunk, None, None]))
    return n


def _runs(labels: np.ndarray) -> int:
    from fma.sam.superpixels import segments_to_records

    return len(segments_to_records(labels, 0))


def _child(name: str, h: int, w: int, cell: int) -> None:
    labels = _grid(h, w, cell)
    t0 = time.perf_counter()
    n = {"dense_chunked": _dense_chunked, "runs": _runs}[name](labels)
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"name": name, "masks": n, "s": took, "peak_mb": peak}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="4000x3000", help="WxH")
    p.add_argument("--cell", type=int, default=35, help="grid cell side in pixels")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    if a.child:
        _child(a.child, h, w, a.cell)
        return
    print(f"superpixel mask encoding, {w}x{h}, grid cells of {a.cell} px")
    print(f"{'encoder':<28}{'masks':>7}{'seconds':>9}{'peak RSS MB':>13}")
    for name, label in (("dense_chunked", "dense chunks of 64 (before)"), ("runs", "runs (now)")):
        cmd = [sys.executable, __file__, "--size", a.size, "--cell", str(a.cell), "--child", name]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{label:<28}{r['masks']:>7}{r['s']:>9.1f}{r['peak_mb']:>13.0f}")


if __name__ == "__main__":
    main()
