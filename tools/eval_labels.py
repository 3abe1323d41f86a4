"""Evaluate a folder of label PNGs (seeds, pseudo labels, predictions) against ground truth.

Prints a per-class table and a final ``mIoU: xx.xx`` line. With ``--compare A B`` it measures
how two label folders agree instead: every ``<id>.png`` of B (the reference) against A's, 255
ignored in B, with the per-class table of the whole folder, a table of per-image pixel accuracy
and mIoU (worst first) and a final ``agreement: aAcc xx.xx  mIoU xx.xx`` line; the classes come
from ``--dataset`` or from the folders' manifests. Exit codes: 0 success, 1 evaluation error
(message on stderr), 2 bad arguments.

Examples::

    python tools/eval_labels.py work_dirs/seeds --dataset voc12 --split train \\
        --data-root data/VOCdevkit/VOC2012 --json work_dirs/seeds_eval.json \\
        --show-dir work_dirs/show
    python tools/eval_labels.py --compare work_dirs/fma_seeds work_dirs/official/seeds \\
        --dataset voc12 --json work_dirs/agreement.json
"""

import fma  # noqa: F401, I001  (first: a missing install fails here, with a plain ImportError)

import argparse
import sys
from pathlib import Path
from typing import Any

from fma.datasets import DatasetLayout
from fma.apis.evaluate import (
    LabelEvalError,
    dataset_label_space,
    evaluate_dataset_split,
    evaluate_label_dir,
    result_summary,
    write_show_panels,
)
from fma.io.label_maps import bitwise_palette
from fma.evaluation import format_table
from fma.io import write_json_atomic
from fma.io.manifest import MANIFEST_NAME, file_sha256, producer_info, read_manifest
from fma.stage import tool_exit

#: Per-image rows printed by --compare; above it, the worst half of it (all rows in --json).
MAX_ROWS = 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pred_dir", type=Path, nargs="?", help="folder of <id>.png label maps")
    p.add_argument("--compare", type=Path, nargs=2, metavar=("A", "B"),
                   help="per-image agreement of label folder A against reference folder B "
                   "(no ground truth needed)")  # fmt: skip
    p.add_argument("--dataset", choices=["voc12", "coco14", "custom"])
    p.add_argument("--split", help="split name, e.g. train, train_aug, val")
    p.add_argument("--data-root", type=Path, help="dataset root folder")
    p.add_argument("--gt-dir", type=Path, help="ground-truth folder (default: the layout's)")
    p.add_argument("--allow-missing", action="store_true", help="skip ids without a prediction")
    p.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    p.add_argument("--show-dir", type=Path, help="write panels of the worst and best images here")
    p.add_argument("--num-show", type=int, default=5, help="panels per group (default 5)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if args.compare is not None:
        if args.pred_dir is not None:
            p.error("give either PRED_DIR or --compare A B")
        for folder in args.compare:
            if not folder.is_dir():
                p.error(f"--compare: folder {folder} does not exist")
        if args.dataset == "custom" and args.data_root is None:
            p.error("--dataset custom needs --data-root (its classes.txt)")
        return args
    missing = [f for f in ("pred_dir", "dataset", "split", "data_root") if getattr(args, f) is None]
    if missing:
        p.error(f"missing {', '.join(m.replace('_', '-') for m in missing)} (or use --compare A B)")
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


def _compare_space(args: argparse.Namespace) -> tuple[list[str], Any]:
    """Class names and palette of ``--compare``: ``--dataset``, else the folders' manifests."""
    if args.dataset is not None:
        return dataset_label_space(args.dataset, args.data_root or ".")
    for folder in reversed(args.compare):  # B first: the reference
        m = read_manifest(folder, required=False)
        if m is not None and m.class_names:
            if m.dataset in ("voc12", "coco14"):
                return dataset_label_space(m.dataset, ".")
            return list(m.class_names), bitwise_palette()
    raise LabelEvalError(
        f"neither {args.compare[0]} nor {args.compare[1]} has a manifest naming its classes; "
        "pass --dataset (and --data-root for custom)"
    )


def _compare(args: argparse.Namespace) -> int:
    a, b = args.compare
    try:
        names, palette = _compare_space(args)
        ids = sorted(p.stem for p in b.glob("*.png") if not p.name.startswith("."))
        if not ids:
            raise LabelEvalError(f"{b}: no <id>.png label maps to compare with")
        result = evaluate_label_dir(
            a, b, ids, len(names), names, palette=palette, allow_missing=args.allow_missing,
            per_image=True, progress=not args.no_progress,
        )  # fmt: skip
    except (LabelEvalError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"agreement of {a} against {b} (reference; 255 in the reference ignored)")
    print(format_table(result.metrics))
    scores = sorted(result.per_image or [], key=lambda s: (s.miou is None, s.miou, s.image_id))
    shown = scores if len(scores) <= MAX_ROWS else scores[: MAX_ROWS // 2]
    width = max([len("image"), *(len(s.image_id) for s in shown)])
    print(f"\n{'image':<{width}}  {'aAcc':>7}  {'mIoU':>7}   (worst first)")
    for s in shown:
        print(f"{s.image_id:<{width}}  {_pct(s.acc):>7}  {_pct(s.miou):>7}")
    if len(shown) < len(scores):
        print(f"... and {len(scores) - len(shown)} more images (all in --json)")
    means = {k: _mean([getattr(s, k) for s in scores]) for k in ("acc", "miou")}
    print(f"images: {result.n_images}  missing in A: {result.n_missing}  mean per image: "
          f"aAcc {_pct(means['acc'])}  mIoU {_pct(means['miou'])}")  # fmt: skip
    if args.json is not None:
        summary = result_summary(
            result, mode="compare", a=str(a), b=str(b), labels_a=_labels_record(a),
            labels_b=_labels_record(b), mean_image_aAcc=means["acc"],
            mean_image_mIoU=means["miou"], per_image=[s.to_dict(names) for s in scores],
            producer=producer_info("tools/eval_labels.py"),
        )  # fmt: skip
        write_json_atomic(args.json, summary)
        print(f"wrote {args.json}")
    print(f"agreement: aAcc {_pct(result.metrics['aAcc'])}  mIoU {_pct(result.metrics['mIoU'])}")
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare is not None:
        return _compare(args)
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
