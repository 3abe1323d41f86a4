"""Disk cost of CAM files: float32 (default) vs float16 (opt-in) vs the original's layout.

CAMs are derived from real data, as in ``benchmarks/seeding_realdata.py``: for each of the 330
mini-VOC train images, every TransCAM class region average-pooled to the 16-pixel patch grid
plus N(0, 0.05) noise (K positives x h/16 x w/16 float32, the shape and dtype stage I writes).
Each CAM is written three ways: fma's default (``savez_compressed``, ``cam`` float32), fma with
``cam_dtype="float16"``, and the original FMA-WSSS layout (``np.savez``, uncompressed float32).
Printed per layout: bytes per image (mean), total over the 330 images, size against the float32
default, and write + read time per image (disk to disk, best of ``--repeats``).

Run: ``python benchmarks/cam_files.py [--voc-mini DIR] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fma.datasets.layout import DatasetLayout  # noqa: E402
from fma.io import read_label_map  # noqa: E402
from fma.io.cams import CamRecord, load_cam, save_cam  # noqa: E402


def real_cams(voc_mini: Path) -> dict[str, CamRecord]:
    layout = DatasetLayout.of("voc12", voc_mini / "VOC2012")
    rng = np.random.default_rng(0)
    out = {}
    for image_id in layout.image_ids("train"):
        gt = read_label_map(layout.labels_dir("train") / f"{image_id}.png")
        pseudo = read_label_map(voc_mini / "pseudo_labels" / "transcam" / f"{image_id}.png")
        fg = [c for c in np.unique(gt).tolist() if c not in (0, 255)]
        h, w = -(-gt.shape[0] // 16), -(-gt.shape[1] // 16)
        pad = np.zeros((h * 16, w * 16), dtype=np.uint8)
        pad[: gt.shape[0], : gt.shape[1]] = pseudo
        cam = np.stack([(pad == c).reshape(h, 16, w, 16).mean((1, 3)) for c in fg])
        cam = (cam + rng.normal(0, 0.05, cam.shape)).astype(np.float32)
        out[image_id] = CamRecord(cam, np.array(fg), np.ones(len(fg), np.float32),
                                  np.ones(20, np.float32), gt.shape)  # fmt: skip
    return out


def _original(path: Path, rec: CamRecord) -> None:
    np.savez(path, cam=rec.cam, fg_cls=rec.fg_cls - 1, fg_logit=rec.fg_logit,
             all_logit=rec.all_logit)  # fmt: skip


LAYOUTS = {
    "fma float32 (default)": lambda p, r: save_cam(p, r),
    "fma float16 (cam_dtype)": lambda p, r: save_cam(p, r, cam_dtype="float16"),
    "original (np.savez float32)": _original,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voc-mini", type=Path, default=REPO.parent / "shared/data/voc2012-mini")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cams = real_cams(args.voc_mini)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in LAYOUTS.items():
            folder = Path(tmp) / str(len(rows))
            folder.mkdir()
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for image_id, rec in cams.items():
                    write(folder / f"{image_id}.npz", rec)
                for image_id in cams:
                    load_cam(folder / f"{image_id}.npz")
                best = min(best, time.perf_counter() - t0)
            total = sum(p.stat().st_size for p in folder.glob("*.npz"))
            rows.append((name, total, best))
    ref = rows[0][1]
    n = len(cams)
    print(f"{n} mini-VOC train images, CAM cells per image: "
          f"{np.mean([r.cam.size for r in cams.values()]):.0f} (mean)")  # fmt: skip
    print(f"{'layout':30s} {'bytes/img':>10s} {'total KiB':>10s} {'vs default':>10s} "
          f"{'ms/img':>8s}")  # fmt: skip
    for name, total, best in rows:
        print(f"{name:30s} {total / n:10.0f} {total / 1024:10.1f} {total / ref:10.2f} "
              f"{best / n * 1e3:8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
