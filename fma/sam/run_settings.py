"""The settings of one mask-stage run (:func:`fma.apis.sam_masks.run_sam_masks`), as data.

The fields are the keys of a config's ``sam_masks = dict(...)`` section; the tool
``tools/gen_sam_masks.py`` builds a :class:`SamRunSettings` from it, and library callers either
pass one or give the fields as keyword arguments. This module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PRECISION_NAMES", "SOURCES", "SamRunSettings", "parse_shard"]

SOURCES = ("sam", "superpixels")
#: Precisions of the SAM model (see :mod:`fma.sam.throughput`); fp32 is the paper setting.
PRECISION_NAMES = ("fp32", "bf16", "fp16")
LAUNCHERS = ("none", "pytorch")


def parse_shard(shard: str | Sequence[int] | None) -> tuple[int, int]:
    """``"i/n"`` or ``(i, n)`` -> ``(i, n)``; None -> ``(0, 1)``.

    Raises:
        ValueError: malformed, or not ``0 <= i < n``.
    """
    if shard is None:
        return 0, 1
    if isinstance(shard, str):
        parts = shard.split("/")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"shard {shard!r}: expected 'i/n', e.g. '0/4'")
        index, count = int(parts[0]), int(parts[1])
    else:
        index, count = (int(v) for v in shard)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= i < n")
    return index, count


@dataclasses.dataclass(frozen=True)
class SamRunSettings:
    """What to segment, with which model and settings, and how to spread the work.

    Images (one of two modes):
        dataset: ``voc12``, ``coco14`` or ``custom`` (with ``data_root``), or None with
            ``image_dir``.
        data_root: dataset root (see :class:`fma.datasets.layout.DatasetLayout`).
        split: split name (dataset mode: required; folder mode: default ``"all"``).
        image_dir: a folder of images instead of a dataset (ids = file stems).
        image_ids: restrict to these ids (in this order).

    Masks (recorded in the manifest; a rerun with other values is refused):
        source: ``"sam"`` or ``"superpixels"``.
        preset: preset name; default ``"fma"`` for SAM, ``"felzenszwalb"`` for superpixels.
        preset_overrides: preset fields to change, e.g. ``{"points_per_batch": 32}``.
        model_type: ``vit_h``, ``vit_l``, ``vit_b`` or ``tiny`` (random test model).
        checkpoint: SAM weights file (default: ``pretrains/<official name>``).
        download: fetch the official checkpoint when missing (needs internet).
        tiny_seed: seed of the ``tiny`` model.
        precision: ``"fp32"`` (default, the paper setting), ``"bf16"`` or ``"fp16"`` (CUDA
            only): autocast of the SAM encoder and decoder (see :mod:`fma.sam.throughput`).

    Speed only (not recorded):
        device: torch device, or ``"auto"`` (CUDA of the local rank when available, else CPU).
        crop_batch: crops of one image per encoder call; None: chosen from free CUDA memory in
            bf16/fp16, 1 in fp32 and on CPU.
        auto_points_per_batch: on CUDA, choose ``points_per_batch`` from free memory unless
            ``preset_overrides`` sets it (CPU: the preset's value).
        workers: 0 generates in this process; N > 0 in N spawned worker processes (superpixels,
            or SAM on CPU; for GPUs use ``shard`` or ``launcher``). The files do not depend on N.
        threads_per_worker: torch threads of each SAM worker process.
        shard: ``"i/n"`` or ``(i, n)``: process only the i-th of n disjoint shards.
        launcher: ``"none"`` or ``"pytorch"`` (torch.distributed; shards by rank).
        dist_timeout_s: timeout of the distributed barrier/collectives.

    Files and reporting:
        file_format: ``"npz"`` (version 2), ``"json.gz"`` or ``"json"`` (version 1).
        min_image_side: images with a shorter side are reported as failures.
        max_image_pixels: images with more pixels are reported as failures (None: no limit).
        show_dir: write level panels (PNG) of this process's images here.
        num_show: at most this many panels per process (None: all).
        progress: tqdm progress bar with ETA.
        config_path: config file, recorded in the manifest.
    """

    split: str | None = None
    dataset: str | None = None
    data_root: str | os.PathLike | None = None
    image_dir: str | os.PathLike | None = None
    image_ids: Sequence[str] | None = None
    source: str = "sam"
    preset: str | None = None
    preset_overrides: Mapping[str, Any] | None = None
    model_type: str = "vit_h"
    checkpoint: str | os.PathLike | None = None
    download: bool = False
    tiny_seed: int = 0
    precision: str = "fp32"
    device: str = "auto"
    crop_batch: int | None = None
    auto_points_per_batch: bool = True
    file_format: str = "npz"
    min_image_side: int = 8
    max_image_pixels: int | None = 40_000_000
    shard: str | Sequence[int] | None = None
    launcher: str = "none"
    workers: int = 0
    threads_per_worker: int = 1
    show_dir: str | os.PathLike | None = None
    num_show: int | None = None
    progress: bool = True
    config_path: str | os.PathLike | None = None
    dist_timeout_s: float = 4 * 3600.0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.workers < 0 or self.threads_per_worker < 1:
            raise ValueError(
                f"workers must be >= 0 and threads_per_worker >= 1, got {self.workers}, "
                f"{self.threads_per_worker}"
            )
        if self.precision not in PRECISION_NAMES:
            raise ValueError(f"precision must be one of {PRECISION_NAMES}, got {self.precision!r}")
        if self.precision != "fp32" and self.source != "sam":
            raise ValueError(f"precision={self.precision!r} applies to source='sam' only")
        if self.crop_batch is not None and self.crop_batch < 1:
            raise ValueError(f"crop_batch must be >= 1 or None, got {self.crop_batch}")
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launcher must be 'none' or 'pytorch', got {self.launcher!r}")
        parse_shard(self.shard)

    @property
    def shard_pair(self) -> tuple[int, int]:
        """``(i, n)`` of ``shard`` (``(0, 1)`` without sharding)."""
        return parse_shard(self.shard)

    def replace(self, **changes: Any) -> SamRunSettings:
        """A copy with some fields changed (unknown names raise TypeError)."""
        return dataclasses.replace(self, **changes)
