"""Benchmark Softmax-GradCAM: one batched backward vs one backward per positive class.

Methods: ``loop`` (one backward per positive, the reference), ``vmap`` (``is_grads_batched``
over slots, as the original code), ``rows`` (one row per positive, one plain backward) and
``func`` (one forward, then ``torch.func.vmap`` over the VJP with one cotangent per slot). The
``tta`` row (inference only) times :meth:`fma.models.PromptCLIP.predict` with the default
multi-scale + flip fusion (scales 1, 0.5, 1.5, 2, both flips: 8 views; no CAA), so its
``speed-up`` column shows the cost of TTA against the per-positive loop at one scale.

Runs CAM computation (frozen CLIP image tower + CoOp text prompts + Softmax-GradCAM) with random
weights, in a fresh subprocess per configuration so that peak memory is per configuration.
``infer`` computes the text features once (fixed prompts) and times image tower + GradCAM;
``train`` also runs the text tower, keeps the gradient graph (``create_graph=True``) and
back-propagates a loss on the CAMs into the prompt contexts.

Usage::

    python benchmarks/cams.py                       # tiny CLIP and ViT-B/16 on CPU
    python benchmarks/cams.py --models tiny --repeats 10
    python benchmarks/cams.py --device cuda --models vit-b16,vit-b16-512

Columns: ``img/s`` images per second and ``ms/batch`` from the fastest of the timed repeats
(after one warm-up; shared machines are noisy, the median is printed too), ``peak MiB`` the
extra memory of one step over the loaded model (CUDA: ``max_memory_allocated``; CPU: peak RSS
of the first step minus the RSS before it), ``speed-up`` of each method over the per-positive
loop (fastest times).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_JSON = REPO / "tests" / "data" / "tiny_clip.json"

# name: (open_clip model, batch, image height, image width, n_ctx)
MODELS = {
    "tiny": ("tiny_clip", 8, 64, 96, 4),
    "vit-b16": ("ViT-B-16", 1, 224, 224, 16),
    "vit-b16-512": ("ViT-B-16", 1, 384, 512, 16),
}
NUM_FG, NUM_BG, NUM_POS = 20, 25, 3
# loop: one backward per positive; func / rows / vmap: softmax_gradcam(batching=...); tta:
# PromptCLIP.predict with multi-scale + flip fusion (inference only)
METHODS = ("loop", "vmap", "rows", "func")
TTA_METHOD = "tta"


def _status_mib(key: str) -> float:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> float:
    """Reset the peak-RSS counter (Linux ``clear_refs`` 5); return the current RSS in MiB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_mib("VmRSS")


