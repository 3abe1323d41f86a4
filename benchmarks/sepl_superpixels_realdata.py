"""SEPL on real images with classical superpixels instead of SAM masks (mIoU, not speed).

On the 330 mini-VOC train images: Felzenszwalb superpixels at three scales
(``configs/sam/superpixels_voc12.py``, levels 0/1/2 in fma's mask format) refine the TransCAM
pseudo labels with the published rule (``max_iou_imp2``) and with fma's ``majority`` rule;
oracle masks (4-connected components of each ground-truth class region) give the reference of
SAM-quality masks. Prints the mIoU of every label set against the ground truth.

Run: ``python benchmarks/sepl_superpixels_realdata.py [--voc-mini DIR] [--masks DIR]``
(``--masks``: a superpixel mask folder made earlier, to skip the slow generation step).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from oracle_masks import write_oracle_amg_folders  # noqa: E402

from fma.apis.evaluate import evaluate_dataset_split  # noqa: E402
from fma.apis.refine import refine_label_dir  # noqa: E402
from fma.datasets.layout import DatasetLayout  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voc-mini", type=Path, default=REPO.parent / "shared/data/voc2012-mini")
    parser.add_argument("--masks", type=Path, help="existing superpixel mask folder (train)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    voc = args.voc_mini / "VOC2012"
    labels = args.voc_mini / "pseudo_labels" / "transcam"
    layout = DatasetLayout.of("voc12", voc)
    rows = [("TransCAM pseudo labels", labels)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        masks = args.masks
        if masks is None:
            from fma.apis.sam_masks import run_sam_masks

            t0 = time.perf_counter()
            run_sam_masks(work / "sp", split="train", dataset="voc12", data_root=voc,
                          source="superpixels", progress=False)  # fmt: skip
            masks = work / "sp" / "masks" / "train"
            print(f"superpixels of {len(layout.image_ids('train'))} images: "
                  f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
        for method in ("max_iou_imp2", "majority"):
            out = work / f"sp_{method}"
            refine_label_dir(labels, masks, out, dataset="voc12", method=method,
                             workers=args.workers, progress=False)  # fmt: skip
            rows.append((f"SEPL {method}, superpixels", out))
        oracle = write_oracle_amg_folders(
            layout.labels_dir("train"), layout.image_ids("train"), work / "oracle", connectivity=4
        )
        out = work / "oracle_max_iou_imp2"
        refine_label_dir(labels, oracle, out, dataset="voc12", workers=args.workers,
                         progress=False)  # fmt: skip
        rows.append(("SEPL max_iou_imp2, oracle masks", out))
        print(f"{'labels (330 mini-VOC train images)':40s} {'mIoU':>6s}")
        for name, folder in rows:
            res = evaluate_dataset_split(folder, "voc12", "train", voc, progress=False)
            print(f"{name:40s} {res.miou:6.2f}")


if __name__ == "__main__":
    main()
