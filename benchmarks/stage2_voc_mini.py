"""Stage II on real images: train a small segmenter on the 330 mini-VOC train images with three
kinds of labels and evaluate each on the 346 val images (CPU, random initialisation).

Rows: (a) the ground truth, (b) the TransCAM pseudo labels (mIoU 65.58 on train), (c) TransCAM
refined by SEPL (``max_iou_imp2``) with oracle masks (connected components of the ground-truth
class regions; 71.62 on train). Every row runs ``tools/train.py`` and ``tools/test.py`` in its own
process on the same network, schedule and seed, and reports val mIoU, wall time and the peak
resident memory of those processes. No pretrained backbone can be loaded offline, so the numbers
are low; what matters is that real images flow through training and evaluation and that better
labels give a better network.

Run: ``python benchmarks/stage2_voc_mini.py [--voc-mini DIR] [--iters 600] [--rows gt sepl]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "stage2" / "deeplabv3plus_r18-tiny_1xb2-cpu_voc12-seed-64x64.py"

# DeepLabV3+ ResNet-18-V1c with 16 base channels, 96x96 crops of images scaled to a short side
# of 96-144 px, batch 16, AdamW: about the smallest network that learns something from scratch
# in minutes on two cores.
CONFIG = """
_base_ = [{tiny!r}]
crop_size = (96, 96)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(base_channels=16, stem_channels=16),
    decode_head=dict(in_channels=128, c1_in_channels=16, c1_channels=16, channels=32),
    auxiliary_head=dict(in_channels=64, channels=16),
)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="RandomResize", scale=(384, 96), ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(384, 112), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="PackSegInputs"),
]
total_batch = 16
train_dataloader = dict(batch_size=16, dataset=dict(split="train", pipeline=train_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
optim_wrapper = dict(_delete_=True, type="OptimWrapper",
                     optimizer=dict(type="AdamW", lr=4e-3, weight_decay=1e-4))
param_scheduler = [dict(type="PolyLR", eta_min=1e-5, power=0.9, begin=0, end={iters},
                        by_epoch=False)]
train_cfg = dict(max_iters={iters}, val_interval={iters})
val_cfg = None  # evaluated once, by tools/test.py
val_dataloader = None
val_evaluator = None
default_hooks = dict(checkpoint=dict(interval={iters}, save_best=None), logger=dict(interval=50))
"""


def _child(tool: str, argv: list[str], rss_file: str) -> int:
    """Run one tool in this process and record its peak resident memory (MiB)."""
    sys.path.insert(0, str(REPO / "tests"))
    from tool_modules import load_tool

    code = load_tool(tool).main(argv)
    Path(rss_file).write_text(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    return code


def _run(tool: str, argv: list[str], work: Path) -> float:
    rss = work / f"{tool}.rss"
    cmd = [sys.executable, __file__, "--child", tool, str(rss), "--", *argv]
    log = work / f"{tool}.log"
    with open(log, "w") as out:
        proc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{tool} failed (exit {proc.returncode}); see {log}")
    return float(rss.read_text())


def _sepl_labels(voc: Path, transcam: Path, out: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from oracle_masks import write_oracle_amg_folders

    from fma.apis.refine import refine_label_dir
    from fma.datasets.layout import DatasetLayout

    layout = DatasetLayout.of("voc12", voc)
    ids = layout.image_ids("train")
    masks = write_oracle_amg_folders(layout.labels_dir("train"), ids, out / "oracle_masks")
    refine_label_dir(transcam, masks, out / "sepl", dataset="voc12", progress=False)
    return out / "sepl"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--voc-mini", type=Path, default=REPO.parent / "shared/data/voc2012-mini")
    p.add_argument("--iters", type=int, default=600, help="training iterations per row")
    p.add_argument("--rows", nargs="+", default=["gt", "transcam", "sepl"])
    p.add_argument("--work", type=Path, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args.child[0], args.rest, args.child[1])
    voc = args.voc_mini / "VOC2012"
    if not (voc / "SegmentationClass").is_dir():
        raise SystemExit(f"mini VOC set not found at {args.voc_mini}; pass --voc-mini")
    root = args.work or Path(tempfile.mkdtemp(prefix="fma_stage2_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    config = root / "bench_config.py"
    config.write_text(CONFIG.format(tiny=str(TINY), iters=args.iters))
    transcam = args.voc_mini / "pseudo_labels" / "transcam"
    labels = {"gt": voc / "SegmentationClass", "transcam": transcam}
    if "sepl" in args.rows:
        labels["sepl"] = _sepl_labels(voc, transcam, root)
    names = {"gt": "(a) ground truth", "transcam": "(b) TransCAM", "sepl": "(c) TransCAM + SEPL"}
    print(f"{os.cpu_count()} CPUs, {args.iters} iterations x batch 16 per row, work dir {root}")
    rows = []
    for row in args.rows:
        work = root / row
        work.mkdir(exist_ok=True)
        data = [
            f"train_dataloader.dataset.data_root={voc}",
            f"train_dataloader.dataset.seed_dir={labels[row]}",
            f"test_dataloader.dataset.data_root={voc}",
        ]
        start = time.perf_counter()
        rss_train = _run(
            "train", [str(config), "--work-dir", str(work), "--cfg-options", *data], work
        )
        t_train = time.perf_counter() - start
        ckpt = work / f"iter_{args.iters}.pth"
        start = time.perf_counter()
        rss_test = _run(
            "test", [str(config), str(ckpt), "--work-dir", str(work), "--cfg-options", *data], work
        )
        t_test = time.perf_counter() - start
        metrics = json.loads((work / "metrics_val.json").read_text())
        rows.append(
            (
                names[row],
                metrics["mIoU"],
                metrics["aAcc"],
                t_train,
                t_test,
                max(rss_train, rss_test),
            )
        )
    head = ("labels (330 train images)", "val mIoU", "aAcc", "train s", "test s", "peak MiB")
    print("\n{:<26} {:>9} {:>7} {:>8} {:>7} {:>9}".format(*head))
    for name, miou, aacc, t_train, t_test, rss in rows:
        print(f"{name:<26} {miou:>9.2f} {aacc:>7.2f} {t_train:>8.0f} {t_test:>7.0f} {rss:>9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
