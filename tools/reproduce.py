"""Run a whole method from a pipeline config, resumable, and check its numbers.

Runs the steps of ``configs/pipelines/<name>.py`` in order, each as its own process from the
repository root, skipping steps whose record matches their current inputs and config
(:mod:`fma.pipeline.runner`). ``--verify`` compares the produced metrics with
``configs/metafile.yml`` (:mod:`fma.pipeline.leaderboard`). Before the first step (and with
``--dry-run``) the preflight (:mod:`fma.pipeline.preflight`) checks every input that should exist,
weights hashes, the total batch against the process count and free disk, and prints the plan
with estimated GPU-hours. One run at a time per work dir; a step dies with the runner (even
after ``kill -9``), and SIGINT/SIGTERM are passed to it. Exit codes: 0 success (or every number
within tolerance), 1 a step failed / the preflight found a problem / a number missed or is
missing / another run holds the work dir, 2 bad arguments or config, 130 interrupted, 143
stopped by SIGTERM.

Examples::

    python tools/reproduce.py configs/pipelines/fma_voc12.py --dry-run
    python tools/reproduce.py configs/pipelines/fma_voc12.py --data-root data/VOCdevkit/VOC2012 \\
        --launcher pytorch --nproc-per-node 2
    python tools/reproduce.py configs/pipelines/fma_voc12.py --from fine_seeds
    python tools/reproduce.py configs/pipelines/sepl_voc12.py --set pseudo_labels=PATH
    python tools/reproduce.py --verify configs/pipelines/fma_voc12.py
"""

import fma  # noqa: F401, I001  (first: a missing install fails here, with a plain ImportError)

import argparse
import signal
import sys
from pathlib import Path

from fma.pipeline.leaderboard import MetafileError, format_checks, verify
from fma.pipeline.runner import Launcher, format_summary, records_summary, run_pipeline
from fma.pipeline.config import PipelineError, load_pipeline, parse_set_options
from fma.pipeline.preflight import PreflightError
from fma.io.atomic import OutputError
from fma.io.manifest import FolderLockedError

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pipeline", nargs="?", type=Path, help="pipeline config (configs/pipelines/)")
    p.add_argument("--work-dir", help="replaces the pipeline's work_dir")
    p.add_argument("--data-root", help="sets vars.data_root")
    p.add_argument("--clip", help="sets vars.clip (CLIP weights: open_clip tag or file)")
    p.add_argument("--sam", help="sets vars.sam (SAM checkpoint file)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="sets vars.KEY")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--from", dest="start", metavar="STEP", help="run STEP and all after it")
    sel.add_argument("--only", metavar="STEP", help="run STEP only")
    p.add_argument("--dry-run", action="store_true",
                   help="run the preflight, print the plan and the commands; run nothing (exit 1 "
                   "when the preflight finds a problem)")  # fmt: skip
    p.add_argument("--allow-batch-change", action="store_true",
                   help="where a config's total_batch cannot be split over the processes, "
                   "train with the total they give (batch_size x processes), not stop")  # fmt: skip
    p.add_argument("--quiet", action="store_true",
                   help="steps log to <work_dir>/pipeline/logs/ only (on a terminal one "
                   "updating line shows each step's progress; the end of a failed one is "
                   "shown)")  # fmt: skip
    p.add_argument("--summary", action="store_true", help="print the table from the records")
    p.add_argument("--verify", action="store_true", help="check the metrics against the metafile")
    p.add_argument("--metafile", type=Path, default=REPO / "configs" / "metafile.yml")
    p.add_argument("--launcher", choices=["none", "pytorch"], default="none",
                   help="'pytorch': distributed steps run under torchrun")  # fmt: skip
    p.add_argument("--nproc-per-node", type=int, default=1)
    p.add_argument("--nnodes", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--master-addr", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=29500)
    args = p.parse_args(argv)
    if args.pipeline is None and not args.verify:
        p.error("give a PIPELINE_CONFIG (or --verify)")
    if args.pipeline is not None and not args.pipeline.is_file():
        p.error(f"pipeline config {args.pipeline} does not exist")
    if min(args.nproc_per_node, args.nnodes) < 1 or not 0 <= args.node_rank < args.nnodes:
        p.error("need --nproc-per-node >= 1, --nnodes >= 1 and 0 <= --node-rank < --nnodes")
    return args


def _from_cwd(path: str | None) -> str | None:
    """A path given relative to the caller's directory, made absolute when the steps (run from
    the repository root) would read it elsewhere; other values (an open_clip tag) stay."""
    if path is None or Path(path).is_absolute() or Path.cwd().resolve() == REPO:
        return path
    return str(Path(path).resolve()) if Path(path).exists() or "/" in path else path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        overrides = parse_set_options(args.set)
        named = {"data_root": args.data_root, "clip": args.clip, "sam": args.sam}
        overrides.update({k: _from_cwd(v) for k, v in named.items() if v is not None})
        args.work_dir = _from_cwd(args.work_dir)
        if args.verify:
            checks = verify(args.metafile, REPO, pipeline=args.pipeline, work_dir=args.work_dir,
                            overrides=overrides)  # fmt: skip
            format_checks(checks, sys.stdout)
            return 1 if any(c.failed for c in checks) else 0
        pipeline = load_pipeline(args.pipeline, root=REPO, work_dir=args.work_dir,
                                 overrides=overrides, run_checks=not args.summary)  # fmt: skip
        if args.summary:
            print(format_summary(pipeline, records_summary(pipeline)))
            return 0
        launcher = Launcher(args.launcher, args.nproc_per_node, args.nnodes, args.node_rank,
                            args.master_addr, args.master_port)  # fmt: skip
        return run_pipeline(pipeline, start=args.start, only=args.only, dry_run=args.dry_run,
                            launcher=launcher, quiet=args.quiet,
                            allow_batch_change=args.allow_batch_change)  # fmt: skip
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (PipelineError, MetafileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FolderLockedError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # a StopRun (SIGTERM) carries its signal
        print("\ninterrupted; rerun the same command to continue", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
