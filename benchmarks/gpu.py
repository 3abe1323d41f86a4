"""The heavy stages on one device: seconds per iteration or image, peak memory, GPU-hours.

One command builds each heavy stage at full size from the real configs (random weights unless
weights are given), runs a few timed iterations after warm-up on the real mini VOC images
through the stage's real data pipeline and mmengine Runner loop (so data loading counts), prints
a table and writes JSON:

* SAM: the image encoder and the FMA mask preset, s/img per precision
  (``benchmarks/_gpu_sam.py``'s ``sam_rows``, or the file given with ``--sam-module``);
* stage I: prompt learning s/iter (classification and segmentation prompts, batch 16, the
  config's precision: fp16 AMP on CUDA, fp32 on the CPU) and CAMs s/img (``Runner.test``);
* stage II: DeepLabV3+ R101 and Mask2Former Swin-L s/iter and peak memory, fp32 and bf16 AMP
  (``tools/train.py --amp bf16``), cudnn autotuning as ``--cudnn-benchmark`` says (off by
  default; the row states it);
* GPU-hours of each real pipeline (VOC train_aug 10,582 images, COCO train 82,081): SAM s/img x
  images, CAM s/img x images x 2 (after each prompt stage), stage I and II s/iter x the configs'
  iterations (stage II: x total batch / per-process batch, the micro-batches of one update).

``s_per_iter``/``s_per_img`` is the median Runner loop time (data wait + step), ``step_s`` the
median model step (``before_train_iter`` to ``after_train_iter``, synchronised on CUDA).
``--device cpu --smoke`` runs the same code paths with tiny models (the tiny CLIP of
``tests/data/tiny_clip.json``, the tiny stage II configs) on a few images. Needs torch, fma and
its OpenMMLab packages only, no network.

Run: ``python benchmarks/gpu.py [--device cuda] [--voc-mini DIR] [--json OUT] [--stages ...]``
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import fma  # noqa: E402

fma.setup()  # compatibility repairs before torchvision, mmengine's Runner and mmseg

from _gpu_runner import labelled_voc, measure, valid  # noqa: E402

CFG = REPO / "configs"
STAGE1 = {
    "voc12": {
        "cls": "fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py",
        "seg": "fma-seg_prompt-clip-vit-b16_1xb16-17k_voc12.py",
    },
    "coco14": {
        "cls": "fma-cls_prompt-clip-vit-b16_1xb16-20500it_coco14.py",
        "seg": "fma-seg_prompt-clip-vit-b16_1xb16-75k_coco14.py",
    },
}
STAGE2 = {
    "voc12": {
        "deeplabv3plus": "deeplabv3plus_r101-d8_4xb4-40k_voc12aug-seed-512x512.py",
        "mask2former": "mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py",
    },
    "coco14": {
        "deeplabv3plus": "deeplabv3plus_r101-d8_4xb4-80k_coco14-seed-512x512.py",
        "mask2former": "mask2former_swin-l-in22k_2xb2-100k_coco14-seed-512x512.py",
    },
}
TINY2 = {
    "deeplabv3plus": "deeplabv3plus_r18-tiny_1xb2-cpu_voc12-seed-64x64.py",
    "mask2former": "mask2former_swin-tiny_1xb2-cpu_voc12-seed-64x64.py",
}
IMAGES = {"voc12": ("VOC train_aug", 10582), "coco14": ("COCO train", 82081)}
TINY_CLIP = [
    "model.clip.model_name=tiny_clip",
    f"+model.clip.model_config={REPO / 'tests' / 'data' / 'tiny_clip.json'}",
    "model.n_ctx=4",
    "model.att_layers=2",
    "train_dataloader.batch_size=2",
]


def stage1_rows(args: argparse.Namespace, voc: Path, seeds: Path) -> list[dict[str, Any]]:
    """Prompt learning s/iter (cls, seg) and CAM s/img through the stage I Runner."""
    rows, n = [], args.warmup + args.iters
    precision = "fp16 amp" if args.device.startswith("cuda") else "fp32"
    common = {
        "model.clip.pretrained": args.clip_weights,
        "train_cfg.max_iters": n,
        "train_dataloader.dataset.data_root": str(voc),
        "train_dataloader.dataset.split": "train",
        "default_hooks.checkpoint.interval": 10**9,
        "+default_hooks.checkpoint.save_last": False,
    }
    smoke = dict(v.split("=", 1) for v in TINY_CLIP) if args.smoke else {}
    smoke = {k: (int(v) if v.isdigit() else v) for k, v in smoke.items()}
    for kind in ("cls", "seg"):
        opts = {**common, **smoke}
        if kind == "seg":
            opts["train_dataloader.dataset.seed_dir"] = str(seeds)
        config = CFG / "stage1" / STAGE1["voc12"][kind]
        rows.append(
            measure(args, f"stage I {kind} prompts", precision, config, valid(config, opts))
        )
    cam_opts = {
        **common,
        **smoke,
        "test_dataloader.dataset.data_root": str(voc),
        "test_dataloader.dataset.split": "train",
        "+test_dataloader.dataset.indices": n,
        "test_evaluator.output_dir": None,
    }
    for key in (
        "train_cfg.max_iters",
        "default_hooks.checkpoint.interval",
        "+default_hooks.checkpoint.save_last",
        "train_dataloader.dataset.split",
    ):
        cam_opts.pop(key)
    config = CFG / "stage1" / STAGE1["voc12"]["cls"]
    with tempfile.TemporaryDirectory() as cams:
        cam_opts["test_evaluator.output_dir"] = cams
        rows.append(
            measure(
                args,
                "CAMs (Softmax-GradCAM + CAA)",
                precision,
                config,
                valid(config, cam_opts),
                test=True,
                note="cls prompts",
            )
        )
    return rows


def stage2_rows(args: argparse.Namespace, voc: Path, seeds: Path) -> list[dict[str, Any]]:
    """DeepLabV3+ and Mask2Former s/iter and peak memory, fp32 and bf16 AMP."""
    from fma.engine.stage2 import check_cuda_ops

    rows, n = [], args.warmup + args.iters
    for net in ("deeplabv3plus", "mask2former"):
        config = CFG / "stage2" / (TINY2[net] if args.smoke else STAGE2["voc12"][net])
        opts = {
            "train_dataloader.dataset.data_root": str(voc),
            "train_dataloader.dataset.split": "train",
            "train_dataloader.dataset.seed_dir": str(seeds),
            "train_cfg.max_iters": n,
            "train_cfg.val_interval": 10**9,
            "default_hooks.checkpoint.interval": 10**9,
            "default_hooks.checkpoint.save_last": False,
            "model.backbone.init_cfg": None,
            "model.pretrained": None,
            "env_cfg.cudnn_benchmark": args.cudnn_benchmark,
            "param_scheduler.0.end": n,
            "+default_hooks.checkpoint.save_best": None,
            "val_dataloader.dataset.data_root": str(voc),
            "test_dataloader.dataset.data_root": str(voc),
        }
        opts = valid(config, opts)
        if not args.smoke:
            from mmengine.config import Config

            check_cuda_ops(Config.fromfile(str(config)), cuda=args.device.startswith("cuda"))
        batch = _batch(config)
        for precision in args.stage2_precisions:
            note = (
                f"batch {batch['batch']} of total {batch['total']}; cudnn.benchmark "
                f"{'on' if args.cudnn_benchmark else 'off'}"
            )
            run_opts = {**opts, "__amp": precision == "bf16"}
            rows.append(measure(args, f"stage II {net}", precision, config, run_opts, note=note))
    return rows


@functools.cache
def _batch(config: Path) -> dict[str, int]:
    from mmengine.config import Config

    cfg = Config.fromfile(str(config))
    batch = int(cfg.train_dataloader.batch_size)
    return {
        "batch": batch,
        "total": int(cfg.get("total_batch") or batch),
        "iters": int(cfg.train_cfg.max_iters),
    }


def sam_rows_from(args: argparse.Namespace, images: list[Path]) -> list[dict[str, Any]]:
    module = Path(args.sam_module)
    if not module.is_file():
        return [
            {
                "stage": "sam",
                "precision": "-",
                "s_per_img": None,
                "peak_gib": None,
                "masks_per_img": None,
                "note": f"{module} not found",
            }
        ]
    spec = importlib.util.spec_from_file_location("_gpu_sam", module)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return list(
        mod.sam_rows(args.device, args.smoke, images, args.sam_checkpoint, args.sam_precisions)
    )


def gpu_hours(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GPU-hours of each real pipeline from the measured rows (None where a row is missing)."""

    def find(prefix: str, precision: str | None = None, key: str = "s_per_iter") -> float | None:
        for r in rows:
            ok = prefix in r["stage"] and precision in (None, r["precision"])
            if ok and r.get(key) is not None:
                return float(r[key])
        return None

    out = []
    for ds, (name, images) in IMAGES.items():
        for precision in ("fp32", "bf16"):
            parts: dict[str, float | None] = {}
            sam = find("preset", precision, "s_per_img")
            parts["sam masks"] = None if sam is None else sam * images / 3600
            for kind in ("cls", "seg"):
                s, iters = find(f"stage I {kind}"), _batch(CFG / "stage1" / STAGE1[ds][kind])
                parts[f"stage I {kind}"] = None if s is None else s * iters["iters"] / 3600
            cam = find("CAMs", None, "s_per_img")
            parts["CAMs x2"] = None if cam is None else cam * images * 2 / 3600
            for net in ("deeplabv3plus", "mask2former"):
                s, b = find(f"stage II {net}", precision), _batch(CFG / "stage2" / STAGE2[ds][net])
                micro = b["total"] // b["batch"]
                parts[f"stage II {net}"] = None if s is None else s * b["iters"] * micro / 3600
            known = {k: round(v, 2) for k, v in parts.items() if v is not None}
            out.append(
                {
                    "pipeline": f"{ds} ({name}, {images:,} images)",
                    "precision": precision,
                    "gpu_hours": known,
                    "missing": sorted(set(parts) - set(known)),
                }
            )
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| stage | precision | s/iter or s/img | step s | peak GiB | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        value = _fmt(r.get("s_per_iter", r.get("s_per_img")))
        unit = "s/iter" if "s_per_iter" in r else "s/img"
        lines.append(
            f"| {r['stage']} | {r['precision']} | {value} {unit} | "
            f"{_fmt(r.get('step_s'))} | {_fmt(r.get('peak_gib'))} | {r.get('note', '')} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:1 or cpu")
    p.add_argument("--smoke", action="store_true", help="tiny models, few images (CI)")
    p.add_argument("--voc-mini", type=Path, default=REPO.parent / "shared/data/voc2012-mini")
    p.add_argument("--json", type=Path, default=REPO / "work_dirs" / "gpu_benchmark.json")
    p.add_argument(
        "--stages",
        nargs="+",
        default=["sam", "stage1", "stage2"],
        choices=["sam", "stage1", "stage2"],
    )
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--iters", type=int, default=10, help="timed iterations")
    p.add_argument("--clip-weights", default=None, help="CLIP ViT-B/16 file (default random)")
    p.add_argument("--sam-checkpoint", default=None, help="SAM ViT-H file (default random)")
    p.add_argument("--sam-module", default=str(REPO / "benchmarks" / "_gpu_sam.py"))
    p.add_argument("--sam-precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    p.add_argument(
        "--stage2-precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"]
    )
    p.add_argument("--cudnn-benchmark", action="store_true", help="cudnn autotuning on")
    args = p.parse_args(argv)
    if args.smoke:
        args.warmup, args.iters = min(args.warmup, 1), min(args.iters, 2)
    return args


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device (use --device cpu)")
        return 2
    voc_mini = args.voc_mini
    if not (voc_mini / "VOC2012" / "JPEGImages").is_dir():
        print(f"error: no mini VOC set at {voc_mini} (--voc-mini DIR)")
        return 2
    seeds = voc_mini / "pseudo_labels" / "transcam"
    ids = (voc_mini / "VOC2012/ImageSets/Segmentation/train.txt").read_text().split()
    images = [voc_mini / "VOC2012" / "JPEGImages" / f"{i}.jpg" for i in ids]
    images = images[: 2 if args.smoke else args.warmup + args.iters]
    started, rows = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        voc = labelled_voc(voc_mini, Path(tmp))
        if "sam" in args.stages:
            rows += sam_rows_from(args, images)
        if "stage1" in args.stages:
            rows += stage1_rows(args, voc, seeds)
        if "stage2" in args.stages:
            rows += stage2_rows(args, voc, seeds)
    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    result = {
        "device": device,
        "torch": torch.__version__,
        "smoke": args.smoke,
        "cudnn_benchmark": args.cudnn_benchmark,
        "warmup": args.warmup,
        "iters": args.iters,
        "rows": rows,
        "pipelines": gpu_hours(rows),
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{device}, torch {torch.__version__}, {result['seconds']} s\n{_table(rows)}\n")
    for p in result["pipelines"]:
        print(f"{p['pipeline']} {p['precision']}: {p['gpu_hours']} (missing: {p['missing']})")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
