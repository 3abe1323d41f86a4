"""Analysis: score SAMS seeds for a grid of background exponents gamma against ground truth.

Reads the same config as tools/make_seeds.py (its ``seeding`` section gives the CAM and mask
folders, dataset, split, norm_first, priority), computes the seeds for every gamma in memory
and prints one row per gamma (mIoU, background IoU, mean foreground IoU, pixel accuracy). It
writes no seeds and picks nothing: production seeding uses the gamma fixed in its config.
Exit codes: 0 success, 1 evaluation error (message on stderr), 2 bad arguments.

Example::

    python tools/sweep_seed_gamma.py configs/seeding/sams-coarse_coco14.py \\
        --gammas 0.3 0.4 0.5 --data-root data/coco2014
"""

import fma  # noqa: F401, I001  (first: a missing install fails here, with a plain ImportError)

import argparse
import os
import sys
from pathlib import Path


from fma.engine.config import CfgOptionsAction
from fma.engine.config import ConfigSectionError, load_section

from fma.datasets import DatasetLayout
from fma.io import ManifestError, write_json_atomic
from fma.apis.seeds import seeding_kwargs
from fma.apis.sweeps import sweep_gamma
from fma.seeding.sams_options import SamsOptions
from fma.stage import tool_exit

# seeding keys the sweep reads besides the SAMS settings (bg_method is "pow", gamma the grid's).
PASSED = ("cam_dir", "mask_dir", "dataset", "split")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", type=Path, help="seeding config file (configs/seeding/*.py)")
    p.add_argument("--gammas", type=float, nargs="+", required=True, help="exponents to score")
    p.add_argument("--data-root", type=Path, help="dataset root (default: seeding.data_root)")
    p.add_argument("--gt-dir", type=Path, help="ground-truth folder (default: the layout's)")
    p.add_argument(
        "--cfg-options", nargs="+", action=CfgOptionsAction, default={},
        help="override config entries, e.g. seeding.norm_first=False",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1),
        help="CPU worker processes (0: run in this process)",
    )  # fmt: skip
    p.add_argument("--json", type=Path, help="write the rows (with per-class IoU) here")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if not args.config.is_file():
        p.error(f"config {args.config} does not exist")
    if args.workers < 0:
        p.error("--workers must be >= 0")
    return args


def _fmt(x: float | None) -> str:
    return "     -" if x is None else f"{x:6.2f}"


# the seeding section is make_seeds.py's: its keys are those of seeding_kwargs.
TOOL_SET = ("workers", "progress", "show_dir", "num_show", "config", "tool")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        _, seeding = load_section(
            args.config, "seeding", args.cfg_options, func=seeding_kwargs, reserved=TOOL_SET
        )
    except ConfigSectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data_root = args.data_root or seeding.get("data_root")
    kwargs = {k: seeding[k] for k in PASSED if k in seeding}
    if args.gt_dir is not None:
        gt_dir = args.gt_dir
    elif data_root is not None and kwargs.get("split"):
        gt_dir = DatasetLayout.of(kwargs["dataset"], data_root).labels_dir(kwargs["split"])
    else:
        print("error: give --gt-dir, or --data-root and seeding.split", file=sys.stderr)
        return 2
    try:
        options, _ = SamsOptions.from_section(seeding, bg_method="pow", gamma=args.gammas[0])
        rows = sweep_gamma(
            gt_dir=gt_dir, gammas=args.gammas, options=options, data_root=data_root,
            workers=args.workers, progress=not args.no_progress, **kwargs,
        )  # fmt: skip
    except (ValueError, FileNotFoundError, ManifestError, KeyError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"SAMS gamma sweep against {gt_dir} (analysis only; nothing is selected)")
    print(f"{'gamma':>6}  {'mIoU':>6}  {'bg IoU':>6}  {'fg mIoU':>7}  {'aAcc':>6}")
    for row in rows:
        ious = list(row["metrics"]["IoU"].values())
        fg = [v for v in ious[1:] if v is not None]
        fg_mean = sum(fg) / len(fg) if fg else None
        print(
            f"{row['gamma']:6.2f}  {_fmt(row['mIoU'])}  {_fmt(ious[0])}  "
            f"{_fmt(fg_mean):>7}  {_fmt(row['metrics']['aAcc'])}"
        )
    if args.json is not None:
        write_json_atomic(
            args.json, {"config": str(args.config), "gt_dir": str(gt_dir), "rows": rows}
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(tool_exit(main))
