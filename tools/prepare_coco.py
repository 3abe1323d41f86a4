"""Convert COCO instance annotations into fma's coco14 layout (81-class label PNGs + labels).

    python tools/prepare_coco.py --ann data/coco2014/annotations/instances_train2014.json \
        --split train --root data/coco2014 --workers 8
    python tools/prepare_coco.py --ann data/coco/annotations/instances_val2017.json \
        --split val --root data/coco          # COCO 2017: images from data/coco/val2017/

Writes under ``--out`` (default ``--root``): ``SegmentationClass/<split>/<id>.png`` (palette PNGs,
0 = background, 1..80 = COCO classes, 255 = crowd with ``--crowd ignore``),
``ImageSets/<split>.txt``, ``cls_labels/<split>.json`` and a manifest; for ``--split val`` also
``ImageSets/val_5000.txt`` (the first 5,000 sorted ids: stage II validation during training).
Overlaps: smaller instances on top. Reruns reuse finished PNGs. COCO 2014 and 2017 share the
dataset key ``coco14``; the year (from ``--split train2017`` or the annotation file) is recorded in
the manifest and ``cls_labels/<split>.json``, and ``--split train2017`` writes split ``train``.
Exit codes: 0 done, 1 problems in the annotations (all listed), 2 a file that is not COCO instance
annotations (keypoints, captions, panoptic, stuff: named in one line) or other bad input.
See docs/datasets.md, section 4.
"""

import fma  # first, so a missing install fails here with a plain ImportError

# isort: split
import argparse
import os
import sys
import time

from fma.datasets.checks import DatasetCheckError
from fma.datasets.prepare_coco import prepare_coco


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert COCO instance annotations into 81-class label PNGs and image labels."
    )
    parser.add_argument(
        "--ann", required=True, help="instances_<split>2014.json or instances_<split>2017.json"
    )
    parser.add_argument(
        "--split", required=True, help="split: train or val (train2017, val2014: the same)"
    )
    parser.add_argument(
        "--root",
        required=True,
        help="COCO root; images are read from ROOT/<split><year>/ (ROOT/<split>2014/ or "
        "ROOT/<split>2017/ when the year is not stated)",
    )
    parser.add_argument("--out", default=None, help="output root (default: --root)")
    parser.add_argument(
        "--images",
        default=None,
        help="image folder to check file names against (default ROOT/<split><year>)",
    )
    parser.add_argument(
        "--crowd",
        choices=("class", "ignore"),
        default="class",
        help="crowd regions (iscrowd=1): paint their class (default) or 255 where no other "
        "instance covers them",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="processes for rendering (default: CPU count, at most 8)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--version", action="version", version=f"fma {fma.__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        result = prepare_coco(
            args.ann,
            args.split,
            args.root,
            args.out,
            crowd=args.crowd,
            images_dir=args.images,
            workers=args.workers,
            progress=not args.no_progress,
        )
    except DatasetCheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    if result.split != args.split:
        print(
            f"--split {args.split} was written as split {result.split!r} of COCO {result.year}: "
            f"configs and tools read it as split={result.split!r}"
        )
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
