"""Refine pseudo labels with SAM masks (SEPL, "SAM-enhanced pseudo labels").

Reads ``--labels/<id>.png`` pseudo labels of any method and the SAM masks of the same images
(fma mask files ``<id>.npz`` / ``.json.gz`` / ``.json``, or segment-anything ``amg.py`` output:
``<id>/<k>.png`` folders or ``<id>.json`` RLE files) and writes refined ``--out/<id>.png`` labels
plus ``manifest.json``. Reruns skip finished images. Exit codes: 0 success, 1 some images
failed (listed on stderr) or an input error, 2 bad arguments.

Example::

    python tools/refine_labels.py --labels pseudo_labels/transcam --masks sam_masks/voc12 \\
        --out work_dirs/transcam_sepl --dataset voc12 --workers 4 --show-dir work_dirs/show
"""

import fma._no_blas_threads  # noqa: F401, I001  (first: the package, then one BLAS thread)

import argparse
import sys
from pathlib import Path

from fma.apis.refine import refine_label_dir
from fma.seeding.sepl import METHODS
from fma.stage import tool_exit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", required=True, type=Path, help="folder of <id>.png pseudo labels")
    p.add_argument("--masks", required=True, type=Path, help="folder of SAM masks (any layout)")
    p.add_argument("--out", required=True, type=Path, help="output folder of refined labels")
    p.add_argument(
        "--method",
        default="max_iou_imp2",
        choices=METHODS,
        help="merging rule (default: max_iou_imp2, the official default)",
    )
    classes = p.add_mutually_exclusive_group()
    classes.add_argument("--num-classes", type=int, help="classes including background, e.g. 21")
    classes.add_argument(
        "--dataset",
        choices=["voc12", "coco14"],
        help="take class count, names and palette from a built-in dataset",
    )
    p.add_argument("--workers", type=int, default=0, help="worker processes (default 0: none)")
    p.add_argument(
        "--keep-ignore",
        action="store_true",
        help="keep 255 where the input has it and no selected mask covers it",
    )
    p.add_argument(
        "--max-area-ratio",
        type=float,
        help="masks larger than this times the class area are not selected "
        "(default: none; 2.0 for --method majority)",
    )
    p.add_argument("--image-list", type=Path, help="text file of ids to refine (default: all)")
    p.add_argument("--show-dir", type=Path, help="write panels of changed and sample images here")
    p.add_argument("--images", type=Path, help="image folder for the panels' first column")
    p.add_argument("--num-show", type=int, default=5, help="panels per group (default 5)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = p.parse_args(argv)
    for folder, flag in ((args.labels, "--labels"), (args.masks, "--masks")):
        if not folder.is_dir():
            p.error(f"{flag} folder {folder} does not exist")
    if args.images is not None and not args.images.is_dir():
        p.error(f"--images folder {args.images} does not exist")
    if args.num_classes is not None and not 2 <= args.num_classes <= 255:
        p.error("--num-classes must lie in 2..255")
    if args.workers < 0 or args.num_show < 0:
        p.error("--workers and --num-show must be >= 0")
    if args.max_area_ratio is not None and args.max_area_ratio <= 0:
        p.error("--max-area-ratio must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ids = None
    if args.image_list is not None:
        from fma.datasets.layout import read_split_file

        ids = read_split_file(args.image_list)
    try:
        result = refine_label_dir(
            args.labels, args.masks, args.out, method=args.method, workers=args.workers,
            num_classes=args.num_classes, dataset=args.dataset, keep_ignore=args.keep_ignore,
            max_area_ratio=args.max_area_ratio, image_ids=ids, show_dir=args.show_dir,
            images_dir=args.images, num_show=args.num_show, progress=not args.no_progress,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = result.report
    n = len(report.done)
    rate = f" ({n / result.seconds:.1f} images/s)" if n and result.seconds > 0 else ""
    print(f"{report.summary().splitlines()[0]} in {result.seconds:.1f} s{rate} -> {args.out}")
    if result.panels:
        print(f"wrote {len(result.panels)} panels to {args.show_dir}")
    if not report.ok:
        print(report.summary(), file=sys.stderr)
        print(f"error: {len(report.failed)} image(s) failed: "
              + ", ".join(list(report.failed)[:20]), file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(tool_exit(main))
