"""``SeedProvenanceHook``: every stage II number names the seeds it was trained on.

* Before training it describes the training labels (the seed folder, the sha256 of its
  ``manifest.json``, the manifest's producer, format, dataset, split and count), logs it, writes
  ``<work_dir>/seeds.json`` and stores it in every checkpoint (``meta['fma_seeds']``).
* At evaluation (validation during training, or ``tools/test.py`` on a checkpoint, whose meta it
  reads back) it hands the record, the iteration and the checkpoint to every
  :class:`~fma.mmseg_ext.metrics.SegMetric`, which writes it into its metrics JSON.
* It stores torch's RNG state in each checkpoint and restores it on ``--resume`` at the first
  resumed iteration (after mmengine has replayed the data loader), so a resumed run continues
  bit for bit like an uninterrupted one (Mask2Former samples points with ``torch.rand``). Two
  states are kept: after the training iteration and after the validation that may follow it
  (building the validation loader draws from torch's RNG); the resume picks the one an
  uninterrupted run would have, from the iteration and ``val_interval``.
* Before the run it refuses a CUDA run of a model with deformable attention when mmcv's compiled
  ops are missing (see :func:`check_compiled_ops`), instead of failing at the first forward.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from fma.io.atomic import write_json_atomic
from fma.io.manifest import MANIFEST_NAME, file_sha256

__all__ = [
    "MmcvOpsMissingError",
    "SeedProvenanceHook",
    "check_compiled_ops",
    "compiled_ops_missing",
    "describe_seeds",
]

FULL_MMCV_HINT = (
    "pip uninstall -y mmcv-lite && pip install -U openmim && "
    'mim install "mmcv>=2.0.0rc4,<2.2.0"  (a build matching your torch and CUDA)'
)


class MmcvOpsMissingError(RuntimeError):
    """A CUDA run needs mmcv's compiled ops, which the installed mmcv lacks."""

    def __init__(self, what: str = "model") -> None:
        super().__init__(
            f"this {what} uses multi-scale deformable attention (Mask2Former's pixel decoder), "
            "whose CUDA kernel is a compiled mmcv op, but the installed mmcv has no compiled ops "
            f"(mmcv-lite). Install the full mmcv: {FULL_MMCV_HINT}"
        )


def compiled_ops_missing() -> bool:
    """True when mmcv has no compiled ``mmcv._ext`` (mmcv-lite, where ``fma._compat`` stands in)."""
    import importlib.util

    import mmcv  # noqa: F401  (lets fma._compat decide whether a real mmcv._ext exists)

    from fma import _compat

    return _compat.status()["mmcv_ext_stub"] or importlib.util.find_spec("mmcv._ext") is None


def _uses_deformable_attention(model: torch.nn.Module) -> bool:
    return any(type(m).__name__ == "MultiScaleDeformableAttention" for m in model.modules())


def check_compiled_ops(model: torch.nn.Module, cuda: bool | None = None) -> None:
    """Raise when ``model`` would run deformable attention on CUDA without compiled mmcv ops.

    On the CPU, mmcv's ``MultiScaleDeformableAttention`` uses its pure-PyTorch path; on CUDA it
    calls ``mmcv._ext``, which mmcv-lite does not have (``fma._compat`` then supplies a stand-in
    whose ops raise at the first forward).

    Raises:
        MmcvOpsMissingError: with the command that installs the full mmcv.
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda and _uses_deformable_attention(model) and compiled_ops_missing():
        raise MmcvOpsMissingError("model")


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

    def __init__(self) -> None:
        self.seeds: dict[str, Any] | None = None
        self.checkpoint: str | None = None
        self._rng_train: torch.Tensor | None = None  # torch RNG after the last train iteration
        self._rng_val: torch.Tensor | None = None  # ... and after the validation that followed
        self._rng_to_restore: torch.Tensor | None = None

    def before_run(self, runner: Any) -> None:
        check_compiled_ops(runner.model)

    def before_train(self, runner: Any) -> None:
        self.seeds = describe_seeds(runner.train_loop.dataloader.dataset)
        for rec in self.seeds["seeds"]:
            note = rec["manifest_sha256"] or "no manifest.json (not written by an fma tool)"
            print_log(f"training labels: {rec['dir']} (manifest sha256 {note})", logger="current")
        write_json_atomic(Path(runner.work_dir) / "seeds.json", self.seeds)

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
        info: dict[str, Any] = {"trained_on": (self.seeds or {}).get("seeds")}
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
