"""``SeedProvenanceHook``: every stage II number names the seeds it was trained on.

* Before training it describes the training labels (the seed folder, the sha256 of its
  ``manifest.json``, the manifest's producer, format, dataset, split and count), logs it, writes
  ``<work_dir>/seeds.json`` and stores it in every checkpoint (``meta['fma_seeds']``).
* At evaluation (validation during training, or ``tools/test.py`` on a checkpoint, whose meta it
  reads back) it hands the record, the iteration and the checkpoint to every
  :class:`~fma.mmseg_ext.metrics.SegMetric`, which writes it into its metrics JSON; with them the
  batch the network was trained with (``batch``: total, world size, per-process batch and
  accumulation; ``cfg.fma_batch`` of ``tools/train.py`` during training, the checkpoint's
  ``meta['fma_batch']`` at test, None when the checkpoint does not record it;
  :mod:`fma.engine.total_batch`).
* It stores torch's RNG state in each checkpoint and restores it on ``--resume`` at the first
  resumed iteration (after mmengine has replayed the data loader), so a resumed run continues
  bit for bit like an uninterrupted one (Mask2Former samples points with ``torch.rand``). Two
  states are kept: after the training iteration and after the validation that may follow it
  (building the validation loader draws from torch's RNG); the resume picks the one an
  uninterrupted run would have, from the iteration and ``val_interval``.
* Before the run it checks a CUDA run of a model with deformable attention (Mask2Former's pixel
  decoder) against mmcv's compiled ops (see :func:`check_compiled_ops`): without them (mmcv-lite)
  it switches ``MultiScaleDeformableAttention`` to mmcv's pure-PyTorch implementation with one
  warning (:func:`use_pytorch_deform_attn`), or stops when compiled ops are required
  (``--require-compiled-ops`` of ``tools/train.py`` / ``tools/test.py``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from fma.io.atomic import write_json_atomic
from fma.io.manifest import MANIFEST_NAME, file_sha256

__all__ = [
    "DEFORM_ATTN_COST",
    "MmcvOpsMissingError",
    "SeedProvenanceHook",
    "apply_deform_attn_path",
    "check_compiled_ops",
    "compiled_ops_missing",
    "deform_attn_path",
    "describe_seeds",
    "use_pytorch_deform_attn",
]

FULL_MMCV_HINT = (
    "pip uninstall -y mmcv-lite mmcv && pip install mmcv==2.1.0 --only-binary mmcv "
    "-f https://download.openmmlab.com/mmcv/dist/cu121/torch2.1/index.html  (prebuilt for "
    "torch 2.1 + CUDA 12.1: the whole recipe is requirements/gpu-cu121-mmcv.txt)"
)

#: What the pure-PyTorch deformable attention costs, as logged when it replaces the compiled op
#: (docs/benchmarks.md, "GPU": Mask2Former Swin-L, fp32, torch 2.11 + CUDA 13).
DEFORM_ATTN_COST = (
    "Mask2Former Swin-L fp32: measured 0.33 s/iter at batch 2 on one H200 vs mmcv's compiled op "
    "not measured"
)

DeformAttnPath = Literal["compiled", "pytorch", "fallback", "refuse"]


class MmcvOpsMissingError(RuntimeError):
    """Compiled mmcv ops were required (``--require-compiled-ops``) but mmcv has none."""

    def __init__(self, what: str = "model") -> None:
        super().__init__(
            f"this {what} uses multi-scale deformable attention (Mask2Former's pixel decoder) on "
            "CUDA and compiled mmcv ops were required (--require-compiled-ops), but the "
            "installed mmcv has no compiled ops (mmcv-lite). Install the full mmcv: "
            f"{FULL_MMCV_HINT}; or drop --require-compiled-ops to run mmcv's pure-PyTorch "
            "deformable attention instead"
        )


def compiled_ops_missing() -> bool:
    """True when mmcv has no compiled ``mmcv._ext`` (mmcv-lite, where ``fma._compat`` stands in)."""
    import importlib.util

    import mmcv  # noqa: F401  (lets fma._compat decide whether a real mmcv._ext exists)

    from fma import _compat

    return _compat.status()["mmcv_ext_stub"] or importlib.util.find_spec("mmcv._ext") is None


def deform_attn_path(*, compiled_ops: bool, cuda: bool, require_compiled: bool) -> DeformAttnPath:
    """Which multi-scale deformable attention a run uses (a pure decision, no side effects).

    Args:
        compiled_ops: mmcv has its compiled ``mmcv._ext`` (not mmcv-lite).
        cuda: the run puts the model on a CUDA device.
        require_compiled: the user asked for the compiled op (``--require-compiled-ops``).

    Returns:
        ``"pytorch"``: off CUDA mmcv itself runs its pure-PyTorch function (nothing to do);
        ``"compiled"``: mmcv's CUDA kernel; ``"fallback"``: CUDA without compiled ops, so
        :func:`use_pytorch_deform_attn` must route the forward to the PyTorch function;
        ``"refuse"``: CUDA without compiled ops although they were required.
    """
    if not cuda:
        return "pytorch"
    if compiled_ops:
        return "compiled"
    return "refuse" if require_compiled else "fallback"


class _PytorchMSDeformAttnFunction:
    """Takes the place of mmcv's ``MultiScaleDeformableAttnFunction`` (same ``apply``
    arguments) and computes mmcv's ``multi_scale_deformable_attn_pytorch``, which autograd
    differentiates; ``level_start_index`` and ``im2col_step`` only serve the compiled kernel."""

    fma_pytorch_fallback = True

    @staticmethod
    def apply(
        value: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        sampling_locations: torch.Tensor,
        attention_weights: torch.Tensor,
        im2col_step: int,
    ) -> torch.Tensor:
        """value (bs, num_keys, heads, dims/heads), spatial_shapes (levels, 2) int64,
        sampling_locations (bs, queries, heads, levels, points, 2), attention_weights
        (bs, queries, heads, levels, points) -> (bs, queries, dims), value's dtype."""
        from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

        return multi_scale_deformable_attn_pytorch(
            value, spatial_shapes, sampling_locations, attention_weights
        )


