"""Refine a folder of pseudo-label PNGs with SAM masks (SEPL), one image at a time.

Inputs: ``<labels_dir>/<image_id>.png`` pseudo labels of any method (palette or greyscale PNGs,
0 = background, 255 = ignore) and the SAM masks of the same images under ``masks_dir`` in any
layout :func:`fma.io.masks.layout.load_masks_any` reads (fma ``sam_masks`` files
``<image_id>.npz``, ``.json.gz`` or ``.json``, segment-anything ``amg.py`` PNG folders or its
COCO-RLE JSON).
Output: ``<out_dir>/<image_id>.png`` refined labels (palette PNGs) and
``<out_dir>/manifest.json`` (format ``label_maps``).

Before anything is written, the mask folder's manifest (when it has one, as every
``tools/gen_sam_masks.py`` folder does) must be a ``sam_masks`` manifest of the same dataset and
split as the pseudo labels, and every image must have masks; otherwise one error names the
folder, the mismatch or the images without masks.

The run is resumable: images whose output exists are skipped, and a rerun into a folder refined
with other settings is refused. Failed images are reported by id; the others are still written.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fma.datasets.meta import get_dataset_meta
from fma.io.label_maps import bitwise_palette, read_label_map, write_label_map
from fma.io.manifest import (
    Manifest,
    ManifestError,
    check_compatible,
    folder_lock,
    producer_info,
    read_manifest,
    write_manifest,
)
from fma.io.masks.layout import mask_layout
from fma.io.masks.records import FORMAT as MASKS_FORMAT
from fma.io.masks.records import VERSION as MASKS_VERSION
from fma.io.masks.records import SamMaskError, find_mask_file
from fma.io.masks.runs import load_runs_any
from fma.seeding.sepl import METHODS, refine_pseudo_label
from fma.stage import StageReport, run_per_image
from fma.visualization.refine_panels import write_refine_panels

__all__ = [
    "FORMAT",
    "VERSION",
    "RefineResult",
    "refine_label_dir",
    "refine_one",
]
#: ``producer.tool`` of the manifest; kept from before the module moved (a stable file field).
PRODUCER = "fma.seeding.refine_run.refine_label_dir"
#: Settings an existing output folder must share with a run that adds files to it.
_RESUME_KEYS = ("method", "labels_dir", "masks_dir", "num_classes", "keep_ignore", "max_area_ratio")

FORMAT = "label_maps"
VERSION = 1


@dataclasses.dataclass
class RefineResult:
    """What :func:`refine_label_dir` did.

    Attributes:
        report: per-image outcome (written, skipped, failed with messages).
        out_dir: the output folder.
        seconds: wall time of the refinement (without the panels).
        panels: panel PNGs written to ``show_dir``.
    """

    report: StageReport
    out_dir: Path
    seconds: float
    panels: list[Path] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.report.ok


@dataclasses.dataclass(frozen=True)
class _Job:
    labels_dir: str
    masks_dir: str
    out_dir: str
    method: str
    num_classes: int
    keep_ignore: bool
    max_area_ratio: float | None
    ignore_index: int
    palette: np.ndarray | None


def refine_one(image_id: str, job: _Job) -> None:
    """Refine one image and write ``<out_dir>/<image_id>.png`` (module-level: picklable)."""
    label_path = Path(job.labels_dir) / f"{image_id}.png"
    label = read_label_map(
        label_path, num_classes=job.num_classes, ignore_index=job.ignore_index, palette=job.palette
    )
    sam = load_runs_any(job.masks_dir, image_id, image_size=label.shape)
    if tuple(sam.shape) != label.shape:
        mask_path = mask_layout(job.masks_dir, image_id)[1]
        raise ValueError(
            f"size mismatch: pseudo label {label_path} is {label.shape[1]}x{label.shape[0]} "
            f"(WxH) but its SAM masks {mask_path} are {sam.shape[1]}x{sam.shape[0]}; SEPL never "
            "resizes, so generate the masks on the images the labels belong to"
        )
    refined = refine_pseudo_label(
        label,
        sam,
        job.num_classes,
        job.method,
        keep_ignore=job.keep_ignore,
        max_area_ratio=job.max_area_ratio,
        ignore_index=job.ignore_index,
    )
    write_label_map(Path(job.out_dir) / f"{image_id}.png", refined, job.palette)


def _mask_source(masks_dir: Path, manifest: Manifest | None, first_id: str | None) -> str:
    """The mask source recorded in the (checked) manifest, else the folder layout of an image."""
    if manifest is not None and manifest.params.get("mask_source"):
        return str(manifest.params["mask_source"])
    if first_id is None:
        return "unknown"
    try:
        return mask_layout(masks_dir, first_id)[0]
    except (FileNotFoundError, SamMaskError):
        return "unknown"


#: Ids named in an error about images without masks.
MAX_LISTED = 20


def _check_masks(
    masks_dir: Path, ids: Sequence[str], dataset: str | None, split: str | None
) -> Manifest | None:
    """Refuse a mask folder of another dataset or split, or one lacking masks of some images.

    Returns:
        The folder's manifest (None for a folder without one, e.g. amg.py output).
    """
    manifest = read_manifest(masks_dir, required=False)
    if manifest is not None:
        if manifest.format != MASKS_FORMAT:
            raise ManifestError(
                f"{masks_dir}: holds {manifest.format!r} files, not SAM masks; pass the folder "
                "written by tools/gen_sam_masks.py (--masks)"
            )
        if manifest.version != MASKS_VERSION:
            raise ManifestError(
                f"{masks_dir}: manifest field 'version' is {manifest.version}, this fma reads "
                f"version {MASKS_VERSION} of {MASKS_FORMAT}; regenerate the masks with "
                "tools/gen_sam_masks.py, or use the fma version that wrote them"
            )
        for key, want in (("dataset", dataset), ("split", split)):
            have = getattr(manifest, key)
            if want is not None and have is not None and have != want:
                raise ManifestError(
                    f"{masks_dir}: its masks are of {key} {have!r} (manifest.json), the pseudo "
                    f"labels of {key} {want!r}; pass the masks of the same images (--masks)"
                )
    missing = [
        i for i in ids if find_mask_file(masks_dir, i) is None and not (masks_dir / i).is_dir()
    ]
    if missing:
        what = (f"any of the {len(ids)} pseudo labels" if len(missing) == len(ids)
                else f"{len(missing)} of the {len(ids)} pseudo labels")  # fmt: skip
        shown = ", ".join(missing[:MAX_LISTED]) + (" ..." if len(missing) > MAX_LISTED else "")
        origin = ""
        if manifest is not None and (manifest.dataset or manifest.split):
            origin = f"; its manifest says dataset {manifest.dataset!r}, split {manifest.split!r}"
        raise FileNotFoundError(
            f"{masks_dir}: no SAM masks for {what} ({shown}){origin}. Pass the masks of these "
            "images (tools/gen_sam_masks.py), or --image-list the ids that have masks"
        )
    return manifest


def _resolve_classes(
    labels_manifest: Manifest | None, labels_dir: Path, num_classes: int | None, dataset: str | None
) -> tuple[int, list[str] | None]:
    names: list[str] | None = None
    if dataset is not None:
        names = list(get_dataset_meta(dataset).class_names)
    elif labels_manifest is not None and labels_manifest.class_names:
        names = list(labels_manifest.class_names)
    if num_classes is None:
        if names is None:
            raise ValueError(
                f"{labels_dir}: number of classes unknown; pass num_classes (--num-classes 21) "
                "or dataset (--dataset voc12)"
            )
        num_classes = len(names)
    if names is not None and len(names) != num_classes:
        names = None
    return int(num_classes), names


def _dataset_palette(dataset: str | None) -> np.ndarray:
    """The built-in dataset's palette; the VOC colour map otherwise."""
    if dataset is not None:
        try:
            return get_dataset_meta(dataset).palette
        except KeyError:
            pass
    return bitwise_palette()


