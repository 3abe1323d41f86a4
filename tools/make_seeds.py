"""Make SAMS seeds (method-fma section 9): a CAM folder + a SAM mask folder -> seed PNGs.

The config's ``seeding = dict(...)`` holds the keyword arguments of
:func:`fma.apis.seeds.run_seeding` (cam_dir, mask_dir, dataset, split, ...) with the SAMS
settings (gamma, norm_first, ...) written flat (:func:`fma.apis.seeds.seeding_kwargs`).
Seeds go to ``<work_dir>/seeds/<split>/`` unless the config sets ``out_dir``;
``work_dir`` is ``--work-dir``, else the config's ``work_dir``, else ``work_dirs/<config stem>``.
Finished images are skipped, so a rerun resumes. Exit codes: 0 success, 1 some images failed or
the inputs are unusable (message on stderr), 2 bad arguments.

Example::

    python tools/make_seeds.py configs/seeding/sams-coarse_voc12.py --workers 8 \\
        --show-dir work_dirs/sams-coarse_voc12/show
"""

import fma._no_blas_threads  # noqa: F401, I001  (first: the package, then one BLAS thread)

import argparse
import os
import sys
from pathlib import Path


from fma.engine.config import CfgOptionsAction
from fma.engine.config import ConfigSectionError, load_section, tool_work_dir

from fma.io import ManifestError
from fma.apis.seeds import run_seeding, seeding_kwargs
from fma.stage import tool_exit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", type=Path, help="seeding config file (configs/seeding/*.py)")
    p.add_argument("--work-dir", type=Path, help="output root (default: work_dirs/<stem>)")
    p.add_argument(
        "--cfg-options", nargs="+", action=CfgOptionsAction, default={},
        help="override config entries, e.g. seeding.gamma=0.5",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1),
        help="CPU worker processes (0: run in this process; default min(8, CPUs))",
    )  # fmt: skip
    p.add_argument("--show-dir", type=Path, help="write image|CAM|masks|seed panels here")
    p.add_argument("--num-show", type=int, default=8, help="number of panels (default 8)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if not args.config.is_file():
        p.error(f"config {args.config} does not exist")
    if args.workers < 0:
        p.error("--workers must be >= 0")
    if args.num_show < 0:
        p.error("--num-show must be >= 0")
    return args


# run_seeding arguments this tool sets itself (command-line options), not seeding keys.
TOOL_SET = ("workers", "progress", "show_dir", "num_show", "config", "tool")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg, kwargs = load_section(
            args.config, "seeding", args.cfg_options, func=seeding_kwargs, reserved=TOOL_SET
        )
    except ConfigSectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    work_dir = tool_work_dir(args.config, cfg, args.work_dir)
    if args.work_dir is not None or not kwargs.get("out_dir"):
        if not kwargs.get("split"):
            print("error: set seeding.split (names the output folder)", file=sys.stderr)
            return 2
        kwargs["out_dir"] = work_dir / "seeds" / kwargs["split"]
    for key in ("cam_dir", "mask_dir"):
        if key not in kwargs:
            print(f"error: the seeding section lacks {key}", file=sys.stderr)
            return 2
    try:
        report = run_seeding(
            **seeding_kwargs(**kwargs), workers=args.workers, progress=not args.no_progress,
            show_dir=args.show_dir, num_show=args.num_show, config=args.config,
        )  # fmt: skip
    except TypeError as exc:
        print(f"error: bad seeding config entry: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, ManifestError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    print(f"seeds: {kwargs['out_dir']}")
    if args.show_dir is not None:
        print(f"panels: {args.show_dir}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(tool_exit(main))
