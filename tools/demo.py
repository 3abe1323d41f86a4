"""Demo on the bundled synthetic example: masks -> SEPL refinement -> evaluation, no weights needed.

Steps (all outputs under --work-dir, default work_dirs/demo):
1. a deterministic synthetic VOC-style set with coarse, CAM-like pseudo labels (data/);
2. weight-free multi-level superpixel masks in fma's SAM-mask format (masks/train/);
3. SEPL refinement of the pseudo labels with those masks, with the published merging rule
   (max_iou_imp2) and with fma's order-independent "majority" rule (refined_<method>/);
4. evaluation of every label set against the ground truth (metrics.json, panels/).
Run through `./run demo`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fma.apis.evaluate import evaluate_dataset_split, result_summary, write_show_panels
from fma.apis.refine import refine_label_dir
from fma.apis.sam_masks import run_sam_masks
from fma.datasets.meta import VOC12
from fma.datasets.synthetic import make_synthetic_voc
from fma.evaluation.confusion import format_table
from fma.io import write_json_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="work_dirs/demo", help="output folder")
    parser.add_argument("--num-images", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-only", action="store_true",
        help="write only the synthetic set (step 1), e.g. for the tiny stage I config",
    )  # fmt: skip
    args = parser.parse_args()

    work = Path(args.work_dir)
    voc = make_synthetic_voc(work / "data", args.num_images, args.seed)
    pseudo = work / "data" / "pseudo_labels"
    print("[1/4] synthetic set:", voc)
    if args.data_only:
        return
    run_sam_masks(work, split="train", dataset="voc12", data_root=voc, source="superpixels")
    print("[2/4] superpixel masks:", work / "masks" / "train")
    folders = {"pseudo labels": pseudo}
    for method in ("max_iou_imp2", "majority"):
        out = work / f"refined_{method}"
        refine_label_dir(pseudo, work / "masks" / "train", out, dataset="voc12", method=method)
        folders[f"SEPL {method}"] = out
    print("[3/4] SEPL-refined labels:", ", ".join(str(f) for f in list(folders.values())[1:]))

    results = {}
    for name, folder in folders.items():
        res = evaluate_dataset_split(folder, "voc12", "train", voc, per_image=True, progress=False)
        results[name] = res
        write_show_panels(
            res,
            folder,
            voc / "SegmentationClass",
            lambda i: voc / "JPEGImages" / f"{i}.jpg",
            work / "panels" / folder.name,
            VOC12.palette,
            num_show=2,
            class_names=VOC12.class_names,
        )
    best = max(results, key=lambda k: results[k].miou)
    print(f"[4/4] evaluation against the ground truth; per-class table of the best ({best}):")
    print(format_table(results[best].metrics))
    write_json_atomic(
        work / "metrics.json",
        {k: result_summary(r, pred_dir=str(folders[k])) for k, r in results.items()},
    )
    print(f"\n{'labels':28s} {'mIoU':>6s} {'aAcc':>6s}")
    for name, res in results.items():
        print(f"{name:28s} {res.miou:6.2f} {res.metrics['aAcc']:6.2f}")
    print(f"wrote {work / 'metrics.json'} and panels in {work / 'panels'}")
    print(json.dumps({k: round(r.miou, 2) for k, r in results.items()}))


if __name__ == "__main__":
    main()
