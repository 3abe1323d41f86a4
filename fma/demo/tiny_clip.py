"""A tiny CLIP (open_clip's own classes) pretrained contrastively on synthetic captions.

The demo's stand-in for OpenAI's ViT-B/16: the architecture :data:`TINY_CLIP_CONFIG` (a 2-layer
ViT with 8-pixel patches, i.e. a 12 x 12 token grid on 96-pixel images, average-pooled patch
tokens, which is the image embedding FMA-WSSS's Softmax-GradCAM differentiates; a 2-layer text
tower with CLIP's BPE vocabulary and 32 token positions). It is trained from random weights with
a symmetric contrastive loss (several positives per row: captions naming the same classes and
background) on a *pretraining corpus* generated in memory by :func:`fma.demo.data.demo_sample`
with seeds disjoint from the demo's train and val images, captioned by
:func:`fma.demo.data.demo_caption` ("a photo of a cat and a cow on the grass."). The corpus
plays the role of CLIP's web data: the demo set itself is never seen.

Output folder (``--out``)::

    demo_tiny_clip.json   the open_clip architecture (model name = file stem)
    demo_tiny_clip.pt     the state dict (open_clip's checkpoint format, torch.save)
    metrics.json          loss at the start / end, zero-shot accuracy on held-out images
    manifest.json         settings and the checkpoint's sha256; a rerun with the same settings
                          skips, other settings are refused

Load it as open_clip does (``open_clip.add_model_config(DIR / "demo_tiny_clip.json")``, then
``open_clip.create_model("demo_tiny_clip", pretrained=DIR / "demo_tiny_clip.pt")``) or in a
stage I config through the normal weights path: ``model.clip.pretrained=DIR/demo_tiny_clip.pt
model.clip.model_name=demo_tiny_clip model.clip.model_config=DIR/demo_tiny_clip.json``.

    python -m fma.demo.tiny_clip --out work_dirs/demo/tiny_clip [--steps 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import fma  # noqa: F401  (first: the compatibility hooks before open_clip)
from fma.clip.pretrain import (
    contrastive_loss,
    create_trainable_clip,
    save_clip_checkpoint,
    tokenize,
)
from fma.datasets.meta import VOC12
from fma.demo.data import DEMO_CLASSES, demo_caption, demo_sample
from fma.io import (
    Manifest,
    file_sha256,
    producer_info,
    read_manifest,
    write_json_atomic,
    write_manifest,
)
from fma.models.data_preprocessor import CLIP_MEAN, CLIP_STD

__all__ = ["MODEL_NAME", "TINY_CLIP_CONFIG", "make_corpus", "pretrain_tiny_clip"]

MODEL_NAME = "demo_tiny_clip"
#: open_clip architecture of the demo's CLIP (written as ``<out>/demo_tiny_clip.json``).
TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {
        "image_size": 96,
        "layers": 2,
        "width": 64,
        "head_width": 32,
        "patch_size": 8,
        "pool_type": "avg",
    },
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
FORMAT = "tiny_clip"
VERSION = 1
CORPUS_SEED = 7_000_000  # corpus sample seeds start here (the demo set uses 0..1e6)


def make_corpus(
    num: int, size: int, seed: int
) -> tuple[torch.Tensor, list[tuple[int, ...]], list[str]]:
    """Generate ``num`` pretraining images in memory.

    Returns:
        ``(images, classes, backgrounds)``: (num, 3, size, size) float32 images normalised
        with CLIP's mean / std; per image the tuple of VOC class ids; the background names.
    """
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255
    imgs, classes, bgs = [], [], []
    for i in range(num):
        img, _, cls, bg = demo_sample(CORPUS_SEED + seed * 100_003 + i, size)
        imgs.append(torch.from_numpy(img).permute(2, 0, 1))
        classes.append(tuple(cls))
        bgs.append(bg)
    images = (torch.stack(imgs).float() - mean) / std
    return images, classes, bgs


def _zero_shot(model: Any, images: torch.Tensor, classes: list[tuple[int, ...]], ctx: int) -> float:
    """Share of images whose best-scoring of the 20 VOC prompts "a photo of a {name}." is
    one of its classes."""
    prompts = [f"a photo of a {n}." for n in VOC12.clip_fg_names]
    with torch.no_grad():
        txt = torch.nn.functional.normalize(model.encode_text(tokenize(prompts, ctx)), dim=-1)
        img = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
    best = (img @ txt.T).argmax(dim=1) + 1  # VOC class ids
    return float(np.mean([int(b) in c for b, c in zip(best.tolist(), classes, strict=True)]))


def pretrain_tiny_clip(
    out: str | Path,
    *,
    steps: int = 300,
    batch_size: int = 64,
    corpus: int = 512,
    lr: float = 2e-3,
    seed: int = 0,
    threads: int = 2,
    log_every: int = 50,
) -> dict[str, float]:
    """Pretrain the tiny CLIP and write the output folder (module docstring); return metrics.

    A folder whose manifest holds the same settings and whose checkpoint still has the
    recorded sha256 is kept as it is (the stored metrics are returned).

    Raises:
        ValueError: the folder holds a tiny CLIP trained with other settings.
    """
    out = Path(out)
    params = {
        "config": TINY_CLIP_CONFIG, "steps": steps, "batch_size": batch_size,
        "corpus": corpus, "lr": lr, "seed": seed,
    }  # fmt: skip
    params = json.loads(json.dumps(params))
    ckpt = out / f"{MODEL_NAME}.pt"
    old = read_manifest(out, required=False)
    if old is not None:
        same = {k: v for k, v in old.params.items() if k in params} == params
        if old.format != FORMAT or not same:
            raise ValueError(
                f"{out}: holds a tiny CLIP trained with other settings; delete it or choose "
                "another --out"
            )
        if ckpt.is_file() and file_sha256(ckpt) == old.params.get("checkpoint_sha256"):
            return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    torch.set_num_threads(threads)
    cfg_path = out / f"{MODEL_NAME}.json"
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cfg_path, TINY_CLIP_CONFIG)
    model, _ = create_trainable_clip(cfg_path, seed=seed)
    size = TINY_CLIP_CONFIG["vision_cfg"]["image_size"]
    ctx = TINY_CLIP_CONFIG["text_cfg"]["context_length"]
    t0 = time.perf_counter()
    images, classes, bgs = make_corpus(corpus, size, seed)
    held_images, held_classes, _ = make_corpus(128, size, seed + 1)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)),
    )
    zero_shot_before = _zero_shot(model.eval(), held_images, held_classes, ctx)
    model.train()
    losses = []
    for step in range(steps):
        idx = rng.choice(corpus, size=batch_size, replace=False)
        x = images[idx]
        flip = torch.from_numpy(rng.random(batch_size) < 0.5)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        keys = [(classes[i], bgs[i]) for i in idx]
        texts = [demo_caption(c, b, rng) for c, b in keys]
        same = torch.tensor([[a == b for b in keys] for a in keys])
        loss = contrastive_loss(
            model.encode_image(x), model.encode_text(tokenize(texts, ctx)), model.logit_scale, same
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        losses.append(float(loss.detach()))
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"tiny CLIP step {step + 1}/{steps}  loss {losses[-1]:.3f}", flush=True)
    model.eval()
    metrics = {
        "loss_first": float(np.mean(losses[: max(1, steps // 20)])),
        "loss_last": float(np.mean(losses[-max(1, steps // 20) :])),
        "zero_shot_top1_before": zero_shot_before,
        "zero_shot_top1": _zero_shot(model, held_images, held_classes, ctx),
        "zero_shot_top1_chance": float(np.mean([len(c) / 20 for c in held_classes])),
        "train_s": time.perf_counter() - t0,
    }
    save_clip_checkpoint(model, ckpt)
    write_json_atomic(out / "metrics.json", metrics)
    write_manifest(
        out,
        Manifest(
            format=FORMAT, version=VERSION, count=1, dataset="voc12",
            class_names=list(VOC12.class_names), producer=producer_info("fma.demo.tiny_clip"),
            params={**params, "checkpoint_sha256": file_sha256(ckpt),
                    "demo_classes": sorted(DEMO_CLASSES)},
        ),
    )  # fmt: skip
    return metrics


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Pretrain the demo's tiny CLIP on synthetic captions.")
    p.add_argument("--out", required=True, help="output folder (checkpoint, config, manifest)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--corpus", type=int, default=512, help="pretraining images (in memory)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument(
        "--clip",
        help="the pipeline's CLIP weights: when they are not OUT/demo_tiny_clip.pt (real "
        "weights), nothing is trained",
    )
    args = p.parse_args(argv)
    own = (Path(args.out) / f"{MODEL_NAME}.pt").resolve()
    if args.clip and Path(args.clip).resolve() != own:
        if not Path(args.clip).is_file():
            print(f"error: CLIP weights {args.clip} not found", file=sys.stderr)
            return 1
        print(f"tiny CLIP: not trained, stage I uses {args.clip}")
        return 0
    if args.steps < 1 or args.batch_size < 2 or args.corpus < args.batch_size:
        p.error("need --steps >= 1, --batch-size >= 2 and --corpus >= --batch-size")
    try:
        m = pretrain_tiny_clip(
            args.out, steps=args.steps, batch_size=args.batch_size, corpus=args.corpus,
            lr=args.lr, seed=args.seed, threads=args.threads,
        )  # fmt: skip
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"tiny CLIP: {Path(args.out) / (MODEL_NAME + '.pt')}  loss {m['loss_first']:.3f} -> "
        f"{m['loss_last']:.3f}; zero-shot top-1 on 128 held-out images "
        f"{100 * m['zero_shot_top1']:.1f}% "
        f"(random weights {100 * m['zero_shot_top1_before']:.1f}%, "
        f"chance {100 * m['zero_shot_top1_chance']:.1f}%)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
