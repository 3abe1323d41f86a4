"""Check a PASCAL VOC 2012 folder and write its image-level labels.

    python tools/prepare_voc.py data/VOCdevkit/VOC2012
    python tools/prepare_voc.py DATA_ROOT --out DIR --splits train val --workers 8
    python tools/prepare_voc.py data/VOCdevkit/VOC2012 --sbd data/benchmark_RELEASE/dataset

For every split (default: those whose list file exists among train, val and train_aug), every
listed image and ground-truth PNG must exist and decode; all problems are listed by file name.
Labels go to ``<out>/<split>.json`` (default ``DATA_ROOT/cls_labels``). A split with problems
gets no file and the exit status is 1.

With ``--sbd`` the SBD annotations are converted first (fma.datasets.sbd): DATA_ROOT gets
``ImageSets/Segmentation/train_aug.txt`` and ``SegmentationClassAug/`` (VOC's own
SegmentationClass map wins for ids in both), then the labels of train_aug are written too.
See docs/datasets.md.
"""

import fma  # first, so a missing install fails here with a plain ImportError

# isort: split
import argparse
import os
import sys
import time

from fma.datasets.prepare_voc import VOC_SPLITS, prepare_voc, voc_default_splits
from fma.datasets.sbd import convert_sbd


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Check a VOC2012 folder and write image-level labels (cls_labels/<split>.json)."
    )
    parser.add_argument("data_root", help="the VOC2012 folder (holds JPEGImages/, ImageSets/)")
    parser.add_argument(
        "--out", default=None, help="output folder for <split>.json (default DATA_ROOT/cls_labels)"
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=VOC_SPLITS,
        default=None,
        help="splits to process (default: every split whose list file exists)",
    )
    parser.add_argument(
        "--sbd",
        metavar="SBD_ROOT",
        default=None,
        help="SBD's benchmark_RELEASE/dataset folder (or benchmark_RELEASE): first write "
        "train_aug.txt and SegmentationClassAug/ into DATA_ROOT from it",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="processes for checking files (default: CPU count, at most 8)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--version", action="version", version=f"fma {fma.__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    start = time.perf_counter()
    splits, sbd_problems = args.splits, []
    if args.sbd is not None:
        try:
            sbd = convert_sbd(
                args.data_root, args.sbd, workers=args.workers, progress=not args.no_progress
            )
        except (ImportError, OSError, ValueError, RuntimeError) as exc:
            print(f"error: SBD conversion: {exc}", file=sys.stderr)
            return 2
        print(sbd.summary() + "\n")
        sbd_problems = sbd.problems
        if sbd_problems:  # no train_aug labels from an incomplete conversion
            splits = [s for s in splits or voc_default_splits(args.data_root) if s != "train_aug"]
    try:
        result = prepare_voc(
            args.data_root,
            args.out,
            splits,
            workers=args.workers,
            progress=not args.no_progress,
        )
    except OSError as exc:
        print(f"error: cannot write the labels ({exc}); pass --out DIR", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    if result.splits:
        print(result.summary())
    problems = sbd_problems + result.problems
    if problems:
        bad = [s for s, r in result.splits.items() if r.problems]
        bad += ["train_aug"] if sbd_problems else []
        print(
            f"\n{len(problems)} problem(s); no labels written for: {bad or 'any split'}",
            file=sys.stderr,
        )
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"done in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
