"""Stage I CAM inference or stage II evaluation (mmengine Runner), with mmseg's contract.

Stage II configs (``configs/stage2/``, mmseg scope): single-scale evaluation by default,
``--tta`` for mmseg's multi-scale + flip test, ``--out DIR`` for ``<img_id>.png`` palette
predictions, ``--show-dir DIR`` for image | prediction | ground truth panels; metrics with
per-class IoU and the seeds the checkpoint was trained on go to
``<work_dir>/metrics_<split>[_tta].json``.

Stage I:

Writes ``<out>/<img_id>.npz`` CAM files plus a ``cams`` manifest through ``CAMMetric``; ``--out``
defaults to ``<work_dir>/cams/<split>`` (``cams_tta`` with ``--tta``). With ground-truth paths
(dataset ``with_gt=True``) it also logs CAM mIoU per background exponent (monitoring only).
``--tta`` fuses CAMs over scales and flips (the config's ``tta``, else scales 1, 0.5, 1.5, 2
with flips, summed; the paper's inference is single-scale); ``--show-dir DIR`` writes image +
CAM overlay panels of the first ``--show-num`` images.

One writer per output folder: the run holds the lock (:func:`fma.engine.config.output_lock`, rank 0
only under a launcher) of the folders it writes into (stage I: the CAM folder; stage II: the work
dir with the metrics and ``--out``; ``--show-dir`` in both) until it exits, so a second run into
them stops at once naming the first one's pid. The checkpoint is read as data only and must fit
the model key for key and shape for shape (:mod:`fma.engine.checkpoints`); otherwise the run stops
with one ``error:`` line naming the file (exit status 2).

Example::

    python tools/test.py configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py \\
        work_dirs/fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12/iter_1800.pth
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
from fma.engine.checkpoints import (
    CheckpointError,
    CheckpointFitHook,
    check_checkpoint_file,
    checkpoint_exit,
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
    apply_test_options,
    check_cuda_ops,
    is_stage2,
)
from fma.clip.weights import detect_format
from fma.mmseg_ext.classes import DatasetClassesError
from fma.io.manifest import file_sha256
from fma.models.prompt_clip import tta_settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Stage I CAM inference or stage II evaluation")
    p.add_argument(
        "config", type=Path, help="config file (configs/stage1/*.py, configs/stage2/*.py)"
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint written by tools/train.py")
    p.add_argument("--work-dir", help="where logs go (default work_dirs/<stem>)")
    p.add_argument(
        "--out",
        help="stage I: CAM folder (default <work_dir>/cams/<split>); stage II: prediction PNGs",
    )
    p.add_argument("--tta", action="store_true", help="multi-scale + flip test (CAM fusion)")
    p.add_argument("--show-dir", help="folder for panels (<img_id>.png)")
    p.add_argument("--show-num", type=int, default=20, help="panels written (per process)")
    p.add_argument(
        "--cfg-options", nargs="+", action=CfgOptionsAction, default={},
        help="override config entries, e.g. +test_dataloader.dataset.indices=10",
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
    """Config with the command-line overrides applied (work dir, checkpoint, CAM folder, TTA,
    panels)."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options, exit_on_error=True)
    cfg.work_dir = str(tool_work_dir(args.config, cfg, args.work_dir))
    cfg.load_from = str(args.checkpoint)
    if is_stage2(cfg):
        adapt_to_custom_dataset(cfg, for_test=True)
        apply_test_options(
            cfg,
            config=args.config,
            out=args.out,
            tta=args.tta,
            show_dir=args.show_dir,
            show_num=args.show_num,
        )
        return cfg
    split = cfg.test_dataloader.dataset.get("split", "test")
    if args.out is not None:
        cfg.test_evaluator.output_dir = args.out
    elif cfg.test_evaluator.get("output_dir") is None:  # TTA CAMs never mix with plain ones
        folder = "cams_tta" if args.tta else "cams"
        cfg.test_evaluator.output_dir = str(Path(cfg.work_dir) / folder / split)
    cfg.test_evaluator.setdefault("split", split)
    if args.tta:  # True = PromptCLIP's defaults
        cfg.model.tta = cfg.get("tta") or True
    if args.show_dir is not None:
        cfg.test_evaluator.show_dir = args.show_dir
        cfg.test_evaluator.show_num = args.show_num
    cfg.test_evaluator.config = str(args.config)
    # What decides the CAMs: a rerun into the same folder with other values is refused.
    cfg.test_evaluator.params = {
        "checkpoint_sha256": file_sha256(args.checkpoint),
        "tta": tta_settings(cfg.model.get("tta")),
    }
    pretrained = cfg.model.get("clip", {}).get("pretrained")
    if isinstance(pretrained, str) and Path(pretrained).is_file():  # a tag or None: no file
        cfg.test_evaluator.params["clip_weights"] = {
            "format": detect_format(pretrained),  # torchscript, state_dict or safetensors
            "sha256": file_sha256(pretrained),
        }
    return cfg


def output_folders(cfg: Config) -> list[str]:
    """The folders the run writes its results into (the one-writer lock is held on each)."""
    evaluator = cfg.test_evaluator
    folders = [evaluator.get("output_dir"), evaluator.get("show_dir")]
    if evaluator.get("metrics_file"):  # stage II: the metrics JSON (default in the work dir)
        folders.append(str(Path(evaluator.metrics_file).parent))
    return [str(f) for f in folders if f]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not args.checkpoint.is_file():  # a folder or a missing path (build_cfg hashes it)
            check_checkpoint_file(args.checkpoint)
        cfg = build_cfg(args)  # a --cfg-options mistake is named first
        check_checkpoint_file(args.checkpoint)  # empty, damaged or holding code
    except CheckpointError as exc:
        raise checkpoint_exit(exc, args.launcher) from None
    except DatasetClassesError as exc:  # a test set of other classes, unfit class weights
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    check_clip_weights(cfg, exit_on_error=True)  # stage I: a missing CLIP file in one line
    if is_stage2(cfg):
        check_cuda_ops(cfg, require_compiled=args.require_compiled_ops)
    with output_lock(output_folders(cfg), launcher=args.launcher, option="--work-dir, --out"):
        prepare_cpu_dist(cfg, args.launcher)
        runner = Runner.from_cfg(cfg)
        runner.register_hook(CheckpointFitHook(args.checkpoint, str(args.config)))
        try:
            with mmengine_checkpoint_globals():  # the checkpoint holds mmengine's own objects
                runner.test()
        except CheckpointError as exc:  # raised before any weight is loaded
            raise checkpoint_exit(exc, args.launcher) from None
    close_dist()  # before exit: a gloo group torn down at shutdown can abort the rank
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