def _count_outputs(out_dir: Path, ids: Sequence[str]) -> int:
    return sum(1 for i in ids if (out_dir / f"{i}.png").is_file())


def refine_label_dir(
    labels_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    method: str = "max_iou_imp2",
    workers: int = 0,
    num_classes: int | None = None,
    dataset: str | None = None,
    palette: np.ndarray | None = None,
    keep_ignore: bool = False,
    max_area_ratio: float | None = None,
    ignore_index: int = 255,
    image_ids: Sequence[str] | None = None,
    show_dir: str | os.PathLike | None = None,
    images_dir: str | os.PathLike | None = None,
    num_show: int = 5,
    seed: int = 0,
    progress: bool = True,
) -> RefineResult:
    """Refine every pseudo label of ``labels_dir`` with SEPL and write the results.

    Args:
        labels_dir: folder of ``<image_id>.png`` pseudo labels.
        masks_dir: folder of SAM masks (fma ``<id>.npz`` / ``.json.gz`` / ``.json``, amg.py PNG
            folders or amg.py RLE JSON).
        out_dir: output folder for the refined ``<image_id>.png`` and ``manifest.json``.
        method: :data:`fma.seeding.sepl.METHODS` entry; default the official ``max_iou_imp2``.
        workers: worker processes (0: this process).
        num_classes: classes including background; default from ``dataset`` or from the class
            names in ``labels_dir``'s manifest.
        dataset: dataset key (``voc12``, ``coco14``) for the class count, class names and palette.
        palette: (N, 3) uint8 colours of the output PNGs (default: the dataset's, else VOC's).
        keep_ignore: see :func:`fma.seeding.sepl.refine_pseudo_label`.
        max_area_ratio: see :func:`fma.seeding.sepl.refine_pseudo_label`.
        ignore_index: ignore label of the pseudo labels.
        image_ids: ids to refine (default: every ``*.png`` in ``labels_dir``).
        show_dir: when given, write panels (image | pseudo label | masks | refined) of the
            ``num_show`` images whose labels changed most and of ``num_show`` random others.
        images_dir: folder of ``<image_id>.<jpg|png|...>`` images for the first panel column.
        num_show: panels per group.
        seed: random seed of the sample and the mask colours.
        progress: show progress bars.

    Returns:
        :class:`RefineResult`.

    Raises:
        FileNotFoundError: a missing input folder.
        FileNotFoundError: images without masks in ``masks_dir`` (one error for all of them).
        ManifestError: ``masks_dir``'s manifest is not of SAM masks, or of another dataset or
            split than the labels (``dataset``, else the labels' manifest).
        ValueError: unknown method, unknown class count, no labels, or ``out_dir`` refined with
            other settings. Per-image problems (unreadable masks, size mismatch, bad values) do
            not raise; they are listed in ``result.report.failed``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown SEPL method {method!r}; choose one of {', '.join(METHODS)}")
    labels_dir, masks_dir, out_dir = Path(labels_dir), Path(masks_dir), Path(out_dir)
    for folder, what in ((labels_dir, "pseudo-label"), (masks_dir, "SAM mask")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: {what} folder not found")
    if image_ids is None:
        ids = sorted(p.stem for p in labels_dir.glob("*.png") if not p.name.startswith("."))
    else:
        ids = list(dict.fromkeys(image_ids))
    if not ids:
        raise ValueError(f"{labels_dir}: no pseudo-label PNGs to refine")
    labels_manifest = read_manifest(labels_dir, required=False)
    num_classes, class_names = _resolve_classes(labels_manifest, labels_dir, num_classes, dataset)
    split = labels_manifest.split if labels_manifest is not None else None
    if dataset is None and labels_manifest is not None:
        dataset = labels_manifest.dataset
    masks_manifest = _check_masks(masks_dir, ids, dataset, split)
    if palette is None:
        palette = _dataset_palette(dataset)
    palette = np.asarray(palette, dtype=np.uint8)
    params: dict[str, Any] = {
        "method": method,
        "labels_dir": str(labels_dir.resolve()),
        "masks_dir": str(masks_dir.resolve()),
        "mask_source": _mask_source(masks_dir, masks_manifest, ids[0]),
        "num_classes": num_classes,
        "keep_ignore": bool(keep_ignore),
        "max_area_ratio": max_area_ratio,
    }
    with folder_lock(out_dir):
        check_compatible(out_dir, params, format=FORMAT, what="refined labels", keys=_RESUME_KEYS)

        def manifest(complete: bool) -> Manifest:
            return Manifest(
                format=FORMAT,
                version=VERSION,
                count=_count_outputs(out_dir, ids),
                dataset=dataset,
                split=split,
                class_names=class_names,
                producer=producer_info(PRODUCER),
                params={**params, "complete": complete, "images": len(ids)},
            )

        write_manifest(out_dir, manifest(False))
        job = _Job(
            str(labels_dir), str(masks_dir), str(out_dir), method, num_classes, bool(keep_ignore),
            max_area_ratio, int(ignore_index), palette,
        )  # fmt: skip
        start = time.perf_counter()
        report = run_per_image(
            ids,
            refine_one,
            (job,),
            output_path=lambda i: out_dir / f"{i}.png",
            workers=workers,
            desc=f"SEPL {method}",
            progress=progress,
        )
        seconds = time.perf_counter() - start
        write_manifest(out_dir, manifest(report.ok and _count_outputs(out_dir, ids) == len(ids)))
        result = RefineResult(report=report, out_dir=out_dir, seconds=seconds)
        if show_dir is not None and num_show > 0:
            result.panels = write_refine_panels(
                [i for i in ids if i not in report.failed],
                labels_dir,
                masks_dir,
                out_dir,
                show_dir,
                num_classes=num_classes,
                palette=palette,
                images_dir=images_dir,
                num_show=num_show,
                seed=seed,
                ignore_index=ignore_index,
                progress=progress,
                class_names=class_names,
            )
        return result
