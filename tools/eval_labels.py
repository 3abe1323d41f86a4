"""Evaluate a folder of label PNGs (seeds, pseudo labels, predictions) against ground truth.

Prints a per-class table and a final ``mIoU: xx.xx`` line. Exit codes: 0 success, 1 evaluation
error (message on stderr), 2 bad arguments.

Example::

    python tools/eval_labels.py work_dirs/seeds --dataset voc12 --split train \\
        --data-root data/VOCdevkit/VOC2012 --json work_dirs/seeds_eval.json \\
        --show-dir work_dirs/show
"""

import fma  # noqa: F401, I001  (first: sets up the package before anything else)

import argparse
import sys
from pathlib import Path

from fma.datasets import DatasetLayout
from fma.apis.evaluate import (
    LabelEvalError,
    dataset_label_space,
    evaluate_dataset_split,
    result_summary,
    write_show_panels,
)
from fma.evaluation import format_table
from fma.io import write_json_atomic
from fma.io.manifest import MANIFEST_NAME, file_sha256, producer_info, read_manifest
from fma.stage import tool_exit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pred_dir", type=Path, help="folder of <id>.png label maps to evaluate")
    p.add_argument("--dataset", required=True, choices=["voc12", "coco14", "custom"])
    p.add_argument("--split", required=True, help="split name, e.g. train, train_aug, val")
    p.add_argument("--data-root", required=True, type=Path, help="dataset root folder")
    p.add_argument("--gt-dir", type=Path, help="ground-truth folder (default: the layout's)")
    p.add_argument("--allow-missing", action="store_true", help="skip ids without a prediction")
    p.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    p.add_argument("--show-dir", type=Path, help="write panels of the worst and best images here")
    p.add_argument("--num-show", type=int, default=5, help="panels per group (default 5)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if not args.pred_dir.is_dir():
        p.error(f"prediction folder {args.pred_dir} does not exist")
    if not args.data_root.is_dir():
        p.error(f"--data-root {args.data_root} does not exist")
    if args.gt_dir is not None and not args.gt_dir.is_dir():
        p.error(f"--gt-dir {args.gt_dir} does not exist")
    if args.num_show < 0:
        p.error("--num-show must be >= 0")
    return args


def _warn_missing_images(layout: DatasetLayout, split: str, scores: list) -> None:
    """Say so when panels would show grey placeholders for lack of images."""
    folder = layout.images_dir(split)
    if not folder.is_dir():
        print(f"warning: image folder {folder} not found: the panels' first column stays grey; "
              "pass --data-root of the images (COCO: ROOT/<split>2014 or ROOT/<split>2017)",
              file=sys.stderr)  # fmt: skip
        return
    missing = [s.image_id for s in scores if not layout.image_path(split, s.image_id).is_file()]
    if missing:
        print(f"warning: {len(missing)} of {len(scores)} images are not in {folder} (e.g. "
              f"{missing[0]}): their panels' first column stays grey", file=sys.stderr)  # fmt: skip


def _labels_record(folder: Path) -> dict:
    """What was evaluated: the folder and its manifest's sha256, format, split and producer."""
    record: dict = {"dir": str(folder), "manifest_sha256": None}
    manifest = folder / MANIFEST_NAME
    if manifest.is_file():
        record["manifest_sha256"] = file_sha256(manifest)
        m = read_manifest(folder, required=False)
        record.update(format=m.format, dataset=m.dataset, split=m.split, producer=m.producer)
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = DatasetLayout.of(args.dataset, args.data_root)
    gt_dir = args.gt_dir if args.gt_dir is not None else layout.labels_dir(args.split)
    try:
        class_names, palette = dataset_label_space(args.dataset, args.data_root)
        result = evaluate_dataset_split(
            args.pred_dir,
            args.dataset,
            args.split,
            args.data_root,
            gt_dir=gt_dir,
            allow_missing=args.allow_missing,
            per_image=args.show_dir is not None,
            progress=not args.no_progress,
        )
    except LabelEvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_table(result.metrics))
    print(f"images: {result.n_images}  missing predictions: {result.n_missing}")
    if args.json is not None:
        summary = result_summary(
            result, dataset=args.dataset, split=args.split, pred_dir=str(args.pred_dir),
            gt_dir=str(gt_dir), protocol={"mode": "labels"}, labels=_labels_record(args.pred_dir),
            producer=producer_info("tools/eval_labels.py"),
        )  # fmt: skip
        write_json_atomic(args.json, summary)
        print(f"wrote {args.json}")
    if args.show_dir is not None:
        _warn_missing_images(layout, args.split, result.per_image or [])
        paths = write_show_panels(
            result, args.pred_dir, gt_dir, lambda i: layout.image_path(args.split, i),
            args.show_dir, palette, num_show=args.num_show, class_names=class_names,
        )  # fmt: skip
        print(f"wrote {len(paths)} panels to {args.show_dir}")
    miou = result.metrics["mIoU"]
    print(f"mIoU: {miou:.2f}" if miou is not None else "mIoU: nan")
    return 0


if __name__ == "__main__":
    sys.exit(tool_exit(main))
