"""Generate SAM (or superpixel) masks for a dataset split or a folder of images.

Size (~530 lines): one stage run (SAM or superpixels, sharded, distributed, resumable).

:func:`run_sam_masks` is the library function behind ``tools/gen_sam_masks.py``; its settings
are one :class:`fma.sam.run_settings.SamRunSettings` (the keys of a config's ``sam_masks``
section), passed whole or as keyword arguments. The run is four steps: a plan (images, ranks,
this process's ids, manifest params), the folder check (refuse other settings, write the
unfinished manifest), generation (in this process or in worker processes) and the finish
(final manifest, panels). It writes one ``<image_id>.npz`` per image (format
``fma.io.masks.records`` version 2, the run lengths as arrays; ``file_format="json.gz"`` or
``"json"`` writes version 1, segment-anything's JSON records) into ``<work_dir>/masks/<split>/``
plus a ``manifest.json`` (format version, mask source, preset and its settings, model type,
checkpoint path and sha256, precision when not fp32, dataset, split, file suffix, counts), and
optionally one PNG per image with the masks coloured
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
import functools
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fma.datasets.layout import IMAGE_SUFFIXES, DatasetLayout
from fma.engine.dist import gather_failures, init_launcher_dist
from fma.io.manifest import (
    Manifest,
    ManifestError,
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
from fma.sam.run_settings import SamRunSettings
from fma.sam.show import read_image_rgb, write_level_panels
from fma.stage import StageReport, run_per_image, shard_ids

__all__ = ["SamRunResult", "masks_dir", "run_sam_masks"]

TOOL = "tools/gen_sam_masks.py"
_HINT = "use another --work-dir, or delete the folder to start over"
# Manifest params that must match for a rerun to add files to an existing folder; "precision"
# too (recorded only when not fp32: a folder without it holds fp32 masks), see _check_precision.
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


@dataclasses.dataclass(frozen=True)
class _GeneratorSpec:
    """What :func:`_make_generator` needs to build the generator in any process (picklable)."""

    source: str
    preset: Any
    model_type: str
    ckpt_path: Path | None
    device: str  # resolved: "cpu", "cuda:0", ...
    tiny_seed: int
    threads: int  # torch threads of a SAM worker process; 0: leave as is
    precision: str
    crop_batch: int | None  # None: auto_crop_batch
    auto_points_per_batch: bool  # choose points_per_batch from free CUDA memory

    @classmethod
    def of(cls, s: SamRunSettings, preset: Any, plan: _Plan) -> _GeneratorSpec:
        device = _resolve_device(s.device, plan.local_rank)
        if s.source == "sam":
            if s.workers > 0 and device.startswith("cuda"):
                raise ValueError(
                    "workers > 0 runs SAM on CPU only; on GPUs start one process per device "
                    "with --launcher pytorch (torchrun) or --shard i/n"
                )
            from fma.sam.throughput import check_precision

            check_precision(s.precision, device)
        auto_ppb = s.auto_points_per_batch and "points_per_batch" not in (s.preset_overrides or {})
        return cls(
            s.source, preset, s.model_type, plan.ckpt_path, device, s.tiny_seed,
            s.threads_per_worker if s.workers > 0 else 0, s.precision, s.crop_batch, auto_ppb,
        )  # fmt: skip


class _ImageJob:
    """Per-image work: read, generate, write (called by :func:`fma.stage.run_per_image`).

    The mask generator is built from ``spec`` by :meth:`build`, once per process; a job sent
    to a worker process is pickled without it (see :func:`_install_job`).
    """

    def __init__(
        self,
        spec: _GeneratorSpec,
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
        """Build the generator from ``spec`` (once)."""
        if self.generator is None:
            if self.spec.threads > 0 and self.spec.source == "sam":
                import torch

                torch.set_num_threads(self.spec.threads)
            self.generator = _make_generator(self.spec)

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
    """Worker initializer: keep the job and build its generator once for this process (a
    spawned worker first applies the package's compatibility repairs, as the tool does)."""
    global _JOB
    import fma

    if hasattr(fma, "setup"):
        fma.setup()
    job.build()
    _JOB = job


def _call_job(image_id: str) -> None:
    assert _JOB is not None, "_install_job runs first"
    _JOB(image_id)


@dataclasses.dataclass
class _Plan:
    """One process's share of a run: settings, images, output folder, ranks and manifest."""

    settings: SamRunSettings
    images: _Images
    out_dir: Path
    ids: list[str]  # this process's ids (shard and rank applied)
    suffix: str  # mask file suffix written by this run
    params: dict[str, Any]  # manifest params
    rank: int
    world: int
    local_rank: int
    own_group: bool  # this process created the torch.distributed group
    ckpt_path: Path | None  # SAM weights file (None: tiny model or superpixels)

    @property
    def cooperative(self) -> bool:
        """Several processes (shards or ranks) write into the folder."""
        return self.settings.shard_pair[1] > 1 or self.world > 1


def run_sam_masks(
    work_dir: str | os.PathLike, settings: SamRunSettings | None = None, **changes: Any
) -> SamRunResult:
    """Generate masks for every image of a split (or folder) that has no mask file yet.

    Args:
        work_dir: run folder; masks go to ``<work_dir>/masks/<split>/``.
        settings: the run's settings (:class:`fma.sam.run_settings.SamRunSettings`; default:
            its defaults).
        **changes: fields of ``settings`` to change, e.g. ``image_dir=..., preset="fast"``.

    Returns:
        :class:`SamRunResult`.

    Raises:
        TypeError: an unknown setting name.
        ValueError: bad settings, or the output folder holds masks made with other settings.
        FileNotFoundError: missing split file, image folder or checkpoint.
    """
    s = (settings or SamRunSettings()).replace(**changes)
    preset_obj = _resolve_preset(s)
    images = _resolve_images(s.dataset, s.data_root, s.split, s.image_dir, s.image_ids)
    plan = _make_plan(work_dir, s, preset_obj, images)
    spec = _GeneratorSpec.of(s, preset_obj, plan)
    # One writer per folder: an unsharded run holds the folder's lock until it returns, so a
    # concurrent run fails at once naming it. Shards and ranks share the folder: each holds the
    # lock only while it checks the manifest and (rank 0) writes it, so a run with other
    # settings started at the same time is refused by the manifest of the one before it.
    lock = contextlib.ExitStack()
    lock.enter_context(folder_lock(plan.out_dir, wait_s=60.0 if plan.cooperative else 0.0))
    try:
        _start_folder(plan)
        if plan.cooperative:
            lock.close()
        report = _generate(plan, spec)
        _finish(plan, report)
    finally:
        lock.close()
    return SamRunResult(
        plan.out_dir, report, plan.rank, plan.world, len(images.ids), plan.rank == 0
    )


def _resolve_preset(s: SamRunSettings) -> Any:
    overrides = dict(s.preset_overrides or {})
    if s.source == "sam":
        return get_preset(s.preset or "fma", **overrides)
    return get_superpixel_preset(s.preset or "felzenszwalb", **overrides)


def _make_plan(
    work_dir: str | os.PathLike, s: SamRunSettings, preset_obj: Any, images: _Images
) -> _Plan:
    """Join the process group, pick this process's ids and the manifest params."""
    shard_index, shard_count = s.shard_pair
    rank, world, local_rank, own_group = init_launcher_dist(
        s.launcher, s.dist_timeout_s, "tools/gen_sam_masks.py CONFIG"
    )
    ids = shard_ids(shard_ids(images.ids, shard_index, shard_count), rank, world)
    suffix = mask_suffix(s.file_format)
    ckpt_path: Path | None = None
    if s.source == "sam" and s.model_type != "tiny":
        from fma.sam.builder import resolve_checkpoint

        ckpt_path = resolve_checkpoint(s.model_type, s.checkpoint, download=s.download)
    params = _manifest_params(s.source, preset_obj, s.model_type, ckpt_path, s.tiny_seed)
    if s.precision != "fp32":  # absent = fp32, as in every folder written before the setting
        params["precision"] = s.precision
    params.update(
        image_dir=str(s.image_dir) if s.image_dir is not None else None,
        data_root=str(s.data_root) if s.data_root is not None else None,
        world_size=world,
        shard=f"{shard_index}/{shard_count}" if shard_count > 1 else None,
        file_suffix=suffix,
    )
    out_dir = masks_dir(work_dir, images.split)
    return _Plan(
        s, images, out_dir, ids, suffix, params, rank, world, local_rank, own_group, ckpt_path
    )


def _start_folder(plan: _Plan) -> None:
    """Refuse a folder written with other settings; rank 0 writes the unfinished manifest."""
    old = check_compatible(
        plan.out_dir, plan.params, format=FORMAT, what="masks", keys=_SETTING_KEYS,
        only_recorded=False, hint=_HINT,
    )  # fmt: skip
    if old is not None:
        was, now = old.params.get("precision", "fp32"), plan.settings.precision
        if was != now:
            raise ManifestError(
                f"{plan.out_dir}: its masks were made with other settings (precision={was!r}, "
                f"this run has precision={now!r}); {_HINT}"
            )
    _warn_other_suffix(plan.out_dir, plan.ids, plan.suffix)
    if plan.rank == 0:
        _write_manifest(plan.out_dir, plan.images, plan.params, plan.settings.config_path,
                        finished=False, failed=0)  # fmt: skip


def _generate(plan: _Plan, spec: _GeneratorSpec) -> StageReport:
    """Generate this process's images (in this process or in worker processes)."""
    s = plan.settings
    job = _ImageJob(spec, plan.out_dir, plan.images.path, s.min_image_side, plan.suffix,
                    s.max_image_pixels)  # fmt: skip
    if s.workers == 0:
        job.build()  # in this process: a bad model or preset fails here, before any image
    shard_index, shard_count = s.shard_pair
    where = f" [rank {plan.rank}/{plan.world}]" if plan.world > 1 else ""
    where += f" [shard {shard_index}/{shard_count}]" if shard_count > 1 else ""
    out_dir, suffix = plan.out_dir, plan.suffix
    return run_per_image(
        plan.ids,
        _call_job,
        output_path=lambda i: find_mask_file(out_dir, i) or out_dir / f"{i}{suffix}",
        workers=s.workers,
        desc=f"{s.source} masks {plan.images.split}{where}",
        progress=s.progress,
        initializer=_install_job,
        initargs=(job,),
    )


def _finish(plan: _Plan, report: StageReport) -> None:
    """Gather failures, write the final manifest (rank 0), panels, leave the process group."""
    s = plan.settings
    report.failed = gather_failures(report.failed, plan.world)
    if plan.world > 1:
        import torch.distributed as dist

        dist.barrier()  # every shard is done before the final manifest
    if plan.rank == 0:
        _write_manifest(plan.out_dir, plan.images, plan.params, s.config_path, finished=True,
                        failed=len(report.failed))  # fmt: skip
    if s.show_dir is not None:
        write_level_panels(plan.out_dir, plan.ids, plan.images.path, s.show_dir, s.num_show)
    if plan.world > 1:
        dist.barrier()
    if plan.own_group:
        import torch.distributed as dist

        dist.destroy_process_group()


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


def _make_generator(spec: _GeneratorSpec) -> Any:
    if spec.source == "superpixels":
        from fma.sam.superpixels import SuperpixelGenerator

        return SuperpixelGenerator.from_preset(spec.preset)
    from fma.sam.builder import build_sam, mask_generator

    sam = build_sam(spec.model_type, spec.ckpt_path, device=spec.device, tiny_seed=spec.tiny_seed)
    return mask_generator(
        sam,
        spec.preset,
        precision=spec.precision,
        crop_batch=spec.crop_batch,
        auto_batch=spec.auto_points_per_batch,
    )


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
