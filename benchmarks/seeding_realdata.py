"""Time SAMS and SEPL over the 330 real mini-VOC train images (end to end, files on disk).

Inputs are built from real data: oracle masks (4-connected components of each ground-truth class
region, written as fma mask files) and CAMs derived from the TransCAM pseudo labels (each present
class's region, average-pooled to the 16-pixel patch grid, plus noise; fg_cls = the image's
ground-truth classes). The timings cover reading the inputs, the algorithm and writing PNGs.

Run: ``python benchmarks/seeding_realdata.py [--voc-mini DIR] [--workers 0 2]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from oracle_masks import cam_from_label, oracle_component_masks  # noqa: E402

from fma.apis.refine import refine_label_dir  # noqa: E402
from fma.apis.seeds import run_seeding  # noqa: E402
from fma.datasets.layout import DatasetLayout  # noqa: E402
from fma.io import Manifest, read_label_map, write_manifest  # noqa: E402
from fma.io.cams import CamRecord, save_cam  # noqa: E402
from fma.io.masks.records import encode_rle, make_record, save_sam_masks  # noqa: E402
from fma.seeding.sams_options import SamsOptions  # noqa: E402


def build_inputs(voc_mini: Path, work: Path) -> list[str]:
    layout = DatasetLayout.of("voc12", voc_mini / "VOC2012")
    ids = layout.image_ids("train")
    rng = np.random.default_rng(0)
    for image_id in ids:
        gt = read_label_map(layout.labels_dir("train") / f"{image_id}.png")
        pseudo = read_label_map(voc_mini / "pseudo_labels" / "transcam" / f"{image_id}.png")
        masks = oracle_component_masks(gt)
        recs = [
            make_record(r, area=int(m.sum()), bbox=[0, 0, 1, 1], level=2)
            for r, m in zip(encode_rle(masks), masks, strict=True)
        ]
        save_sam_masks(work / "masks" / f"{image_id}.json.gz", image_id, *gt.shape, recs)
        fg = [c for c in np.unique(gt).tolist() if c not in (0, 255)]
        cam = cam_from_label(pseudo, fg, rng).astype(np.float64)
        save_cam(work / "cams" / f"{image_id}.npz", CamRecord(cam, np.array(fg), ori_size=gt.shape))
    write_manifest(work / "masks", Manifest("sam_masks", 1, len(ids), "voc12", "train"))
    write_manifest(work / "cams", Manifest("cams", 1, len(ids), "voc12", "train"))
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voc-mini", type=Path, default=REPO.parent / "shared/data/voc2012-mini")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    if not (args.voc_mini / "VOC2012").is_dir():
        sys.exit(f"{args.voc_mini}: mini VOC set not found (pass --voc-mini)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        ids = build_inputs(args.voc_mini, work)
        print(f"built inputs for {len(ids)} images in {time.perf_counter() - t0:.1f} s")
        print(f"{'stage':8s} {'workers':>7s} {'seconds':>8s} {'img/s':>7s}")
        for workers in args.workers:
            out = work / f"seeds_{workers}"
            t0 = time.perf_counter()
            rep = run_seeding(
                work / "cams", work / "masks", out, dataset="voc12", options=SamsOptions(gamma=0.7),
                workers=workers, progress=False,
            )  # fmt: skip
            dt = time.perf_counter() - t0
            print(f"{'SAMS':8s} {workers:7d} {dt:8.2f} {len(rep.done) / dt:7.1f}")
            out = work / f"refined_{workers}"
            t0 = time.perf_counter()
            res = refine_label_dir(
                args.voc_mini / "pseudo_labels" / "transcam", work / "masks", out,
                dataset="voc12", workers=workers, progress=False,
            )  # fmt: skip
            dt = time.perf_counter() - t0
            print(f"{'SEPL':8s} {workers:7d} {dt:8.2f} {len(res.report.done) / dt:7.1f}")


if __name__ == "__main__":
    main()
