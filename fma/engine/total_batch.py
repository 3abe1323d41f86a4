"""The total batch of a training run, held on any number of processes.

A training config states the batch of its recipe as a top-level ``total_batch = N``: the images
that one optimizer update sees, summed over all processes. ``tools/train.py`` derives from it,
the world size ``W`` and the config's per-process ``train_dataloader.batch_size`` ``B`` how each
process trains (:func:`plan_total_batch`):

* ``N`` must be a multiple of ``W`` (else the run stops: :class:`TotalBatchError`, unless the
  total is changed with ``--cfg-options total_batch=M``), and ``B`` must not exceed ``N`` (a
  config that raises ``batch_size`` above its total forgot to raise ``total_batch``);
* each process needs ``N / W`` images per update: when that is at most ``B`` it is the
  per-process batch (``4xb4`` on 4 processes keeps 4; on 8 processes each takes 2);
* when it is more (fewer processes than the recipe), the per-process batch is the largest
  divisor of ``N / W`` that is at most ``B`` (``B`` itself when it divides) and mmengine's
  gradient accumulation (``optim_wrapper.accumulative_counts``) adds the rest: Mask2Former's
  total 4 on one process trains 2 images x 2 accumulated micro-batches.

The schedule counts optimizer updates. mmengine's ``IterBasedTrainLoop`` counts one iteration
per micro-batch and ``ParamSchedulerHook`` steps the schedulers once per iteration, so
``accumulative_counts=a`` alone would make ``max_iters`` micro-batches ``ceil(max_iters / a)``
updates (the Runner's ``initialize_count_status`` lets the last one take the remainder), with
the learning rate following micro-batches. With accumulation the loop is
:class:`AccumIterBasedTrainLoop` instead: one iteration runs ``a`` micro-batches (one forward and
backward each, the loss divided by ``a``, DDP's gradient sync only at the last) and one
optimizer step, so the hooks see one iteration per update: ``max_iters``, the schedulers'
``begin``/``end``, ``val_interval`` and the checkpoint names (``iter_1800.pth``) keep the
recipe's meaning, and a run makes exactly ``max_iters`` optimizer updates as the recipe does.

Stage I models that normalise sub-batches of a batch on their own (``model.sub_batches``,
COCO) keep the recipe's sub-batch size: ``sub_batches`` is scaled with the per-process batch.

The plan is recorded as ``fma_batch`` (:meth:`BatchPlan.record`): in the config the Runner
dumps, in every checkpoint's ``meta`` (:class:`TotalBatchHook`) and, for stage II, in the
metrics JSON (``batch``, by :class:`fma.mmseg_ext.hooks.SeedProvenanceHook`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import LOOPS
from mmengine.runner import IterBasedTrainLoop

__all__ = [
    "AccumIterBasedTrainLoop",
    "BatchPlan",
    "TotalBatchError",
    "TotalBatchHook",
    "apply_total_batch",
    "plan_total_batch",
    "world_size_of",
]

#: Environment variable with the number of processes, per mmengine launcher.
_WORLD_ENV = {"pytorch": ("WORLD_SIZE",), "slurm": ("SLURM_NTASKS",),
              "mpi": ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")}  # fmt: skip


class TotalBatchError(ValueError):
    """The config's total batch cannot be held on this number of processes."""


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """How a run holds its total batch: ``total = world_size x batch_size x accumulative_counts``.

    ``config_batch_size`` is the config's per-process ``batch_size``; ``total_from`` says where
    the total comes from (``config``, ``--cfg-options`` or ``processes x batch_size`` for a
    config without ``total_batch``).
    """

    total_batch: int
    world_size: int
    batch_size: int
    accumulative_counts: int
    config_batch_size: int
    total_from: str = "config"

    def describe(self) -> str:
        """``total 4 = 1 proc x 2 x 2 acc`` (the ``x a acc`` part only with accumulation)."""
        text = f"total {self.total_batch} = {self.world_size} proc x {self.batch_size}"
        return text + (f" x {self.accumulative_counts} acc" if self.accumulative_counts > 1 else "")

    def record(self) -> dict[str, Any]:
        """The provenance record (plain JSON types)."""
        return dataclasses.asdict(self)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def plan_total_batch(
    total: int, world_size: int, batch_size: int, *, total_from: str = "config"
) -> BatchPlan:
    """Per-process batch and accumulation that hold ``total`` on ``world_size`` processes.

    Args:
        total: the total batch (images per optimizer update over all processes).
        world_size: number of training processes.
        batch_size: the config's per-process batch (the most one process takes at once).
        total_from: recorded in the plan.

    Raises:
        TotalBatchError: ``total`` is not a multiple of ``world_size``, or ``batch_size`` exceeds
            ``total``; the message says which numbers of processes hold it.
    """
    for name, value in (("total_batch", total), ("world size", world_size),
                        ("batch_size", batch_size)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TotalBatchError(f"{name} must be an integer >= 1, got {value!r}")
    if batch_size > total:
        raise TotalBatchError(
            f"train_dataloader.batch_size={batch_size} is more than total_batch={total}: one "
            f"process would take more images than the whole update; set total_batch = "
            f"{batch_size * world_size} in the config (or --cfg-options total_batch=N)"
        )
    if total % world_size:
        holds = ", ".join(str(d) for d in _divisors(total)[:8])
        raise TotalBatchError(
            f"total_batch={total} cannot be split over {world_size} processes ({total} is not a "
            f"multiple of {world_size}): run on {holds} processes, or choose another total "
            f"with --cfg-options total_batch=N (e.g. {batch_size * world_size})"
        )
    per = total // world_size
    if per <= batch_size:
        return BatchPlan(total, world_size, per, 1, batch_size, total_from)
    batch = max(d for d in _divisors(per) if d <= batch_size)
    return BatchPlan(total, world_size, batch, per // batch, batch_size, total_from)


def world_size_of(launcher: str, environ: Mapping[str, str] | None = None) -> int:
    """Number of processes of a run: 1 without a launcher, else the launcher's environment
    (``WORLD_SIZE`` of torchrun for ``pytorch``, ``SLURM_NTASKS``, ``OMPI_COMM_WORLD_SIZE``).

    Raises:
        TotalBatchError: a launcher whose variable is not set (not started by torchrun etc.).
    """
    environ = os.environ if environ is None else environ
    if launcher == "none":
        return 1
    for key in _WORLD_ENV.get(launcher, ()):
        if environ.get(key, "").strip().isdigit():
            return int(environ[key])
    names = " or ".join(_WORLD_ENV.get(launcher, ("WORLD_SIZE",)))
    raise TotalBatchError(
        f"--launcher {launcher} but {names} is not set: start the run with torchrun "
        "(tools/dist_train.sh) or the launcher's own command, or drop --launcher"
    )


def _scale_sub_batches(cfg: Any, plan: BatchPlan) -> None:
    """Keep the recipe's sub-batch size of ``model.sub_batches`` (stage I COCO)."""
    model = cfg.get("model")
    k = model.get("sub_batches", 1) if isinstance(model, Mapping) else 1
    if not isinstance(k, int) or k <= 1 or plan.batch_size == plan.config_batch_size:
        return
    if plan.config_batch_size % k:
        return  # no whole sub-batch size in the config itself: the model splits as it can
    size = plan.config_batch_size // k
    if plan.batch_size % size:
        raise TotalBatchError(
            f"model.sub_batches={k} normalises groups of {size} images, but each of the "
            f"{plan.world_size} processes takes {plan.batch_size}: run on fewer processes"
        )
    model["sub_batches"] = plan.batch_size // size


def apply_total_batch(
    cfg: Any, world_size: int, *, config: str | os.PathLike, overridden: bool = False
) -> BatchPlan:
    """Set the per-process batch, accumulation and loop of ``cfg`` from its ``total_batch``.

    Changes ``train_dataloader.batch_size``, ``optim_wrapper.accumulative_counts``,
    ``train_cfg.type`` (:class:`AccumIterBasedTrainLoop` with accumulation),
    ``model.sub_batches`` where set, and adds ``cfg.fma_batch`` (the record). A config without
    ``total_batch`` (or None) trains as given: the plan records processes x batch_size.

    Args:
        cfg: the loaded mmengine ``Config`` (changed in place).
        world_size: number of training processes (:func:`world_size_of`).
        config: the config file, named in errors.
        overridden: the total came from ``--cfg-options`` (recorded).

    Raises:
        TotalBatchError: the total cannot be held; the message names the config and the fix.
    """
    loader = cfg.get("train_dataloader") or {}
    batch = loader.get("batch_size")
    total = cfg.get("total_batch")
    ow = cfg.get("optim_wrapper") or {}
    counts = ow.get("accumulative_counts", 1)
    try:
        if isinstance(batch, bool) or not isinstance(batch, int):
            raise TotalBatchError(f"train_dataloader.batch_size must be an integer, got {batch!r}")
        if total is None:
            total = batch * world_size * counts
            plan = BatchPlan(total, world_size, batch, counts, batch,
                             "processes x batch_size (the config sets no total_batch)")  # fmt: skip
        else:
            if counts != 1:
                raise TotalBatchError(
                    f"optim_wrapper.accumulative_counts={counts} and total_batch={total} are both "
                    "set: remove accumulative_counts, the total decides it"
                )
            origin = "--cfg-options" if overridden else "config"
            plan = plan_total_batch(total, world_size, batch, total_from=origin)
            train_cfg = cfg.get("train_cfg") or {}
            if plan.accumulative_counts > 1:
                if train_cfg.get("type", "IterBasedTrainLoop") != "IterBasedTrainLoop":
                    raise TotalBatchError(
                        f"holding total_batch={total} on {world_size} process(es) needs gradient "
                        f"accumulation, which fma supports for IterBasedTrainLoop only, not "
                        f"{train_cfg.get('type')}: run on {total // batch} processes"
                    )
                train_cfg.pop("by_epoch", None)
                train_cfg["type"] = "AccumIterBasedTrainLoop"
                train_cfg["accumulative_counts"] = plan.accumulative_counts
                ow["accumulative_counts"] = plan.accumulative_counts
            loader["batch_size"] = plan.batch_size
            _scale_sub_batches(cfg, plan)
    except TotalBatchError as exc:
        raise TotalBatchError(f"{config}: {exc}") from None
    cfg.fma_batch = plan.record()
    return plan


@LOOPS.register_module()
class AccumIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` whose iteration is one optimizer update over
    ``accumulative_counts`` micro-batches (see the module docstring).

    The hooks get the first micro-batch as ``data_batch`` and the mean of the micro-batches'
    log variables as ``outputs``. On resume ``iter x accumulative_counts`` batches are skipped.

    Args:
        accumulative_counts: micro-batches per iteration; must equal the optimizer wrapper's.
        **kwargs: ``IterBasedTrainLoop`` arguments (``runner``, ``dataloader``, ``max_iters``,
            ``val_begin``, ``val_interval``, ``dynamic_intervals``).
    """

    def __init__(self, *args: Any, accumulative_counts: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(accumulative_counts, bool) or int(accumulative_counts) < 1:
            raise ValueError(f"accumulative_counts must be >= 1, got {accumulative_counts!r}")
        self.accumulative_counts = int(accumulative_counts)

    def run(self) -> Any:
        """Launch training (``IterBasedTrainLoop.run`` with micro-batches)."""
        runner, acc = self.runner, self.accumulative_counts
        counts = getattr(runner.optim_wrapper, "_accumulative_counts", None)
        if counts != acc:
            raise RuntimeError(
                f"train_cfg.accumulative_counts={acc} but the optimizer wrapper accumulates "
                f"{counts}: set optim_wrapper.accumulative_counts={acc} (tools/train.py does)"
            )
        # The wrapper steps after every `acc` backward passes, counted from the resumed update
        # (Runner.train initialised it with iterations as micro-batches).
        runner.optim_wrapper.initialize_count_status(
            runner.model, self._iter * acc, self._max_iters * acc
        )
        runner.call_hook("before_train")
        runner.call_hook("before_train_epoch")
        if self._iter > 0:
            print_log(
                f"Advance dataloader {self._iter * acc} steps ({self._iter} iterations of {acc} "
                "micro-batches) to skip data that has already been trained",
                logger="current",
                level=logging.WARNING,
            )
            for _ in range(self._iter * acc):
                next(self.dataloader_iterator)
        while self._iter < self._max_iters and not self.stop_training:
            runner.model.train()
            self.run_iter([next(self.dataloader_iterator) for _ in range(acc)])
            self._decide_current_val_interval()
            if (
                runner.val_loop is not None
                and self._iter >= self.val_begin
                and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)
            ):
                runner.val_loop.run()
        runner.call_hook("after_train_epoch")
        runner.call_hook("after_train")
        return runner.model

    def run_iter(self, data_batch: Sequence[Any]) -> None:  # type: ignore[override]
        """One optimizer update over the micro-batches in ``data_batch``."""
        runner = self.runner
        runner.call_hook("before_train_iter", batch_idx=self._iter, data_batch=data_batch[0])
        outputs = [
            runner.model.train_step(micro, optim_wrapper=runner.optim_wrapper)
            for micro in data_batch
        ]
        mean = {k: sum(o[k] for o in outputs) / len(outputs)
                for k in outputs[0] if all(k in o for o in outputs)}  # fmt: skip
        runner.call_hook(
            "after_train_iter", batch_idx=self._iter, data_batch=data_batch[0], outputs=mean
        )
        self._iter += 1


def _plain(record: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    return record.to_dict() if hasattr(record, "to_dict") else dict(record)


class TotalBatchHook(Hook):
    """Log the batch plan (``cfg.fma_batch``) and store it in every checkpoint's ``meta``."""

    priority = "LOW"

    def before_train(self, runner: Any) -> None:
        rec = _plain(runner.cfg.get("fma_batch"))
        if rec is not None:
            print_log(
                f"batch: {BatchPlan(**rec).describe()} (total_batch from {rec['total_from']})",
                logger="current",
            )

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        rec = _plain(runner.cfg.get("fma_batch"))
        if rec is not None:
            checkpoint.setdefault("meta", {})["fma_batch"] = rec

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        old = checkpoint.get("meta", {}).get("fma_batch")
        new = _plain(runner.cfg.get("fma_batch"))
        if not getattr(runner, "_resume", False) or old is None or new is None:
            return
        if (old["total_batch"], old["world_size"]) != (new["total_batch"], new["world_size"]):
            print_log(
                f"resuming a run trained with {BatchPlan(**old).describe()} as "
                f"{BatchPlan(**new).describe()}",
                logger="current",
                level=logging.WARNING,
            )
