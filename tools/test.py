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

Example::

    python tools/test.py configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py \\
        work_dirs/fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12/iter_1800.pth
"""

import fma  # noqa: F401, I001  (first: sets up the package before anything else)

import argparse
import os
from pathlib import Path

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from fma._compat import mmengine_checkpoint_globals
from fma.apis.config import check_clip_weights, merge_cfg_options, tool_work_dir
from fma.apis.dist import prepare_cpu_dist
from fma.apis.stage2 import (
    adapt_to_custom_dataset,
    apply_test_options,
    check_cuda_ops,
    is_stage2,
)
from fma.clip.weights import detect_format
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
        "--cfg-options", nargs="+", action=DictAction, default={},
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
    if not args.checkpoint.is_file():
        p.error(f"checkpoint {args.checkpoint} does not exist")
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = build_cfg(args)
    check_clip_weights(cfg, exit_on_error=True)  # stage I: a missing CLIP file in one line
    if is_stage2(cfg):
        check_cuda_ops(cfg, require_compiled=args.require_compiled_ops)
    prepare_cpu_dist(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    with mmengine_checkpoint_globals():  # the checkpoint holds mmengine's own objects
        runner.test()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
