"""A tiny CLIP (open_clip's own classes) pretrained contrastively on synthetic captions.

The demo's stand-in for OpenAI's ViT-B/16: the architecture :data:`TINY_CLIP_CONFIG` (a 1-layer
ViT with 8-pixel patches, i.e. a 12 x 12 token grid on 96-pixel images, average-pooled patch
tokens, which is the image embedding FMA-WSSS's Softmax-GradCAM differentiates; with one block its
input is the patch embedding itself, so the CAMs stay local; a 2-layer text
tower with CLIP's BPE vocabulary and 32 token positions). It is trained from random weights with
a symmetric contrastive loss (several positives per row: captions naming the same classes and
background) on a *pretraining corpus* generated in memory by :func:`fma.demo.data.demo_sample`
with seeds disjoint from the demo's train and val images, captioned by
:func:`fma.demo.data.demo_caption` ("a photo of a cat and a cow on the grass."); one image in
:data:`EMPTY_EVERY` shows only its background ("a photo of the grass."). With ``crop_min < 1``
each step sees random square crops captioned with the classes they keep. The corpus plays the
role of CLIP's web data: the demo set itself is never seen. Progress (step, elapsed, estimate,
loss) is printed every ``log_every`` steps.

Output folder (``--out``)::

    demo_tiny_clip.json   the open_clip architecture (model name = file stem)
    demo_tiny_clip.pt     the state dict (open_clip's checkpoint format, torch.save)
    metrics.json          loss at the start / end, zero-shot top-1 on 128 held-out images,
                          their zero-shot segmentation mIoU (:func:`zero_shot_segmentation`)
                          and zero-shot Softmax-GradCAM mIoU (:func:`zero_shot_gradcam`), the
                          learned and the stored logit scale (:data:`LOGIT_SCALE`)
    manifest.json         settings and the checkpoint's sha256; a rerun with the same settings
                          skips, other settings are refused

Load it as open_clip does (``open_clip.add_model_config(DIR / "demo_tiny_clip.json")``, then
``open_clip.create_model("demo_tiny_clip", pretrained=DIR / "demo_tiny_clip.pt")``) or in a
stage I config through the normal weights path: ``model.clip.pretrained=DIR/demo_tiny_clip.pt
model.clip.model_name=demo_tiny_clip model.clip.model_config=DIR/demo_tiny_clip.json``.

    python -m fma.demo.tiny_clip --out work_dirs/demo/tiny_clip [--steps 300] [--threads 2]
"""

# ruff: noqa: E402  (the imports below open_clip follow fma.setup())
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import fma

fma.setup()  # first: torchvision's nms repaired before open_clip imports it

from fma.clip.pretrain import (
    contrastive_loss,
    create_trainable_clip,
    save_clip_checkpoint,
    tokenize,
)
from fma.datasets.meta import VOC12
from fma.demo.data import DEMO_CLASSES, MIN_PIXELS, demo_caption, demo_sample
from fma.demo.data import VERSION as IMAGES_VERSION
from fma.evaluation.confusion import confusion_matrix, per_class_iou
from fma.io import (
    Manifest,
    file_sha256,
    producer_info,
    read_manifest,
    write_json_atomic,
    write_manifest,
)
from fma.models.data_preprocessor import CLIP_MEAN, CLIP_STD

__all__ = [
    "MODEL_NAME",
    "TINY_CLIP_CONFIG",
    "make_corpus",
    "pretrain_tiny_clip",
    "zero_shot_gradcam",
    "zero_shot_segmentation",
]

MODEL_NAME = "demo_tiny_clip"
#: open_clip architecture of the demo's CLIP (written as ``<out>/demo_tiny_clip.json``).
TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {
        "image_size": 96,
        "layers": 1,
        "width": 64,
        "head_width": 32,
        "patch_size": 8,
        "pool_type": "avg",
    },
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
FORMAT = "tiny_clip"
VERSION = 1
EMPTY_EVERY = 6  # one pretraining image in six shows only its background
#: Temperature written into the checkpoint after pretraining (``--logit-scale``): the
#: pretraining learns its own (about 17), but Softmax-GradCAM saturates there (one class takes
#: the whole softmax and its gradient vanishes); at 2 the zero-shot GradCAMs of held-out images
#: localise best (``zero_shot_gradcam_miou``: about 44 mIoU at the learned scale, 56 at 2, on
#: version 1 of the demo images).
LOGIT_SCALE = 2.0
CORPUS_SEED = 7_000_000  # corpus sample seeds start here (the demo set uses 0..1e6)


