"""SAM mask generation: fma's generator against segment-anything's own, on CPU with a tiny SAM.

Rows (same images, same tiny SAM ``fma.sam.builder.build_tiny_sam()``, same settings per pair):

* ``stock sam_default`` / ``fma sam_default``: segment-anything's ``SamAutomaticMaskGenerator``
  and :class:`fma.sam.generator.FmaMaskGenerator` with segment-anything's defaults;
* ``stock sam_heavy`` / ``fma sam_heavy``: the README heavy settings (the base of ``fma``);
* ``fma fma``: the final FMA setting (heavy + level offsets + containment filter).

The stock generator runs with ``output_mode="uncompressed_rle"``, as FMA-WSSS ran it. Columns:
images per second and seconds per image (wall; process CPU time in brackets),
peak resident memory of the worker process and its increase during the timed run, masks per
image, and bytes on disk per image: fma's JSON (COCO compressed RLE) and, for the same masks, a
pickle of records with uncompressed RLE (FMA-WSSS's format; written to a temporary folder only
to measure its size). ``same`` says whether the fma row's masks equal the stock row's.

Each row runs in a fresh worker process per pass (so peak memory is per row); passes go round
robin over the rows and the fastest pass of each row is kept, which damps load from other
processes on a shared machine. The tiny SAM's encoder is
negligible, so the numbers show the cost of everything around the model: upsampling, scores,
filters, NMS, RLE, cleanup. No GPU is used. Run: ``python benchmarks/sam_masks.py`` (options:
``--images N --repeats R --threads T --data-root VOC2012``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = [
    ("stock", "sam_default"),
    ("fma", "sam_default"),
    ("stock", "sam_heavy"),
    ("fma", "sam_heavy"),
    ("fma", "fma"),
]
REPO = Path(__file__).resolve().parents[1]
DEFAULT_VOC = REPO.parent / "shared" / "data" / "voc2012-mini" / "VOC2012"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _images(data_root: Path | None, n: int) -> list:
    import numpy as np
    from PIL import Image

    if data_root is not None and (data_root / "ImageSets/Segmentation/val.txt").is_file():
        ids = (data_root / "ImageSets/Segmentation/val.txt").read_text().split()[:n]
        return [
            np.asarray(Image.open(data_root / "JPEGImages" / f"{i}.jpg").convert("RGB"))
            for i in ids
        ]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:375, :500]
    out = []
    for k in range(n):
        img = np.stack([np.sin(xx / (7 + k)) * 120 + 128, np.cos(yy / 9) * 120 + 128,
                        (xx + yy) % 255], -1)  # fmt: skip
        img += rng.normal(0, 8, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _uncompressed_records(records: list[dict]) -> list[dict]:
    """The same records with segment-anything's uncompressed RLE (column-major runs)."""
    import numpy as np

    from fma.io.sam_masks import decode_rle

    out = []
    for rec in records:
        h, w = rec["segmentation"]["size"]
        m = decode_rle([rec["segmentation"]], h, w)[0].T.reshape(-1)  # column-major
        change = np.flatnonzero(m[1:] != m[:-1]) + 1
        bounds = np.concatenate([[0], change, [m.size]])
        counts = np.diff(bounds).tolist()
        if m[0]:
            counts = [0, *counts]
        out.append({**rec, "segmentation": {"size": [h, w], "counts": counts}})
    return out