def use_pytorch_deform_attn() -> bool:
    """Make ``MultiScaleDeformableAttention.forward`` run mmcv's pure-PyTorch function on CUDA.

    mmcv's forward calls ``MultiScaleDeformableAttnFunction.apply`` (the compiled kernel) for
    CUDA tensors and ``multi_scale_deformable_attn_pytorch`` otherwise. This replaces the
    ``MultiScaleDeformableAttnFunction`` that the forward looks up in
    ``mmcv.ops.multi_scale_deform_attn`` with :class:`_PytorchMSDeformAttnFunction`, so both
    branches compute the same PyTorch function. Only for mmcv without compiled ops, where the
    compiled branch would call ``fma._compat``'s stand-in and raise. Logs one warning line.

    Returns:
        True when the patch was applied now, False when it already was.

    Raises:
        RuntimeError: the installed mmcv lacks the function or the class this patch relies on.
    """
    from mmcv.ops import multi_scale_deform_attn as msda

    if not all(
        hasattr(msda, name)
        for name in ("multi_scale_deformable_attn_pytorch", "MultiScaleDeformableAttnFunction")
    ):
        raise RuntimeError(
            f"{msda.__file__} has no multi_scale_deformable_attn_pytorch or "
            "MultiScaleDeformableAttnFunction; install mmcv-lite==2.1.0 (or the full mmcv: "
            f"{FULL_MMCV_HINT})"
        )
    if getattr(msda.MultiScaleDeformableAttnFunction, "fma_pytorch_fallback", False):
        return False
    if not compiled_ops_missing():
        raise RuntimeError("mmcv has compiled ops: its own CUDA kernel is used, nothing to patch")
    msda.MultiScaleDeformableAttnFunction = _PytorchMSDeformAttnFunction
    print_log(
        "mmcv has no compiled ops (mmcv-lite): MultiScaleDeformableAttention runs mmcv's "
        f"pure-PyTorch multi_scale_deformable_attn_pytorch on CUDA ({DEFORM_ATTN_COST}); "
        "--require-compiled-ops stops instead, requirements/gpu-cu121-mmcv.txt installs the op",
        logger="current",
        level=logging.WARNING,
    )
    return True


def apply_deform_attn_path(path: DeformAttnPath, what: str = "model") -> None:
    """Act on :func:`deform_attn_path`'s answer: raise for ``"refuse"``, patch for
    ``"fallback"``, nothing otherwise.

    Raises:
        MmcvOpsMissingError: for ``"refuse"``, with the command that installs the full mmcv.
    """
    if path == "refuse":
        raise MmcvOpsMissingError(what)
    if path == "fallback":
        use_pytorch_deform_attn()


def _uses_deformable_attention(model: torch.nn.Module) -> bool:
    return any(type(m).__name__ == "MultiScaleDeformableAttention" for m in model.modules())


def check_compiled_ops(
    model: torch.nn.Module, cuda: bool | None = None, require_compiled: bool = False
) -> DeformAttnPath | None:
    """Choose the deformable attention of ``model`` for a CUDA run (see :func:`deform_attn_path`).

    On the CPU, mmcv's ``MultiScaleDeformableAttention`` uses its pure-PyTorch path; on CUDA it
    calls ``mmcv._ext``, which mmcv-lite does not have: then the forward is switched to the
    PyTorch function (:func:`use_pytorch_deform_attn`), or, with ``require_compiled``, the run
    stops.

    Returns:
        The path taken, None when the model has no deformable attention.

    Raises:
        MmcvOpsMissingError: ``require_compiled`` on CUDA without compiled ops.
    """
    if not _uses_deformable_attention(model):
        return None
    cuda = torch.cuda.is_available() if cuda is None else cuda
    path = deform_attn_path(
        compiled_ops=not compiled_ops_missing(), cuda=cuda, require_compiled=require_compiled
    )
    apply_deform_attn_path(path, "model")
    return path


