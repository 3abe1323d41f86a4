"""CPU-only distributed launches for the mmengine tools (``torchrun ... --launcher pytorch``)."""

from __future__ import annotations

import datetime
from typing import Any

__all__ = ["close_dist", "prepare_cpu_dist"]


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
        dist.destroy_process_group()
