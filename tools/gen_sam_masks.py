"""Generate SAM quasi-superpixel masks (or classical superpixels) for a dataset split.

The config's ``sam_masks = dict(...)`` holds the fields of
:class:`fma.sam.run_settings.SamRunSettings`, the settings of
:func:`fma.apis.sam_masks.run_sam_masks` (e.g. ``precision="bf16"`` on a GPU: ``--cfg-options
sam_masks.precision=bf16``). Masks go to ``<work_dir>/masks/<split>/<id>.npz`` (format version
2; ``--file-format json.gz`` or ``sam_masks.file_format='json.gz'``: version 1, gzip'd JSON
records as segment-anything writes them, ``json`` the same uncompressed) with a
``manifest.json``; ``work_dir`` defaults to ``work_dirs/<config stem>``. Reruns skip finished
images (a mask file of any suffix counts as finished). Exit codes: 0 success, 1 some images
failed (listed by name), 2 bad arguments/config.

Examples::

    python tools/gen_sam_masks.py configs/sam/sam_vit-h_amg-fma_voc12.py --split val
    python tools/gen_sam_masks.py CONFIG --shard 0/4        # one of 4 independent processes
    torchrun --nproc_per_node 2 tools/gen_sam_masks.py CONFIG --launcher pytorch
    python tools/gen_sam_masks.py CONFIG --cfg-options sam_masks.preset=fast --show-dir show
    python tools/gen_sam_masks.py CONFIG --file-format json.gz   # JSON records (version 1)
    python tools/gen_sam_masks.py configs/sam/superpixels_voc12.py --workers 2   # 2 processes
"""

# ruff: noqa: E402, I001  (imports follow fma.setup(), in the order they need)
import fma

fma.setup()  # first: torchvision's nms and mmcv's _ext repaired before anything imports them

import argparse
import sys
from pathlib import Path


from fma.engine.config import CfgOptionsAction
from fma.engine.config import ConfigSectionError, load_section, tool_work_dir

from fma.apis.sam_masks import run_sam_masks
from fma.sam.run_settings import SamRunSettings, parse_shard
from fma.io.masks.records import FILE_FORMATS
from fma.stage import tool_exit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", type=Path, help="config file with a sam_masks = dict(...) section")
    p.add_argument("--split", help="split to process (overrides sam_masks.split)")
    p.add_argument("--shard", help="process only shard i of n, written 'i/n' (e.g. 0/4)")
    p.add_argument("--launcher", choices=["none", "pytorch"], default="none",
                   help="'pytorch': torch.distributed from torchrun's environment")  # fmt: skip
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="worker processes (superpixels, or SAM on CPU; default 0: this process)",
    )
    p.add_argument("--threads-per-worker", type=int, default=1,
                   help="torch threads of each SAM worker process (default 1)")  # fmt: skip
    p.add_argument("--work-dir", type=Path, help="run folder (default work_dirs/<config stem>)")
    p.add_argument("--cfg-options", nargs="+", action=CfgOptionsAction,
                   help="override config entries, e.g. sam_masks.preset=fast")  # fmt: skip
    p.add_argument("--show-dir", type=Path, help="write per-level mask panels (PNG) here")
    p.add_argument("--num-show", type=int, help="at most this many panels per process")
    p.add_argument("--file-format", choices=sorted(FILE_FORMATS),
                   help="mask files: npz (default, version 2, fastest to read), json.gz or json "
                        "(version 1, segment-anything's JSON records)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if not args.config.is_file():
        p.error(f"config {args.config} does not exist")
    if args.workers < 0 or args.threads_per_worker < 1:
        p.error("--workers must be >= 0 and --threads-per-worker >= 1")
    if args.shard is not None:
        try:
            parse_shard(args.shard)
        except ValueError as exc:
            p.error(str(exc))
    return args


# Settings this tool sets itself (command-line options), not sam_masks keys.
TOOL_SET = (
    "shard", "launcher", "show_dir", "num_show", "progress", "config_path",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg, kwargs = load_section(
            args.config, "sam_masks", args.cfg_options, func=SamRunSettings, reserved=TOOL_SET
        )
    except ConfigSectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.split is not None:
        kwargs["split"] = args.split
    if args.file_format is not None:
        kwargs["file_format"] = args.file_format
    if args.workers:
        kwargs.update(workers=args.workers, threads_per_worker=args.threads_per_worker)
    work_dir = tool_work_dir(args.config, cfg, args.work_dir)
    try:
        settings = SamRunSettings(
            shard=args.shard,
            launcher=args.launcher,
            show_dir=args.show_dir,
            num_show=args.num_show,
            progress=not args.no_progress,
            config_path=args.config,
            **kwargs,
        )
        result = run_sam_masks(work_dir, settings)
    except (ValueError, KeyError, FileNotFoundError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.rank == 0:
        print(result.report.summary())
        print(f"masks: {result.out_dir}")
    return 0 if result.report.ok else 1


if __name__ == "__main__":
    sys.exit(tool_exit(main))