def _run(cfg: dict, queue: mp.Queue) -> None:
    import fma

    fma.setup()  # first: makes torchvision, hence open_clip, importable
    import open_clip
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from oracle_gradcam import softmax_gradcam_loop

    from fma.cam import softmax_gradcam
    from fma.clip import CLIPImageEncoder, PromptLearner, TextEncoder, load_clip

    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights" is intended here
    if cfg["threads"] > 0:
        torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    if cfg["arch"] == "tiny_clip":
        open_clip.add_model_config(TINY_JSON)
    dev = torch.device(cfg["device"])
    n, h, w = cfg["batch"], cfg["height"], cfg["width"]
    images = torch.randn(n, 3, h, w, device=dev)
    labels = torch.zeros(n, NUM_FG, dtype=torch.long, device=dev)
    for i in range(n):
        labels[i, torch.randperm(NUM_FG)[:NUM_POS].to(dev)] = 1
    train = cfg["mode"] == "train"

    if cfg["method"] == TTA_METHOD:
        step = _tta_step(cfg, images, labels)
    else:
        clip = load_clip(cfg["arch"], pretrained=None, device=dev)
        enc, text = CLIPImageEncoder(clip.visual), TextEncoder(clip)
        names = [f"class{i}" for i in range(NUM_FG)] + [f"bg{i}" for i in range(NUM_BG)]
        pl = PromptLearner(names, clip.token_embedding, n_ctx=cfg["n_ctx"]).to(dev)
        with torch.no_grad():  # inference: prompts are fixed, text features computed once
            txt_fixed = F.normalize(text(pl(), pl.token_ids), dim=-1)

        def step() -> None:
            feats = enc.forward_features(images)
            txt = F.normalize(text(pl(), pl.token_ids), dim=-1) if train else txt_fixed

            def head(act: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
                x_out, _ = enc.last_block(feats.x_in[rows], act)
                return clip.logit_scale.exp() * F.normalize(enc.pool(x_out), dim=-1) @ txt.T

            if cfg["method"] == "loop":
                out = softmax_gradcam_loop(feats.act, head, labels, feats.grid, create_graph=train)
            else:
                out = softmax_gradcam(
                    feats.act, head, labels, feats.grid, create_graph=train,
                    batching=cfg["method"],
                )  # fmt: skip
            if train:
                out.cam.clamp_min(0).mean().backward()
                pl.zero_grad(set_to_none=True)

    # Memory: one step (the warm-up) measured from a fresh peak counter; timing: the repeats.
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    base = _reset_peak_rss()
    step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        peak = max(_status_mib("VmHWM") - base, 0.0)
    times = []
    for _ in range(cfg["repeats"]):
        t0 = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    queue.put(
        {"min": min(times), "median": statistics.median(times), "peak": peak,
         "threads": torch.get_num_threads()}
    )  # fmt: skip


def _tta_step(cfg: dict, images, labels):
    """``PromptCLIP.predict`` with the default multi-scale + flip fusion (VOC prompts: G = 45)."""
    import torch
    from mmengine.structures import BaseDataElement

    from fma.models import PromptCLIP
    from fma.models.prompt_clip import DEFAULT_TTA

    clip = {"model_name": cfg["arch"], "pretrained": None}
    model = PromptCLIP(clip=clip, n_ctx=cfg["n_ctx"], att_layers=0, caa=None, tta=DEFAULT_TTA)
    model.to(images.device).eval()
    ids = [(row.nonzero().flatten() + 1).cpu() for row in labels]

    def step() -> None:
        samples = [BaseDataElement(gt_labels=i) for i in ids]
        with torch.no_grad():  # as mmengine's test loop
            model.predict(images, samples)

    return step


def measure(cfg: dict) -> dict:
    """Run one configuration in a fresh process; returns seconds per batch and peak MiB."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(cfg, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"benchmark process failed (exit code {proc.exitcode}) for {cfg}")
    return queue.get(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny,vit-b16", help=f"comma list of {list(MODELS)}")
    parser.add_argument("--modes", default="infer,train", help="infer (no graph), train")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()

    header = (
        f"{'model':<12} {'mode':<6} {'batch':>5} {'input':>9} {'method':<8} "
        f"{'img/s':>8} {'ms/batch':>9} {'median ms':>10} {'peak MiB':>9} {'speed-up':>8}"
    )
    print(f"Softmax-GradCAM, {NUM_POS} positive classes per image, G = {NUM_FG}+{NUM_BG} prompts")
    print(header)
    print("-" * len(header))
    for name in args.models.split(","):
        arch, batch, h, w, n_ctx = MODELS[name]
        for mode in args.modes.split(","):
            methods = METHODS + ((TTA_METHOD,) if mode == "infer" else ())
            res = {}
            for method in methods:
                cfg = dict(
                    arch=arch, batch=batch, height=h, width=w, n_ctx=n_ctx, method=method,
                    mode=mode, device=args.device, repeats=args.repeats, threads=args.threads,
                )  # fmt: skip
                res[method] = measure(cfg)
            for method in methods:
                r = res[method]
                speed = res["loop"]["min"] / r["min"]
                print(
                    f"{name:<12} {mode:<6} {batch:>5} {f'{h}x{w}':>9} {method:<8} "
                    f"{batch / r['min']:>8.2f} {1000 * r['min']:>9.1f} "
                    f"{1000 * r['median']:>10.1f} {r['peak']:>9.1f} {speed:>7.2f}x"
                )
    print(f"device {args.device}, torch threads {res['rows']['threads']}")


if __name__ == "__main__":
    main()