def _leaf_datasets(dataset: Any) -> list[Any]:
    """The datasets inside mmengine's Concat/Repeat/ClassBalanced wrappers."""
    if hasattr(dataset, "datasets"):
        return [leaf for d in dataset.datasets for leaf in _leaf_datasets(d)]
    if hasattr(dataset, "dataset"):
        return _leaf_datasets(dataset.dataset)
    return [dataset]


def describe_seeds(dataset: Any) -> dict[str, Any]:
    """What the training labels of ``dataset`` are: one record per label folder.

    Returns:
        ``{"seeds": [{"dir", "manifest_sha256", "format", "dataset", "split", "count",
        "producer"} ...]}``; ``manifest_sha256`` is None for a folder without a manifest (for
        example ground truth).
    """
    records = []
    for leaf in _leaf_datasets(dataset):
        folder = getattr(leaf, "seed_dir", None) or leaf.data_prefix.get("seg_map_path")
        if folder is None:
            continue
        manifest = Path(folder) / MANIFEST_NAME
        record: dict[str, Any] = {"dir": str(folder), "manifest_sha256": None}
        if manifest.is_file():
            record["manifest_sha256"] = file_sha256(manifest)
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            for key in ("format", "dataset", "split", "count", "producer"):
                record[key] = data.get(key)
        records.append(record)
    return {"seeds": records}


@HOOKS.register_module()
class SeedProvenanceHook(Hook):
    """Record the training seeds in logs, checkpoints and metrics; keep resumes bit-exact."""

    priority = "LOW"  # before CheckpointHook (VERY_LOW), which saves in after_train_iter

    def __init__(self, require_compiled_ops: bool = False) -> None:
        self.require_compiled_ops = require_compiled_ops
        self.seeds: dict[str, Any] | None = None
        self.checkpoint: str | None = None
        self.batch: dict[str, Any] | None = None  # fma.engine.total_batch.BatchPlan.record()
        self._rng_train: torch.Tensor | None = None  # torch RNG after the last train iteration
        self._rng_val: torch.Tensor | None = None  # ... and after the validation that followed
        self._rng_to_restore: torch.Tensor | None = None

    def before_run(self, runner: Any) -> None:
        check_compiled_ops(runner.model, require_compiled=self.require_compiled_ops)

    def before_train(self, runner: Any) -> None:
        self.seeds = describe_seeds(runner.train_loop.dataloader.dataset)
        for rec in self.seeds["seeds"]:
            note = rec["manifest_sha256"] or "no manifest.json (not written by an fma tool)"
            print_log(f"training labels: {rec['dir']} (manifest sha256 {note})", logger="current")
        write_json_atomic(Path(runner.work_dir) / "seeds.json", self.seeds)
        batch = runner.cfg.get("fma_batch")
        self.batch = batch.to_dict() if hasattr(batch, "to_dict") else batch

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        meta = checkpoint.setdefault("meta", {})
        if self.seeds is not None:
            meta["fma_seeds"] = self.seeds
        if self._rng_train is not None:
            meta["fma_torch_rng"] = {"train": self._rng_train, "val": self._rng_val}

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._rng_train, self._rng_val = torch.get_rng_state(), None

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        if self._rng_train is not None:
            self._rng_val = torch.get_rng_state()

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        meta = checkpoint.get("meta", {})
        if self.seeds is None and "fma_seeds" in meta:
            self.seeds = meta["fma_seeds"]
        self.batch = meta.get("fma_batch")
        self.checkpoint = getattr(runner, "_load_from", None)
        states = meta.get("fma_torch_rng")
        if getattr(runner, "_resume", False) and isinstance(states, dict):
            done = int(meta.get("iter", 0))
            interval = getattr(getattr(runner, "train_loop", None), "val_interval", 0) or 0
            validated = interval > 0 and done % interval == 0
            state = states["val"] if validated and states.get("val") is not None else None
            self._rng_to_restore = state if state is not None else states["train"]

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self._rng_to_restore is not None:
            torch.set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def _inform_metrics(self, runner: Any, evaluator: Any, phase: str) -> None:
        info: dict[str, Any] = {"trained_on": (self.seeds or {}).get("seeds"), "batch": self.batch}
        if phase == "val":
            info["iteration"] = runner.iter
        elif self.checkpoint is not None:
            info["checkpoint"] = str(self.checkpoint)
            if Path(self.checkpoint).is_file():
                info["checkpoint_sha256"] = file_sha256(self.checkpoint)
        for metric in getattr(evaluator, "metrics", []):
            if hasattr(metric, "provenance"):
                metric.provenance.update(info)
                if phase == "val":
                    metric.tool = "tools/train.py (validation)"
                if getattr(metric, "config", None) is None:
                    metric.config = getattr(runner.cfg, "filename", None)
                if phase == "val" and getattr(metric, "metrics_file", None) is None:
                    metric.metrics_file = str(
                        Path(runner.work_dir) / "metrics_val_iter_{iteration}.json"
                    )

    def before_val_epoch(self, runner: Any) -> None:
        self._inform_metrics(runner, runner.val_loop.evaluator, "val")

    def before_test_epoch(self, runner: Any) -> None:
        self._inform_metrics(runner, runner.test_loop.evaluator, "test")
