"""Timing of one stage through the mmengine Runner for ``benchmarks/gpu.py``.

:func:`measure` builds a Runner from a real config with ``--cfg-options``-style overrides (keys
the config lacks dropped by :func:`valid`), trains (or tests) a few iterations with a hook that
times each one (model step: ``before_*_iter`` to ``after_*_iter``; loop: from one
``after_*_iter`` to the next, so the data wait counts; CUDA synchronised) and returns one row
with the medians and the peak CUDA memory. :func:`labelled_voc` gives the mini VOC set the
image-level labels stage I reads.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

__all__ = ["labelled_voc", "measure", "valid"]


class _Timer:
    """mmengine hook: model step and loop time of each train or test iteration."""

    priority = "VERY_LOW"

    def __init__(self, device: str) -> None:
        self.device, self.step, self.loop = device, [], []
        self._start = self._end = None

    def _now(self) -> float:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def before_iter(self, *args: Any, **kwargs: Any) -> None:
        self._start = self._now()

    def after_iter(self, *args: Any, **kwargs: Any) -> None:
        end = self._now()
        self.step.append(end - self._start)
        if self._end is not None:
            self.loop.append(end - self._end)
        self._end = end


def _hook(timer: _Timer) -> Any:
    from mmengine.hooks import Hook

    class TimerHook(Hook):
        priority = "VERY_LOW"
        before_train_iter = before_test_iter = timer.before_iter
        after_train_iter = after_test_iter = timer.after_iter

    return TimerHook()


def labelled_voc(voc_mini: Path, folder: Path) -> Path:
    """A VOC2012 tree of links to the mini VOC set plus ``cls_labels/train.json`` (stage I)."""
    from fma.datasets.labels import (
        image_labels_from_label_map,
        multi_hot_to_labels,
        save_image_labels,
    )
    from fma.datasets.meta import VOC12
    from fma.io import read_label_map

    src, root = voc_mini / "VOC2012", folder / "VOC2012"
    root.mkdir(parents=True)
    for name in ("JPEGImages", "SegmentationClass", "ImageSets"):
        (root / name).symlink_to((src / name).resolve())
    ids = (src / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    labels = {
        i: multi_hot_to_labels(
            image_labels_from_label_map(read_label_map(src / "SegmentationClass" / f"{i}.png"), 21)
        )
        for i in ids
    }
    save_image_labels(
        root / "cls_labels" / "train.json", labels, VOC12.class_names, "voc12", "train"
    )
    return root


def _runner(config: Path, options: dict[str, Any], work: Path, timer: _Timer, test: bool) -> Any:
    from mmengine.config import Config
    from mmengine.runner import Runner

    from fma.engine.config import merge_cfg_options

    options = dict(options)
    amp = options.pop("__amp", False)
    cfg = Config.fromfile(str(config))
    merge_cfg_options(cfg, options)
    cfg.work_dir, cfg.log_level, cfg.launcher = str(work), "WARNING", "none"
    if not test:  # no validation (mmengine's loop validates after the last iteration)
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    if amp:
        from fma.engine.amp import apply_amp

        apply_amp(cfg, "bf16")
    runner = Runner.from_cfg(cfg)
    runner.register_hook(_hook(timer))
    return runner


def _median(values: list[float], skip: int) -> float | None:
    kept = values[skip:] or values
    return round(statistics.median(kept), 4) if kept else None


def measure(
    args: argparse.Namespace,
    stage: str,
    precision: str,
    config: Path,
    options: dict[str, Any],
    test: bool = False,
    note: str = "",
) -> dict[str, Any]:
    """Train (or, with ``test``, test) ``config`` with ``options`` and time every iteration.

    ``args.warmup`` first iterations are left out of the medians; the peak CUDA memory covers
    the whole run (warm-up included, where cudnn autotuning allocates its workspaces). An
    ``"__amp": True`` entry of ``options`` trains in bf16 AMP (:func:`fma.engine.amp.apply_amp`).

    Returns:
        ``{"stage", "precision", "s_per_iter" (or "s_per_img" with test), "step_s",
        "peak_gib" (None off CUDA), "iterations", "wall_s", "config", "note"}``.
    """
    import torch

    cuda = args.device.startswith("cuda")
    timer, started = _Timer(args.device), time.perf_counter()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as work:
        runner = _runner(config, options, Path(work), timer, test)
        runner.test() if test else runner.train()
        del runner
    gc.collect()
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
    unit = "s_per_img" if test else "s_per_iter"
    return {
        "stage": stage,
        "precision": precision,
        unit: _median(timer.loop, args.warmup - 1),
        "step_s": _median(timer.step, args.warmup),
        "peak_gib": peak,
        "iterations": len(timer.step),
        "wall_s": round(time.perf_counter() - started, 1),
        "config": str(config.relative_to(REPO)),
        "note": note,
    }


def valid(config: Path, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without the keys this config does not hold (``+`` keys are kept)."""
    from mmengine.config import Config

    from fma.engine.config import ConfigKeyError, merge_cfg_options

    cfg, out = Config.fromfile(str(config)), {}
    for key, value in options.items():
        try:
            merge_cfg_options(cfg, {key: value})
            out[key] = value
        except ConfigKeyError:
            continue
    return out
