"""Generate SAM (or superpixel) masks for a dataset split or a folder of images.

Size (~550 lines): one stage run (SAM or superpixels, sharded, distributed, resumable).

:func:`run_sam_masks` is the library function behind ``tools/gen_sam_masks.py``. It writes one
``<image_id>.npz`` per image (format ``fma.io.masks.records`` version 2, the run lengths as arrays;
``file_format="json.gz"`` or ``"json"`` writes version 1, segment-anything's JSON records)
into ``<work_dir>/masks/<split>/`` plus a ``manifest.json``
(format version, mask source, preset and its settings, model type, checkpoint path and sha256,
dataset, split, file suffix, counts), and optionally one PNG per image with the masks coloured
per level (``show_dir``, see :mod:`fma.sam.show`).

Behaviour: images that already have a mask file are skipped (files are written atomically, so
an existing file is complete); an image that fails (unreadable, too small, ...) is reported by
name and the run goes on; the returned report lists failures (the tool then exits non-zero).
Work can be split into disjoint shards of the id list: ``shard=(i, n)`` for independent
processes and/or ``launcher="pytorch"`` (torch.distributed with gloo, rank and world size from
torchrun's environment variables). A rerun into a folder written with other settings is
refused.

Resuming with another file format: an existing file of *any* mask suffix counts as done, so a
rerun over a folder of ``.json.gz`` files from an older run (or one with another
``file_format``) keeps them and writes only the missing images in the new format. Every reader
locates files with :func:`fma.io.masks.records.find_mask_file`, so such a mixed folder reads as
one. The run warns when it keeps files of other suffixes, and the manifest records
``file_suffix`` (what this run writes) and ``files_by_suffix`` (what the folder holds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fma.datasets.layout import IMAGE_SUFFIXES, DatasetLayout
from fma.io.manifest import (
    Manifest,
    check_compatible,
    folder_lock,
    producer_info,
    write_manifest,
)
from fma.io.masks.records import (
    FORMAT,
    MASK_SUFFIXES,
    VERSION,
    files_by_suffix,
    find_mask_file,
    mask_suffix,
    save_sam_masks,
)
from fma.sam.presets import get_preset, get_superpixel_preset
from fma.sam.show import level_panel, read_image_rgb, write_level_panels
from fma.stage import StageReport, run_per_image, shard_ids

# level_panel, read_image_rgb and write_level_panels live in fma.sam.show (re-exported here).
__all__ = [
    "SamRunResult",
    "level_panel",
    "masks_dir",
    "parse_shard",
    "read_image_rgb",
    "run_sam_masks",
    "write_level_panels",
]

SOURCES = ("sam", "superpixels")
TOOL = "tools/gen_sam_masks.py"
# Manifest params that must match for a rerun to add files to an existing folder.
_SETTING_KEYS = ("mask_source", "preset_settings", "model_type", "checkpoint_sha256")


@dataclasses.dataclass
class SamRunResult:
    """What :func:`run_sam_masks` did in this process."""

    out_dir: Path  # folder of the mask files
    report: StageReport  # done/skipped: this process; failed: all processes
    rank: int = 0  # torch.distributed rank (0 without a launcher)
    world_size: int = 1  # torch.distributed world size
    n_images: int = 0  # images in the whole split (all shards)
    manifest_written: bool = False  # this process wrote manifest.json at the end


def masks_dir(work_dir: str | os.PathLike, split: str) -> Path:
    """``<work_dir>/masks/<split>``: where the mask files of a split go."""
    return Path(work_dir) / "masks" / split


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


# ----------------------------------------------------------------------------------------
# distributed helpers
# ----------------------------------------------------------------------------------------
def _init_dist(launcher: str, timeout_s: float) -> tuple[int, int, int, bool]:
    """(rank, world_size, local_rank, created); for 'pytorch', joins the existing process group
    or creates one (gloo on CPU, nccl with CUDA) from torchrun's environment."""
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
            "start with: torchrun --nproc_per_node N tools/gen_sam_masks.py CONFIG "
            "--launcher pytorch"
        )
    created = not dist.is_initialized()
    if created:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=_dt.timedelta(seconds=timeout_s))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    return dist.get_rank(), dist.get_world_size(), local_rank, created


