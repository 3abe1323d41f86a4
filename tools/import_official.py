"""Convert the official FMA-WSSS release (experiment.tar) into fma's formats.

SRC is the unpacked release or any folder below it. Every folder of SAM annotations
(``anns/*.pkl``), CAMs (``cam/*.npz``, ``cam_affed/*.npz``), seeds (``seed/*.png``) and prompt
checkpoints (``checkpoints/*.pth``) is written under OUT at the same relative path (ASCII
names; ``anns`` -> ``masks``, ``seed`` -> ``seeds``) as fma mask files (with their levels), fma
CAM files, palette-PNG label maps and stage I checkpoints, each folder with a manifest naming
its source ("official release"); OUT/import.json lists them. The annotation pickles are read
with a restricted unpickler: a pickle that references anything but data is refused (named with
the class it met) and nothing of it runs. Reruns skip finished files. Exit codes: 0 success,
1 some files failed (listed on stderr) or an input error, 2 bad arguments. The formats and
where they come from in the authors' code: fma/io/official_release.py.

Examples::

    python tools/import_official.py experiment work_dirs/official --workers 8
    python tools/import_official.py experiment/VOC/sams/split=train_aug/anns \\
        work_dirs/official/voc_masks --dataset voc12 --split train_aug
"""

import fma  # noqa: F401, I001  (first: a missing install fails here, with a plain ImportError)

import argparse
import sys
from pathlib import Path

from fma.apis.import_official import KINDS, import_official
from fma.io import ManifestError
from fma.stage import tool_exit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path, help="the unpacked release, or a folder below it")
    p.add_argument("out", type=Path, help="output root")
    p.add_argument("--kinds", default=",".join(KINDS),
                   help=f"comma-separated subset of {','.join(KINDS)} (default: all)")  # fmt: skip
    p.add_argument("--dataset", choices=["voc12", "coco14"],
                   help="dataset of every folder (default: VOC/ or COCO/ in the path)")  # fmt: skip
    p.add_argument("--split", help="split of every folder (default: from the path)")
    p.add_argument("--image-list", type=Path, help="convert only the ids in this file (one a line)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default 0: none)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = p.parse_args(argv)
    if not args.src.is_dir():
        p.error(f"SRC folder {args.src} does not exist")
    if args.workers < 0:
        p.error("--workers must be >= 0")
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not args.kinds or set(args.kinds) - set(KINDS):
        p.error(f"--kinds: choose from {','.join(KINDS)}")
    if args.image_list is not None and not args.image_list.is_file():
        p.error(f"--image-list {args.image_list} does not exist")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ids = None
    if args.image_list is not None:
        ids = [s.strip() for s in args.image_list.read_text().splitlines() if s.strip()]
    try:
        found = import_official(args.src, args.out, kinds=args.kinds, dataset=args.dataset,
                                split=args.split, image_ids=ids, workers=args.workers,
                                progress=not args.no_progress)  # fmt: skip
    except (OSError, ValueError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for a in found:
        r = a.report
        where = f"{a.dataset or '-'}/{a.split or '-'}"
        print(f"{a.kind:7s} {where:18s} {len(r.done):6d} written {len(r.skipped):6d} skipped "
              f"{len(r.failed):4d} failed  {a.out}  <- {a.src}")  # fmt: skip
        if not r.ok:
            failed += len(r.failed)
            print(f"{a.src}:\n{r.summary()}", file=sys.stderr)
    print(f"wrote {args.out / 'import.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(tool_exit(main))
