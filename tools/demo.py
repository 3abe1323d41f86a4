"""Demo on the bundled synthetic example: evaluate coarse pseudo labels against ground truth.

Writes work_dirs/demo/ (a synthetic VOC-style set, its pseudo labels, metrics.json and panels).
Run through `./run demo`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fma.datasets.meta import VOC12
from fma.datasets.synthetic import make_synthetic_voc
from fma.evaluation.confusion import format_table
from fma.evaluation.label_eval import evaluate_dataset_split, result_summary, write_show_panels
from fma.io import write_json_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="work_dirs/demo", help="output folder")
    parser.add_argument("--num-images", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    work = Path(args.work_dir)
    voc = make_synthetic_voc(work / "data", args.num_images, args.seed)
    pseudo = work / "data" / "pseudo_labels"
    result = evaluate_dataset_split(pseudo, "voc12", "train", voc, per_image=True, progress=False)
    print("Coarse pseudo labels vs ground truth (synthetic example):")
    print(format_table(result.metrics))
    write_json_atomic(work / "metrics.json", result_summary(result, pred_dir=str(pseudo)))
    panels = write_show_panels(
        result,
        pseudo,
        voc / "SegmentationClass",
        lambda i: voc / "JPEGImages" / f"{i}.jpg",
        work / "panels",
        VOC12.palette,
        num_show=2,
    )
    print(f"\nmIoU: {result.miou:.2f}")
    print(f"wrote {work / 'metrics.json'} and {len(panels)} panels in {work / 'panels'}")
    print(json.dumps({"mIoU": round(result.miou, 2), "images": result.n_images}))


if __name__ == "__main__":
    main()