def _gather_failures(failed: dict[str, str], world_size: int) -> dict[str, str]:
    if world_size == 1:
        return dict(failed)
    import torch.distributed as dist

    parts: list[Any] = [None] * world_size
    dist.all_gather_object(parts, failed)
    merged: dict[str, str] = {}
    for part in parts:
        merged.update(part or {})
    return merged


# ----------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------
def _folder_ids(image_dir: Path) -> tuple[list[str], dict[str, Path]]:
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: image folder not found")
    paths: dict[str, Path] = {}
    for p in sorted(image_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in paths:
                raise ValueError(
                    f"{image_dir}: two images share the id {p.stem!r} ({paths[p.stem].name}, "
                    f"{p.name}); rename one"
                )
            paths[p.stem] = p
    return list(paths), paths


def _resolve_device(device: str, local_rank: int) -> str:
    if device != "auto":
        return device
    import torch

    return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"


class _ImageJob:
    """Per-image work: read, generate, write (called by :func:`fma.stage.run_per_image`).

    The mask generator is built from ``spec`` by :meth:`build`, once per process; a job sent
    to a worker process is pickled without it (see :func:`_install_job`).
    """

    def __init__(
        self,
        spec: tuple[Any, ...],
        out_dir: Path,
        image_path: Any,
        min_side: int,
        suffix: str,
        max_pixels: int | None = None,
    ) -> None:
        self.spec = spec
        self.generator: Any = None
        self.out_dir = out_dir
        self.image_path = image_path
        self.min_side = min_side
        self.suffix = suffix
        self.max_pixels = max_pixels

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "generator": None}

    def build(self) -> None:
        """Build the generator (``spec`` = :func:`_make_generator` arguments + thread count)."""
        if self.generator is None:
            *args, threads = self.spec
            if threads > 0 and args[0] == "sam":
                import torch

                torch.set_num_threads(threads)
            self.generator = _make_generator(*args)

    def __call__(self, image_id: str) -> None:
        try:
            image = read_image_rgb(self.image_path(image_id))
            h, w = image.shape[:2]
            if min(h, w) < self.min_side:
                raise ValueError(
                    f"image is {w}x{h} px, smaller than min_image_side={self.min_side}"
                )
            if self.max_pixels is not None and h * w > self.max_pixels:
                raise ValueError(
                    f"{self.image_path(image_id)}: image is {w}x{h} = {h * w} px, above "
                    f"max_image_pixels={self.max_pixels} (mask memory grows with the pixel "
                    "count); downscale it, or raise sam_masks.max_image_pixels"
                )
            records = self.generator.generate(image)
            save_sam_masks(self.out_dir / f"{image_id}{self.suffix}", image_id, h, w, records)
        except Exception as exc:
            from tqdm import tqdm

            tqdm.write(f"FAILED {image_id}: {type(exc).__name__}: {exc}")
            raise


_JOB: _ImageJob | None = None  # the job of this process, set by _install_job


def _install_job(job: _ImageJob) -> None:
    """Worker initializer: keep the job and build its generator once for this process."""
    global _JOB
    job.build()
    _JOB = job


def _call_job(image_id: str) -> None:
    assert _JOB is not None, "_install_job runs first"
    _JOB(image_id)