def worker(spec: dict) -> dict:
    import fma  # noqa: F401, I001  (first: installs the torchvision hooks)
    import torch

    torch.set_num_threads(spec["threads"])
    from segment_anything import SamAutomaticMaskGenerator

    from fma.io.sam_masks import save_sam_masks
    from fma.sam.builder import build_tiny_sam
    from fma.sam.generator import FmaMaskGenerator
    from fma.sam.presets import get_preset

    images = _images(Path(spec["data_root"]) if spec["data_root"] else None, spec["images"])
    sam = build_tiny_sam()
    preset = get_preset(spec["preset"])
    kwargs = preset.generator_kwargs()
    if spec["impl"] == "stock":
        for key in ("level_iou_offsets", "level_nms_offsets", "level_stability_offsets"):
            kwargs.pop(key)
        kwargs.pop("rsw_thresh")
        gen = SamAutomaticMaskGenerator(sam, output_mode="uncompressed_rle", **kwargs)
    else:
        gen = FmaMaskGenerator(sam, **kwargs)
    gen.generate(images[0][:64, :64].copy())  # warm-up, not timed
    base_rss = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    results = [gen.generate(img) for img in images]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(images)
    json_bytes = pickle_bytes = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (img, recs) in enumerate(zip(images, results, strict=True)):
            if spec["impl"] == "stock":
                unc = recs
            else:
                save_sam_masks(Path(tmp) / f"{i}.json", str(i), *img.shape[:2], recs)
                json_bytes += (Path(tmp) / f"{i}.json").stat().st_size
                unc = _uncompressed_records(recs)
            with open(Path(tmp) / f"{i}.pkl", "wb") as f:
                pickle.dump(unc, f)
            pickle_bytes += (Path(tmp) / f"{i}.pkl").stat().st_size
    signature = [
        [(r["area"], list(r["bbox"]), round(r["predicted_iou"], 6)) for r in recs]
        for recs in results
    ]
    return {
        "wall": wall / n,
        "cpu": cpu / n,
        "peak_mb": peak,
        "delta_mb": max(peak - base_rss, 0.0),
        "masks": sum(len(r) for r in results) / n,
        "json_b": json_bytes / n if json_bytes else None,
        "pickle_b": pickle_bytes / n,
        "signature": signature,
        "shape": list(images[0].shape),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2, help="images (default 2)")
    p.add_argument("--repeats", type=int, default=2, help="timed passes, best kept (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--data-root", type=Path, default=DEFAULT_VOC,
                   help="VOC2012 folder (val images); synthetic images if absent")  # fmt: skip
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    data_root = str(args.data_root) if args.data_root and args.data_root.is_dir() else None
    results: dict = {}
    for rep in range(args.repeats):  # round robin, so that load changes hit every row alike
        for impl, preset in ROWS:
            spec = dict(impl=impl, preset=preset, images=args.images, threads=args.threads,
                        data_root=data_root)  # fmt: skip
            out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            old = results.get((impl, preset))
            if old is not None:  # keep the fastest pass; memory is the largest seen
                r["peak_mb"], r["delta_mb"] = (
                    max(r["peak_mb"], old["peak_mb"]),
                    max(r["delta_mb"], old["delta_mb"]),
                )
                if old["wall"] < r["wall"]:
                    r["wall"], r["cpu"] = old["wall"], old["cpu"]
            results[(impl, preset)] = r
            print(f"  pass {rep + 1}: {impl} {preset} {r['wall']:.2f} s/img", file=sys.stderr)

    shape = results[ROWS[0]]["shape"]
    src = f"VOC val ({data_root})" if data_root else "synthetic"
    print(f"SAM mask generation, tiny SAM (fma.sam.builder.build_tiny_sam), CPU, "
          f"{args.threads} torch threads")  # fmt: skip
    print(f"images: {args.images} x {shape[0]}x{shape[1]} from {src}; best of {args.repeats}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")  # fmt: skip
    head = (f"{'generator':<7} {'preset':<12} {'img/s':>6} {'s/img (cpu)':>15} "
            f"{'peak MB':>8} {'+MB':>6} {'masks/img':>9} {'JSON B/img':>10} "
            f"{'pickle B/img':>12} {'same':>5}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for impl, preset in ROWS:
        r = results[(impl, preset)]
        same = ""
        if impl == "fma" and ("stock", preset) in results:
            same = "yes" if r["signature"] == results[("stock", preset)]["signature"] else "NO"
        json_b = f"{r['json_b']:.0f}" if r["json_b"] else "-"
        print(f"{impl:<7} {preset:<12} {1 / r['wall']:>6.2f} "
              f"{r['wall']:>7.2f} ({r['cpu']:>5.2f}) {r['peak_mb']:>8.0f} {r['delta_mb']:>6.0f} "
              f"{r['masks']:>9.1f} {json_b:>10} {r['pickle_b']:>12.0f} {same:>5}")  # fmt: skip
    print("GPU: not measured (no GPU on this machine).")


if __name__ == "__main__":
    main()
