"""Train stage I prompts or a stage II segmenter (mmengine Runner), with mmseg's contract.

The work dir defaults to ``work_dirs/<config stem>``. Stage I checkpoints hold only the prompt
contexts. Stage II configs (``configs/stage2/``, mmseg scope) get their backbone weights checked
(and downloaded with a sha256 check when missing and known); a CUDA run of Mask2Former without
compiled mmcv ops uses mmcv's pure-PyTorch deformable attention (one warning), or stops before
training with ``--require-compiled-ops``.

``--amp bf16`` trains in bfloat16 mixed precision (CUDA or CPU), ``--amp fp16`` (or a bare
``--amp``) in float16 with loss scaling (CUDA); without it the config's precision, fp32 for stage
II as in the paper (:mod:`fma.engine.amp`; recorded as ``fma_amp`` in the dumped config and the
checkpoints).

The config's ``total_batch`` is held on any number of processes (``WORLD_SIZE`` of torchrun with
``--launcher pytorch``, else 1): the per-process batch and gradient accumulation are derived from
it, one iteration stays one optimizer update (:mod:`fma.engine.total_batch`), and the plan is
recorded in the checkpoints (``meta['fma_batch']``). A total that cannot be held stops the run
with one ``error:`` line; ``--cfg-options total_batch=N`` chooses another total.

One writer per work dir: the run holds the work dir's lock (:func:`fma.engine.config.output_lock`,
rank 0 only under a launcher) until it exits, so a second run into the same work dir stops at
once naming the first one's pid. A checkpoint to resume from (``--resume``: the work dir's
``last_checkpoint``) or to start from (``load_from``) is read as data only and must fit the
model key for key and shape for shape (:mod:`fma.engine.checkpoints`); otherwise the run stops
with one ``error:`` line naming the file (exit status 2).

Examples::

    python tools/train.py configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py \\
        --cfg-options model.clip.pretrained=pretrains/clip/ViT-B-16.pt
    bash tools/dist_train.sh \\
        configs/stage2/mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py 2
"""

# ruff: noqa: E402, I001  (imports follow fma.setup(), in the order they need)
import fma

fma.setup()  # first: torchvision's nms and mmcv's _ext repaired before anything imports them

import argparse
import os
import sys
from pathlib import Path

from mmengine.config import Config
from mmengine.runner import Runner

from fma._compat import mmengine_checkpoint_globals
from fma.engine.amp import AMP_CHOICES, AmpError, apply_amp
from fma.engine.checkpoints import (
    CheckpointError,
    CheckpointFitHook,
    check_checkpoint_file,
    checkpoint_exit,
    checkpoint_to_load,
)
from fma.engine.config import (
    CfgOptionsAction,
    check_clip_weights,
    merge_cfg_options,
    output_lock,
    tool_work_dir,
)
from fma.engine.dist import close_dist, prepare_cpu_dist
from fma.engine.stage2 import (
    adapt_to_custom_dataset,
    check_cuda_ops,
    is_stage2,
    resolve_pretrained,
)
from fma.mmseg_ext.classes import DatasetClassesError
from fma.engine.total_batch import TotalBatchError, TotalBatchHook, apply_total_batch, world_size_of


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train stage I prompts or a stage II segmenter")
    p.add_argument(
        "config", type=Path, help="config file (configs/stage1/*.py, configs/stage2/*.py)"
    )
    p.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<stem>)")
    p.add_argument("--resume", action="store_true", help="resume from the latest checkpoint")
    p.add_argument(
        "--amp", nargs="?", const="fp16", choices=AMP_CHOICES, default=None,
        help="mixed precision: bf16 (bfloat16 autocast, CUDA or CPU) or fp16 (float16 autocast "
        "with loss scaling, CUDA; a bare --amp); without it the config's precision (stage II: "
        "fp32)",
    )  # fmt: skip
    p.add_argument(
        "--no-download", action="store_true",
        help="stage II: never download missing backbone weights (stop and say where to put them)",
    )  # fmt: skip
    p.add_argument(
        "--cfg-options", nargs="+", action=CfgOptionsAction, default={},
        help="override config entries, e.g. train_cfg.max_iters=10",
    )  # fmt: skip
    p.add_argument(
        "--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
        help="job launcher",
    )  # fmt: skip
    p.add_argument(
        "--require-compiled-ops", action="store_true",
        help="stage II: stop a CUDA run of a deformable-attention model (Mask2Former) when mmcv "
        "has no compiled ops, instead of running mmcv's pure-PyTorch deformable attention",
    )  # fmt: skip
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = p.parse_args(argv)
    if not args.config.is_file():
        p.error(f"config {args.config} does not exist")
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def build_cfg(args: argparse.Namespace) -> Config:
    """Config with the command-line overrides applied (work dir, AMP, resume, launcher)."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options, exit_on_error=True)
    cfg.work_dir = str(tool_work_dir(args.config, cfg, args.work_dir))
    try:
        apply_amp(cfg, args.amp)
    except AmpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    cfg.resume = args.resume
    if is_stage2(cfg):
        adapt_to_custom_dataset(cfg)
    return cfg


def hold_total_batch(cfg: Config, args: argparse.Namespace) -> None:
    """Derive the per-process batch and accumulation from ``total_batch`` and the world size;
    a total that cannot be held prints one ``error:`` line (rank 0) and exits with status 2."""
    overridden = any(k.lstrip("+") == "total_batch" for k in args.cfg_options)
    try:
        world = world_size_of(args.launcher)
        apply_total_batch(cfg, world, config=args.config, overridden=overridden)
    except TotalBatchError as exc:
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_cfg(args)
    except DatasetClassesError as exc:  # a validation set of other classes, unfit class weights
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    check_clip_weights(cfg, exit_on_error=True)  # stage I: a missing CLIP file in one line
    hold_total_batch(cfg, args)
    # One writer per work dir, taken before anything is built or written (rank 0 only).
    with output_lock([cfg.work_dir], launcher=args.launcher, option="--work-dir"):
        source = checkpoint_to_load(cfg)  # --resume's last checkpoint, or load_from
        try:
            if source is not None:
                check_checkpoint_file(source, option="--resume" if cfg.resume else "load_from")
        except CheckpointError as exc:
            raise checkpoint_exit(exc, args.launcher) from None
        if is_stage2(cfg):
            check_cuda_ops(cfg, require_compiled=args.require_compiled_ops)
            local_rank = int(os.environ.get("LOCAL_RANK", 0))
            resolve_pretrained(cfg, download=not args.no_download, local_rank=local_rank)
        prepare_cpu_dist(cfg, args.launcher)
        runner = Runner.from_cfg(cfg)
        runner.register_hook(TotalBatchHook())
        runner.register_hook(CheckpointFitHook(source, str(args.config)))
        try:
            with mmengine_checkpoint_globals():  # --resume reads this run's own checkpoints
                runner.train()
        except CheckpointError as exc:  # raised before any weight is loaded or iteration run
            raise checkpoint_exit(exc, args.launcher) from None
    close_dist()  # before exit: a gloo group torn down at shutdown can abort the rank
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