def run_sam_masks(
    work_dir: str | os.PathLike,
    *,
    split: str | None = None,
    dataset: str | None = None,
    data_root: str | os.PathLike | None = None,
    image_dir: str | os.PathLike | None = None,
    image_ids: Sequence[str] | None = None,
    source: str = "sam",
    preset: str | None = None,
    preset_overrides: Mapping[str, Any] | None = None,
    model_type: str = "vit_h",
    checkpoint: str | os.PathLike | None = None,
    download: bool = False,
    tiny_seed: int = 0,
    device: str = "auto",
    file_format: str = "npz",
    min_image_side: int = 8,
    max_image_pixels: int | None = 40_000_000,
    shard: str | Sequence[int] | None = None,
    launcher: str = "none",
    workers: int = 0,
    threads_per_worker: int = 1,
    show_dir: str | os.PathLike | None = None,
    num_show: int | None = None,
    progress: bool = True,
    config_path: str | os.PathLike | None = None,
    dist_timeout_s: float = 4 * 3600.0,
) -> SamRunResult:
    """Generate masks for every image of a split (or folder) that has no mask file yet.

    Args:
        work_dir: run folder; masks go to ``<work_dir>/masks/<split>/``.
        split: split name (dataset mode: required; folder mode: default ``"all"``).
        dataset: ``voc12``, ``coco14`` or ``custom`` (with ``data_root``), or None with
            ``image_dir``.
        data_root: dataset root (see :class:`fma.datasets.layout.DatasetLayout`).
        image_dir: a folder of images instead of a dataset (ids = file stems).
        image_ids: restrict to these ids (in this order).
        source: ``"sam"`` or ``"superpixels"``.
        preset: preset name; default ``"fma"`` for SAM, ``"felzenszwalb"`` for superpixels.
        preset_overrides: preset fields to change, e.g. ``{"points_per_batch": 32}``.
        model_type: ``vit_h``, ``vit_l``, ``vit_b`` or ``tiny`` (random test model).
        checkpoint: SAM weights file (default: ``pretrains/<official name>``).
        download: fetch the official checkpoint when missing (needs internet).
        tiny_seed: seed of the ``tiny`` model.
        device: torch device, or ``"auto"`` (CUDA of the local rank when available, else CPU).
        file_format: ``"npz"`` (default; version 2, fastest to read), ``"json.gz"`` or
            ``"json"`` (version 1, segment-anything's JSON records, gzip'd or plain). Mask files
            of any suffix already in the folder count as done (see the module docstring).
        min_image_side: images with a shorter side are reported as failures.
        max_image_pixels: images with more pixels are reported as failures naming the image
            (default 40 MP; None: no limit).
        shard: ``"i/n"`` or ``(i, n)``: process only the i-th of n disjoint shards.
        launcher: ``"none"`` or ``"pytorch"`` (torch.distributed; shards by rank).
        workers: 0 generates in this process; N > 0 in N spawned worker processes, each
            building the generator once (superpixels, or SAM on CPU; for GPUs use ``shard`` or
            ``launcher``). The files do not depend on N.
        threads_per_worker: torch threads of each SAM worker process (default 1).
        show_dir: write level panels (PNG) of this process's images here.
        num_show: at most this many panels per process (None: all).
        progress: tqdm progress bar with ETA.
        config_path: config file, recorded in the manifest.
        dist_timeout_s: timeout of the distributed barrier/collectives.

    Returns:
        :class:`SamRunResult`.

    Raises:
        ValueError: bad arguments, or the output folder holds masks made with other settings.
        FileNotFoundError: missing split file, image folder or checkpoint.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if workers < 0 or threads_per_worker < 1:
        raise ValueError(
            f"workers must be >= 0 and threads_per_worker >= 1, got {workers}, {threads_per_worker}"
        )
    shard_index, shard_count = parse_shard(shard)
    if source == "sam":
        preset_obj: Any = get_preset(preset or "fma", **dict(preset_overrides or {}))
    else:
        preset_obj = get_superpixel_preset(preset or "felzenszwalb", **dict(preset_overrides or {}))
    images = _resolve_images(dataset, data_root, split, image_dir, image_ids)
    out_dir = masks_dir(work_dir, images.split)
    rank, world, local_rank, own_group = _init_dist(launcher, dist_timeout_s)
    ids = shard_ids(shard_ids(images.ids, shard_index, shard_count), rank, world)
    suffix = mask_suffix(file_format)

    # Settings recorded in (and checked against) the manifest.
    ckpt_path: Path | None = None
    if source == "sam" and model_type != "tiny":
        from fma.sam.builder import resolve_checkpoint

        ckpt_path = resolve_checkpoint(model_type, checkpoint, download=download)
    params = _manifest_params(source, preset_obj, model_type, ckpt_path, tiny_seed)
    params.update(
        image_dir=str(image_dir) if image_dir is not None else None,
        data_root=str(data_root) if data_root is not None else None,
        world_size=world,
        shard=f"{shard_index}/{shard_count}" if shard_count > 1 else None,
        file_suffix=suffix,
    )
    # One writer per folder: an unsharded run holds the folder's lock until it returns, so a
    # concurrent run fails at once naming it. Shards and ranks share the folder: each holds the
    # lock only while it checks the manifest and (rank 0) writes it, so a run with other
    # settings started at the same time is refused by the manifest of the one before it.
    cooperative = shard_count > 1 or world > 1
    lock = contextlib.ExitStack()
    lock.enter_context(folder_lock(out_dir, wait_s=60.0 if cooperative else 0.0))
    try:
        check_compatible(
            out_dir, params, format=FORMAT, what="masks", keys=_SETTING_KEYS,
            only_recorded=False, hint="use another --work-dir, or delete the folder to start over",
        )  # fmt: skip
        _warn_other_suffix(out_dir, ids, suffix)
        if rank == 0:
            _write_manifest(out_dir, images, params, config_path, finished=False, failed=0)
        if cooperative:
            lock.close()

        spec = (source, preset_obj, model_type, ckpt_path, device, local_rank, tiny_seed,
                threads_per_worker if workers > 0 else 0)  # fmt: skip
        if (
            workers > 0
            and source == "sam"
            and _resolve_device(device, local_rank).startswith("cuda")
        ):
            raise ValueError(
                "workers > 0 runs SAM on CPU only; on GPUs start one process per device with "
                "--launcher pytorch (torchrun) or --shard i/n"
            )
        job = _ImageJob(spec, out_dir, images.path, min_image_side, suffix, max_image_pixels)
        if workers == 0:
            job.build()  # in this process: a bad model or preset fails here, before any image
        where = f" [rank {rank}/{world}]" if world > 1 else ""
        where += f" [shard {shard_index}/{shard_count}]" if shard_count > 1 else ""
        report = run_per_image(
            ids,
            _call_job,
            output_path=lambda i: find_mask_file(out_dir, i) or out_dir / f"{i}{suffix}",
            workers=workers,
            desc=f"{source} masks {images.split}{where}",
            progress=progress,
            initializer=_install_job,
            initargs=(job,),
        )
        report.failed = _gather_failures(report.failed, world)
        if world > 1:
            import torch.distributed as dist

            dist.barrier()  # every shard is done before the final manifest
        if rank == 0:
            _write_manifest(out_dir, images, params, config_path, finished=True,
                            failed=len(report.failed))  # fmt: skip
        if show_dir is not None:
            write_level_panels(out_dir, ids, images.path, show_dir, num_show)
        if world > 1:
            dist.barrier()
        if own_group:
            import torch.distributed as dist

            dist.destroy_process_group()
    finally:
        lock.close()
    return SamRunResult(out_dir, report, rank, world, len(images.ids), rank == 0)


@dataclasses.dataclass
class _Images:
    """The images of a run: ids in order, id -> path, dataset key and split name."""

    ids: list[str]
    path: Callable[[str], Path]
    dataset: str
    split: str


def _resolve_images(
    dataset: str | None,
    data_root: str | os.PathLike | None,
    split: str | None,
    image_dir: str | os.PathLike | None,
    image_ids: Sequence[str] | None,
) -> _Images:
    if (image_dir is None) == (dataset is None):
        raise ValueError("give exactly one of dataset (+ data_root) and image_dir")
    if dataset is not None:
        if data_root is None or split is None:
            raise ValueError("dataset mode needs data_root and split")
        layout = DatasetLayout.of(dataset, data_root)
        split_name = split
        images = _Images(
            layout.image_ids(split),
            functools.partial(layout.image_path, split_name),  # picklable for workers
            layout.dataset,
            split,
        )
    else:
        ids, paths = _folder_ids(Path(image_dir))  # type: ignore[arg-type]
        images = _Images(ids, paths.__getitem__, "folder", split or "all")
    if image_ids is not None:
        known = set(images.ids)
        unknown = [i for i in image_ids if i not in known]
        if unknown:
            raise ValueError(f"{len(unknown)} ids not in the split, e.g. {unknown[:3]}")
        images.ids = list(image_ids)
    return images


def _manifest_params(
    source: str, preset: Any, model_type: str, ckpt_path: Path | None, tiny_seed: int
) -> dict[str, Any]:
    if hasattr(preset, "manifest_settings"):
        settings = _jsonable(preset.manifest_settings())
    else:
        settings = _jsonable(dataclasses.asdict(preset))
    settings.pop("description", None)
    sha = None
    if ckpt_path is not None:
        from fma.sam.builder import verify_checkpoint

        sha = verify_checkpoint(ckpt_path, None)
    return {
        "mask_source": source,
        "preset": preset.name,
        "preset_settings": settings,
        "model_type": model_type if source == "sam" else None,
        "checkpoint": str(ckpt_path) if ckpt_path is not None else None,
        "checkpoint_sha256": sha,
        "tiny_seed": tiny_seed if source == "sam" and model_type == "tiny" else None,
    }


def _write_manifest(
    out_dir: Path,
    images: _Images,
    params: Mapping[str, Any],
    config_path: str | os.PathLike | None,
    *,
    finished: bool,
    failed: int,
) -> None:
    by_suffix = files_by_suffix(out_dir, images.ids)
    count = sum(by_suffix.values())
    p = dict(params)
    p.update(n_images=len(images.ids), n_written=count, n_failed=failed)
    p.update(files_by_suffix=by_suffix)
    p.update(complete=count == len(images.ids), finished=finished)
    manifest = Manifest(
        format=FORMAT,
        version=VERSION,
        count=count,
        dataset=images.dataset,
        split=images.split,
        producer=producer_info(TOOL, config_path),
        params=p,
    )
    write_manifest(out_dir, manifest)


def _make_generator(
    source: str,
    preset: Any,
    model_type: str,
    ckpt_path: Path | None,
    device: str,
    local_rank: int,
    tiny_seed: int,
) -> Any:
    if source == "superpixels":
        from fma.sam.superpixels import SuperpixelGenerator

        return SuperpixelGenerator.from_preset(preset)
    from fma.sam.builder import build_sam
    from fma.sam.level_masks import FmaMaskGenerator

    dev = _resolve_device(device, local_rank)
    sam = build_sam(model_type, ckpt_path, device=dev, tiny_seed=tiny_seed)
    return FmaMaskGenerator(sam, **preset.generator_kwargs())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _warn_other_suffix(out_dir: Path, ids: Sequence[str], suffix: str) -> None:
    """Warn when the folder holds mask files of other suffixes: they are kept as done."""
    for other in (s for s in MASK_SUFFIXES if s != suffix):
        kept = [i for i in ids if (out_dir / f"{i}{other}").is_file()]
        if kept:
            warnings.warn(
                f"{out_dir}: {len(kept)} images already have {other} mask files (e.g. "
                f"{kept[0]}{other}); they count as done and are kept, the others are written "
                f"as {suffix}. Readers accept every suffix; delete the folder to rewrite "
                "everything.",
                stacklevel=3,
            )
