"""Score a CAM folder against the ground truth: CAM label maps and a metrics JSON.

Each CAM file (``<id>.npz``, :mod:`fma.io.cams`) becomes a label map by the scoring of
method-fma 6.4 (:func:`fma.cam.cam_to_label`: bilinear resize to the ground-truth size, ReLU,
per-class min-max, background ``(1 - max)^gamma``, argmax). The maps are written as palette
PNGs and evaluated like any label folder (:func:`fma.evaluation.evaluate_dataset_split`, the
numbers of ``tools/eval_labels.py``). The JSON holds the metrics at the chosen ``--gamma``
(``mIoU``, no choice made on the ground truth) and, for reference only, the mIoU at other
exponents (``mIoU_by_gamma``), as ``CAMMetric`` logs them.

    python -m fma.demo.cam_eval work_dirs/demo/stage1_cls/cams/train --data-root DATA \\
        --split train --out work_dirs/demo/cam_labels/train --json metrics.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fma.apis.evaluate import evaluate_dataset_split, result_summary
from fma.cam import cam_to_label
from fma.datasets.layout import DatasetLayout
from fma.datasets.meta import VOC12
from fma.io import read_label_map, write_json_atomic, write_label_map
from fma.io.cams import load_cam

__all__ = ["write_cam_labels"]


def write_cam_labels(
    cam_dir: str | Path, data_root: str | Path, split: str, out: str | Path, gamma: float = 1.0
) -> list[str]:
    """Write ``<out>/<id>.png`` CAM label maps (ground-truth size) for every id of the split.

    Returns:
        The image ids written.
    """
    layout = DatasetLayout.of("voc12", data_root)
    ids = layout.image_ids(split)
    gt_dir = layout.labels_dir(split)
    for image_id in ids:
        rec = load_cam(Path(cam_dir) / f"{image_id}.npz")
        size = read_label_map(gt_dir / f"{image_id}.png").shape
        label = cam_to_label(torch.from_numpy(rec.cam.astype("float32")), rec.fg_cls, size, gamma)
        write_label_map(Path(out) / f"{image_id}.png", label.numpy().astype("uint8"), VOC12.palette)
    return ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Score CAM files against the ground truth.")
    p.add_argument("cam_dir", type=Path)
    p.add_argument("--data-root", required=True, type=Path)
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True, type=Path, help="folder for the CAM label PNGs")
    p.add_argument("--json", required=True, type=Path, help="metrics file")
    p.add_argument("--gamma", type=float, default=1.0, help="background exponent")
    p.add_argument("--gammas", type=float, nargs="*", default=[], help="also report these")
    args = p.parse_args(argv)
    try:
        write_cam_labels(args.cam_dir, args.data_root, args.split, args.out, args.gamma)
        res = evaluate_dataset_split(args.out, "voc12", args.split, args.data_root, progress=False)
        by_gamma = {}
        for g in args.gammas:
            tmp = args.out.parent / f".{args.out.name}_gamma{g:g}"
            write_cam_labels(args.cam_dir, args.data_root, args.split, tmp, g)
            other = evaluate_dataset_split(tmp, "voc12", args.split, args.data_root, progress=False)
            by_gamma[f"{g:g}"] = round(other.miou, 2)
            for f in tmp.glob("*.png"):
                f.unlink()
            tmp.rmdir()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = result_summary(
        res, pred_dir=str(args.out), cam_dir=str(args.cam_dir), gamma=args.gamma,
        mIoU_by_gamma=by_gamma,
    )  # fmt: skip
    write_json_atomic(args.json, summary)
    print(f"CAM mIoU (gamma {args.gamma:g}): {res.miou:.2f}  by gamma: {by_gamma}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
