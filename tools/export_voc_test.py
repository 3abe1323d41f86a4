"""Predict the PASCAL VOC 2012 test images with a stage II checkpoint, in the server's layout.

Writes ``<out>/results/VOC2012/Segmentation/comp6_test_cls/<id>.png`` (palette PNGs, the VOC
colours; comp6 = trained on data other than the VOC segmentation ground truth) and
``<out>/results.tar.gz``, ready to upload to the evaluation server. The test images and the list
``ImageSets/Segmentation/test.txt`` come from the VOC 2012 test release, unpacked into the same
``VOC2012`` folder (``--data-root``).

Example::

    python tools/export_voc_test.py \\
        configs/stage2/mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py \\
        work_dirs/mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512/best_mIoU_iter_30000.pth
"""

# ruff: noqa: E402, I001  (imports follow fma.setup(), in the order they need)
import fma

fma.setup()  # first: torchvision's nms and mmcv's _ext repaired before anything imports them

import argparse
import os
from pathlib import Path

from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.runner import Runner

from fma._compat import mmengine_checkpoint_globals
from fma.engine.config import CfgOptionsAction, tool_work_dir
from fma.engine.dist import close_dist, prepare_cpu_dist
from fma.engine.stage2 import apply_export_options, check_cuda_ops, make_server_archive
from fma.datasets.layout import DatasetLayout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="VOC 2012 test-set predictions for the server")
    p.add_argument("config", type=Path, help="stage II VOC config (configs/stage2/*voc12*.py)")
    p.add_argument("checkpoint", type=Path, help="checkpoint written by tools/train.py")
    p.add_argument("--data-root", help="VOC2012 folder with the test images (default: config's)")
    p.add_argument("--split", default="test", help="image list to predict (default test)")
    p.add_argument("--out", help="output folder (default <work_dir>/voc_test)")
    p.add_argument("--work-dir", help="where logs go (default work_dirs/<stem>)")
    p.add_argument("--tta", action="store_true", help="multi-scale + flip test")
    p.add_argument("--cfg-options", nargs="+", action=CfgOptionsAction, default={})
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = p.parse_args(argv)
    for path in (args.config, args.checkpoint):
        if not path.is_file():
            p.error(f"{path} does not exist")
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        cfg.test_dataloader.dataset.data_root = args.data_root
    cfg.work_dir = str(tool_work_dir(args.config, cfg, args.work_dir))
    cfg.load_from = str(args.checkpoint)
    out = Path(args.out or Path(cfg.work_dir) / "voc_test")
    folder = apply_export_options(cfg, out_root=out, split=args.split, tta=args.tta)
    check_cuda_ops(cfg)
    prepare_cpu_dist(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    with mmengine_checkpoint_globals():
        runner.test()
    if get_rank() == 0:
        layout = DatasetLayout.of("voc12", cfg.test_dataloader.dataset.data_root)
        archive = make_server_archive(out, layout.image_ids(args.split))
        print(f"{len(list(folder.glob('*.png')))} predictions in {folder}\nupload {archive}")
    close_dist()  # before exit: a gloo group torn down at shutdown can abort the rank
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