def _corpus(
    num: int, size: int, seed: int, empty_every: int = 0
) -> tuple[torch.Tensor, list[tuple[int, ...]], list[str], np.ndarray]:
    """:func:`make_corpus` plus the (num, size, size) uint8 ground truth of every image."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255
    imgs, classes, bgs, gts = [], [], [], []
    for i in range(num):
        empty = empty_every > 0 and i % empty_every == empty_every - 1
        img, gt, cls, bg = demo_sample(CORPUS_SEED + seed * 100_003 + i, size, 0 if empty else None)
        imgs.append(torch.from_numpy(img).permute(2, 0, 1))
        classes.append(tuple(cls))
        bgs.append(bg)
        gts.append(gt)
    images = (torch.stack(imgs).float() - mean) / std
    return images, classes, bgs, np.stack(gts)


def make_corpus(
    num: int, size: int, seed: int, empty_every: int = EMPTY_EVERY
) -> tuple[torch.Tensor, list[tuple[int, ...]], list[str]]:
    """Generate ``num`` pretraining images in memory; every ``empty_every``-th one shows only
    its background (captioned "a photo of the grass.", as the web shows empty scenes).

    Returns:
        ``(images, classes, backgrounds)``: (num, 3, size, size) float32 images normalised
        with CLIP's mean / std; per image the tuple of VOC class ids; the background names.
    """
    images, classes, bgs, _ = _corpus(num, size, seed, empty_every)
    return images, classes, bgs


def zero_shot_segmentation(
    model: Any, images: torch.Tensor, classes: list[tuple[int, ...]], gts: np.ndarray, ctx: int
) -> float:
    """Patch-text alignment: mIoU (percent) of a zero-shot segmentation of held-out images.

    Each patch gets the cosine similarity to "a photo of a {name}." of each of its image's
    classes; per class the similarities are min-max normalised over the image's patches, the
    background scores ``1 - max`` (the CAM scoring of :func:`fma.cam.cam_to_label` with
    power 1), the argmax is repeated to pixels and compared with the ground truth (255
    ignored). A CLIP whose patch tokens ignore where the objects are scores about the chance
    level; one that localises them scores high.

    Args:
        images: (N, 3, S, S) normalised images; ``classes`` their VOC ids; ``gts`` (N, S, S)
            uint8 ground truth.
    """
    fg = [f"a photo of a {n}." for n in VOC12.clip_fg_names]
    visual = model.visual
    with torch.no_grad():
        txt = torch.nn.functional.normalize(model.encode_text(tokenize(fg, ctx)), dim=-1)
        visual.output_tokens = True
        try:
            _, tokens = visual(images)
        finally:
            visual.output_tokens = False
        patches = torch.nn.functional.normalize(tokens @ visual.proj, dim=-1)  # (N, T, E)
        sim = patches @ txt.T  # (N, T, 20)
    n, t = sim.shape[:2]
    lo, hi = sim.amin(dim=1, keepdim=True), sim.amax(dim=1, keepdim=True)
    norm = (sim - lo) / (hi - lo).clamp_min(1e-6)
    labels = torch.zeros(n, 20, dtype=torch.bool)
    for i, cls in enumerate(classes):
        labels[i, [c - 1 for c in cls]] = True
    norm = torch.where(labels[:, None, :], norm, torch.tensor(-1.0))
    score = torch.cat([1 - norm.amax(dim=-1, keepdim=True).clamp_min(0), norm], dim=-1)
    side = round(t**0.5)
    pred = score.argmax(dim=-1).reshape(n, side, side).numpy().astype(np.int64)
    pred = pred.repeat(gts.shape[1] // side, axis=1).repeat(gts.shape[2] // side, axis=2)
    return _miou_of_gt_classes(confusion_matrix(pred, gts, 21))


def zero_shot_gradcam(
    model: Any, images: torch.Tensor, classes: list[tuple[int, ...]], gts: np.ndarray, ctx: int
) -> float:
    """What stage I starts from: mIoU (percent) of the Softmax-GradCAMs of held-out images.

    The CAMs of FMA-WSSS (:func:`fma.cam.softmax_gradcam` on the input of the last block, the
    model's logit scale, the hand prompts "a photo of a {name}." for the 20 classes and the
    CLIP-ES background names), scored as the demo scores CAMs (:func:`fma.cam.cam_to_label`,
    background power 1) against the ground truth (255 ignored).
    """
    from fma.cam import cam_to_label, softmax_gradcam
    from fma.clip.backbone import CLIPImageEncoder

    names = [*VOC12.clip_fg_names, *VOC12.clip_bg_names]
    with torch.no_grad():
        txt = model.encode_text(tokenize([f"a photo of a {n}." for n in names], ctx))
        txt = torch.nn.functional.normalize(txt, dim=-1)
    enc, scale = CLIPImageEncoder(model.visual), model.logit_scale.exp().detach()
    labels = torch.zeros(len(classes), 20, dtype=torch.long)
    for i, cls in enumerate(classes):
        labels[i, [c - 1 for c in cls]] = 1
    feats = enc.forward_features(images)

    def head(act: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        x_out, _ = enc.last_block(feats.x_in[rows], act)
        return scale * torch.nn.functional.normalize(enc.pool(x_out), dim=-1) @ txt.T

    out = softmax_gradcam(feats.act, head, labels, feats.grid)
    cm = np.zeros((21, 22), dtype=np.int64)
    for i, gt in enumerate(gts):
        sel = out.img_idx == i
        if not bool(sel.any()):
            continue
        pred = cam_to_label(out.cam[sel].detach(), out.fg_idx[sel] + 1, gt.shape).numpy()
        cm += confusion_matrix(pred, gt, 21)
    return _miou_of_gt_classes(cm)


def _miou_of_gt_classes(cm: np.ndarray) -> float:
    """mIoU (percent) over the classes the ground truth holds, of a (21, 22) confusion matrix
    (:func:`fma.evaluation.confusion.confusion_matrix`; the predictions here never ignore)."""
    return float(np.mean(per_class_iou(cm)[cm.sum(axis=1) > 0]))


def _random_crops(
    images: torch.Tensor, gts: np.ndarray, crop_min: float, rng: np.random.Generator
) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """Square random crops (side ``crop_min`` to 1 of the image) resized back to full size,
    with the classes that keep at least ``MIN_PIXELS`` pixels (in crop pixels) inside.

    Args:
        images: (B, 3, S, S) float images; gts: (B, S, S) uint8 ground truth.

    Returns:
        (B, 3, S, S) crops and the tuple of VOC class ids of each.
    """
    size = images.shape[-1]
    out, classes = [], []
    for img, gt in zip(images, gts, strict=True):
        side = int(size * rng.uniform(crop_min, 1.0))
        y, x = (int(v) for v in rng.integers(0, size - side + 1, size=2))
        crop = img[None, :, y : y + side, x : x + side]
        out.append(torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear"))
        counts = np.bincount(gt[y : y + side, x : x + side].ravel(), minlength=256)
        need = MIN_PIXELS * (side / size) ** 2
        classes.append(tuple(c for c in sorted(DEMO_CLASSES) if counts[c] >= need))
    return torch.cat(out), classes


class _Progress:
    """One progress line per call (``what i/n``, elapsed, estimate), flushed at once."""

    def __init__(self, what: str, total: int, every: int) -> None:
        self.what, self.total, self.every, self.t0 = what, total, max(1, every), time.perf_counter()

    def __call__(self, done: int, extra: str = "") -> None:
        if done % self.every and done != self.total:
            return
        took = time.perf_counter() - self.t0
        eta = took / max(done, 1) * (self.total - done)
        print(f"{self.what} {done}/{self.total}  {took:.0f} s elapsed, ~{eta:.0f} s left"
              f"{extra}", flush=True)  # fmt: skip


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
    threads: int | None = None,
    log_every: int = 25,
    crop_min: float = 1.0,
    logit_scale: float | None = None,
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
        "corpus": corpus, "lr": lr, "seed": seed, "crop_min": crop_min,
        "images_version": IMAGES_VERSION,  # the corpus is drawn with fma.demo.data's looks
    }  # fmt: skip
    if logit_scale is not None:
        params["logit_scale"] = logit_scale
    params = json.loads(json.dumps(params))
    ckpt = out / f"{MODEL_NAME}.pt"
    old = read_manifest(out, required=False)
    if old is not None:
        same = {k: v for k, v in old.params.items() if k in params} == params
        if old.format != FORMAT or not same:
            raise ValueError(
                f"{out}: holds a tiny CLIP trained with other settings or on an earlier "
                f"version of the demo images; delete it or choose another --out"
            )
        if ckpt.is_file() and file_sha256(ckpt) == old.params.get("checkpoint_sha256"):
            return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    if threads is not None:  # otherwise torch's default (OMP_NUM_THREADS or the cores)
        torch.set_num_threads(threads)
    cfg_path = out / f"{MODEL_NAME}.json"
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cfg_path, TINY_CLIP_CONFIG)
    model, _ = create_trainable_clip(cfg_path, seed=seed)
    size = TINY_CLIP_CONFIG["vision_cfg"]["image_size"]
    ctx = TINY_CLIP_CONFIG["text_cfg"]["context_length"]
    t0 = time.perf_counter()
    if log_every:
        print(f"tiny CLIP: generating {corpus} + 128 held-out images", flush=True)
    images, classes, bgs, gts = _corpus(corpus, size, seed, EMPTY_EVERY)
    held_images, held_classes, _, held_gts = _corpus(128, size, seed + 1)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)),
    )
    zero_shot_before = _zero_shot(model.eval(), held_images, held_classes, ctx)
    model.train()
    losses = []
    progress = _Progress("tiny CLIP step", steps, log_every or steps + 1)
    for step in range(steps):
        idx = rng.choice(corpus, size=batch_size, replace=False)
        if crop_min < 1:
            x, crop_classes = _random_crops(images[idx], gts[idx], crop_min, rng)
        else:
            x, crop_classes = images[idx], [classes[i] for i in idx]
        flip = torch.from_numpy(rng.random(batch_size) < 0.5)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        keys = [(c, bgs[i]) for c, i in zip(crop_classes, idx, strict=True)]
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
        if log_every:
            progress(step + 1, f", loss {losses[-1]:.3f}")
    model.eval()
    learned_scale = float(model.logit_scale.detach().exp())
    if logit_scale is not None:  # the checkpoint's temperature (see LOGIT_SCALE)
        with torch.no_grad():
            model.logit_scale.fill_(float(np.log(logit_scale)))
    metrics = {
        "logit_scale_learned": learned_scale,
        "logit_scale": float(model.logit_scale.detach().exp()),
        "loss_first": float(np.mean(losses[: max(1, steps // 20)])),
        "loss_last": float(np.mean(losses[-max(1, steps // 20) :])),
        "zero_shot_top1_before": zero_shot_before,
        "zero_shot_top1": _zero_shot(model, held_images, held_classes, ctx),
        "zero_shot_top1_chance": float(np.mean([len(c) / 20 for c in held_classes])),
        "zero_shot_seg_miou": zero_shot_segmentation(
            model, held_images, held_classes, held_gts, ctx
        ),
        "zero_shot_gradcam_miou": zero_shot_gradcam(
            model, held_images, held_classes, held_gts, ctx
        ),
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
    p.add_argument(
        "--crop-min", type=float, default=1.0,
        help="random square crops of this share of the side up to 1 (1: whole images)",
    )  # fmt: skip
    p.add_argument(
        "--logit-scale", type=float, default=LOGIT_SCALE,
        help="temperature stored in the checkpoint (0: keep the learned one)",
    )  # fmt: skip
    p.add_argument(
        "--threads", type=int, help="torch threads (default: OMP_NUM_THREADS, else the cores)"
    )
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
            lr=args.lr, seed=args.seed, threads=args.threads, crop_min=args.crop_min,
            logit_scale=args.logit_scale or None,
        )  # fmt: skip
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"tiny CLIP: {Path(args.out) / (MODEL_NAME + '.pt')}  loss {m['loss_first']:.3f} -> "
        f"{m['loss_last']:.3f}; zero-shot top-1 on 128 held-out images "
        f"{100 * m['zero_shot_top1']:.1f}% "
        f"(random weights {100 * m['zero_shot_top1_before']:.1f}%, "
        f"chance {100 * m['zero_shot_top1_chance']:.1f}%); zero-shot segmentation of the same "
        f"images (patch-text alignment) {m.get('zero_shot_seg_miou', float('nan')):.1f} mIoU, "
        f"zero-shot Softmax-GradCAM {m.get('zero_shot_gradcam_miou', float('nan')):.1f} mIoU "
        f"(logit scale {m.get('logit_scale', float('nan')):.1f}, learned "
        f"{m.get('logit_scale_learned', float('nan')):.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
