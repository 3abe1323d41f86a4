"""Distributed launches of the tools (``torchrun ... --launcher pytorch``): CPU-only runs of the
mmengine tools, the process group of a tool without a Runner (the SAM mask stage), its end."""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any

__all__ = ["close_dist", "gather_failures", "init_launcher_dist", "prepare_cpu_dist"]


def prepare_cpu_dist(cfg: Any, launcher: str) -> None:
    """Make an mmengine ``pytorch`` launch work on CPU-only torch; a no-op when CUDA is present.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its Runner wraps the model in
    DDP with ``device_ids=[LOCAL_RANK]``; both fail without CUDA. A gloo process group created
    here makes ``Runner.setup_env`` skip ``init_dist``, and ``device_ids=None`` is what DDP needs
    for a CPU module. The ranks and world size still come from torchrun's environment.
    """
    import torch
    import torch.distributed as dist

    if launcher != "pytorch" or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        timeout = cfg.get("env_cfg", {}).get("dist_cfg", {}).get("timeout", 1800)
        dist.init_process_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout))
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None)


def close_dist() -> None:
    """Destroy the default process group, if any, before the process exits.

    A gloo group left to the interpreter's shutdown can abort the process after the run
    finished ("terminate called without an active exception", exit -6 under torchrun) when its
    background threads are torn down before the group; destroying it first is torch's own
    advice. Safe to call when no group exists.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        # Every rank first waits for the others: a rank that tears its group down while another
        # still has messages in flight to it can abort the same way.
        with contextlib.suppress(RuntimeError):
            dist.barrier()
        dist.destroy_process_group()


def init_launcher_dist(launcher: str, timeout_s: float, command: str) -> tuple[int, int, int, bool]:
    """Join or create the process group of a tool without a Runner.

    Args:
        launcher: ``"none"`` (one process) or ``"pytorch"`` (torchrun's environment).
        timeout_s: timeout of the group's collectives.
        command: how to start the tool under torchrun, for the error when its environment is
            missing (e.g. ``"tools/gen_sam_masks.py CONFIG"``).

    Returns:
        ``(rank, world_size, local_rank, created)``; ``created`` is True when this call made the
        group (gloo on CPU, nccl with CUDA), so the caller destroys it at the end.
    """
    if launcher == "none":
        return 0, 1, 0, False
    if launcher != "pytorch":
        raise ValueError(f"launcher must be 'none' or 'pytorch', got {launcher!r}")
    import torch
    import torch.distributed as dist

    missing = [
        k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ
    ]
    if missing:
        raise ValueError(
            f"launcher='pytorch' needs torchrun's environment ({', '.join(missing)} unset); "
            f"start with: torchrun --nproc_per_node N {command} --launcher pytorch"
        )
    created = not dist.is_initialized()
    if created:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    return dist.get_rank(), dist.get_world_size(), local_rank, created


def gather_failures(failed: dict[str, str], world_size: int) -> dict[str, str]:
    """The union of every rank's ``{image id: error}`` (all ranks get it)."""
    if world_size == 1:
        return dict(failed)
    import torch.distributed as dist

    parts: list[Any] = [None] * world_size
    dist.all_gather_object(parts, failed)
    merged: dict[str, str] = {}
    for part in parts:
        merged.update(part or {})
    return merged
