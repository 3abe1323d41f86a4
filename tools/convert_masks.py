"""Rewrite a folder of SAM masks as fma mask files of another format, or import amg.py outputs.

``SRC`` holds fma mask files of any version (``<id>.npz``, ``<id>.json.gz``, ``<id>.json``,
mixed allowed); ``DST`` gets one file per image in ``--file-format`` (default ``npz``, version 2,
the fastest for the seeding tools; ``json.gz`` / ``json``: version 1, segment-anything's JSON
records) with every record kept and ``SRC``'s manifest carried over. With ``--from-amg``, ``SRC``
is segment-anything ``amg.py`` output (``<id>/`` PNG folders with ``metadata.csv``, or
``<id>.json`` RLE lists). Reruns skip finished images. Exit codes: 0 success, 1 some images
failed (listed on stderr) or an input error, 2 bad arguments.

Examples::

    python tools/convert_masks.py work_dirs/old/masks/train work_dirs/old/masks_npz/train
    python tools/convert_masks.py MASKS MASKS_JSON --file-format json.gz --workers 2
    python tools/convert_masks.py amg_output/ work_dirs/amg/masks/train --from-amg
"""

import fma  # noqa: F401, I001  (first: a missing install fails here, with a plain ImportError)

import argparse
import sys
from pathlib import Path

from fma.apis.import_masks import convert_masks, import_amg
from fma.io.masks.records import FILE_FORMATS
from fma.stage import tool_exit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path, help="folder of mask files (or amg.py output)")
    p.add_argument("dst", type=Path, help="output folder")
    p.add_argument("--file-format", default="npz", choices=sorted(FILE_FORMATS),
                   help="format of the written files (default npz)")  # fmt: skip
    p.add_argument("--from-amg", action="store_true", help="SRC is segment-anything amg.py output")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default 0: none)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if not args.src.is_dir():
        p.error(f"SRC folder {args.src} does not exist")
    if args.workers < 0:
        p.error("--workers must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = import_amg if args.from_amg else convert_masks
    try:
        report = run(args.src, args.dst, file_format=args.file_format, workers=args.workers,
                     progress=not args.no_progress)  # fmt: skip
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{report.summary().splitlines()[0]} -> {args.dst}")
    if not report.ok:
        print(report.summary(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(tool_exit(main))
