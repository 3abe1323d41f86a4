"""COCO preparation: instance annotations into 81-class label PNGs, split lists and labels.

The annotation file is read, recognised and checked by :mod:`fma.datasets.coco_annotations`
(a file of another COCO task is refused in one line naming what it is; a year-suffixed split
such as ``train2017`` is read as ``train`` of 2017); this module paints every image's label PNG
(resumable: a valid PNG of an earlier run is read back), writes the split list, the val subset
and the image-level labels, and records the COCO year in the label manifest and the image-label
file. All problems of a run are reported together, each naming its file (docs/datasets.md).
pycocotools is imported only when masks are decoded.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fma.datasets.checks import DatasetCheckError, format_class_table
from fma.datasets.coco_annotations import (
    coco_file_year,
    coco_split_year,
    index_coco,
    load_coco_json,
    polygon_warnings,
    render_coco_label_map,
)
from fma.datasets.labels import (
    image_labels_from_label_map,
    save_image_labels,
)
from fma.datasets.layout import DatasetLayout
from fma.datasets.meta import COCO14
from fma.io import (
    LabelMapError,
    Manifest,
    producer_info,
    read_label_map,
    read_manifest,
    write_label_map,
    write_manifest,
    write_text_atomic,
)
from fma.stage import map_per_image

__all__ = [
    "COCO_LABEL_FORMAT",
    "VAL_SUBSET_SIZE",
    "CocoPrepareResult",
    "prepare_coco",
    "val_subset_ids",
]

COCO_LABEL_FORMAT = "label_maps"
COCO_LABEL_VERSION = 1
#: Images of the in-training validation subset ``ImageSets/val_5000.txt`` (docs/datasets.md 4.3).
VAL_SUBSET_SIZE = 5000


def val_subset_ids(ids: Sequence[str], size: int = VAL_SUBSET_SIZE) -> list[str]:
    """The fixed validation subset of a val split: its first ``size`` ids in sorted order.

    Sorted order is the order of ``ImageSets/val.txt``, so the stage II configs select the same
    images with ``indices=5000`` on ``split="val"``. Deterministic, independent of any random
    generator; all ids when there are at most ``size``.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return sorted(ids)[:size]


def _coco_task(task: tuple[Any, ...]) -> tuple[str, list[int] | None, bool, str | None]:
    """Render (or reuse) one PNG; return (stem, present indices incl. 0, written, problem)."""
    stem, height, width, anns, png, crowd = task
    png = Path(png)
    C = COCO14.num_classes
    if png.is_file():
        try:
            label = read_label_map(png, num_classes=C)
            if label.shape == (height, width):
                present = image_labels_from_label_map(label, C, COCO14.ignore_index)
                return stem, np.flatnonzero(present).tolist(), False, None
        except LabelMapError:
            pass  # not a valid earlier output: render it again
    try:
        label = render_coco_label_map(anns, height, width, crowd)
    except ValueError as exc:
        return stem, None, False, f"image {stem}: {exc}"
    write_label_map(png, label, COCO14.palette)
    present = image_labels_from_label_map(label, C, COCO14.ignore_index)
    return stem, np.flatnonzero(present).tolist(), True, None


def _coco_task_id(stem: str, tasks: dict[str, tuple[Any, ...]]) -> tuple:
    """:func:`_coco_task` of one image (the per-image function for :func:`map_per_image`)."""
    return _coco_task(tasks[stem])


@dataclasses.dataclass
class CocoPrepareResult:
    """Outcome of :func:`prepare_coco`."""

    split: str
    out_root: Path
    image_ids: list[str]
    labels: dict[str, list[int]]
    class_counts: np.ndarray  # (81,) int64, images containing each class (incl. background)
    written: int  # PNGs written by this run
    reused: int  # PNGs already present from an earlier run, read back
    images_without_annotations: int
    warnings: list[str]
    paths: dict[str, Path]  # "labels_dir", "split_file", "image_labels", "manifest"
    # (+ "val_subset_file" for the val split)
    year: int | None = None  # COCO release (2014, 2017) when the split or the file names it

    def summary(self) -> str:
        table = format_class_table(
            COCO14.class_names, {self.split: self.class_counts}, {self.split: len(self.labels)}
        )
        lines = [
            table,
            f"COCO {self.year or '(year not stated)'}, split {self.split!r}, dataset key "
            f"{COCO14.name!r}",
            f"PNGs written: {self.written}, reused: {self.reused}, images without annotations: "
            f"{self.images_without_annotations}",
        ]
        lines += [f"{k}: {v}" for k, v in self.paths.items()]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def prepare_coco(
    ann_file: str | os.PathLike,
    split: str,
    root: str | os.PathLike,
    out_root: str | os.PathLike | None = None,
    *,
    crowd: str = "class",
    images_dir: str | os.PathLike | None = None,
    workers: int = 1,
    progress: bool = False,
) -> CocoPrepareResult:
    """Convert COCO instance annotations into fma's ``coco14`` layout.

    Writes, under ``out_root`` (default ``root``):

    * ``SegmentationClass/<split>/<stem>.png``: 81-class palette PNGs
      (:func:`render_coco_label_map`); ``<stem>`` is the image file name without extension;
    * ``SegmentationClass/<split>/manifest.json``;
    * ``ImageSets/<split>.txt``: the stems, sorted;
    * for ``split == "val"`` also ``ImageSets/val_5000.txt``: :func:`val_subset_ids`, the
      images validated on during stage II training (the test uses all of ``val``);
    * ``cls_labels/<split>.json``: image-level labels taken from the written PNGs.

    The run is resumable: existing valid PNGs of the right size are read back, not rendered.
    Everything is checked before anything is written (categories, image ids, duplicate stems,
    and, when ``images_dir`` exists, that every image file is present).

    Args:
        ann_file: ``instances_<split>2014.json`` or ``instances_<split>2017.json``; files of
            other COCO tasks (keypoints, captions, panoptic, stuff) are refused.
        split: split name used in the output paths (``train``, ``val``); ``train2017`` /
            ``val2014`` are read as ``train`` / ``val`` of that year (:func:`coco_split_year`).
        root: COCO root; images are looked up in ``root/<split><year>`` for the year of the
            split or file (else ``root/<split>2014``, or ``root/<split>2017`` when only that
            exists) unless ``images_dir``.
        out_root: output root, default ``root``.
        crowd: ``"class"`` (default) or ``"ignore"``; see :func:`render_coco_label_map`.
        images_dir: folder holding the images; a missing folder only adds a warning.
        workers: processes for rendering (1 = in this process).
        progress: show a tqdm bar.

    Returns:
        A :class:`CocoPrepareResult`.

    Raises:
        DatasetCheckError: every problem found, each named; nothing (or, for render errors, only
            the good PNGs) is written.
        ValueError: unreadable annotation file or one of another COCO task, ``crowd`` unknown,
            a split year that differs from the file's, or an earlier run in the same folder
            used another ``crowd`` setting.
    """
    if crowd not in ("class", "ignore"):
        raise ValueError(f"crowd must be 'class' or 'ignore', got {crowd!r}")
    ann_file = Path(ann_file)
    root = Path(root)
    out = Path(out_root) if out_root is not None else root
    given = split
    split, year = coco_split_year(split)
    data = load_coco_json(ann_file)
    file_year = coco_file_year(ann_file, data)
    if year is not None and file_year is not None and year != file_year:
        raise ValueError(
            f"--split {given} names COCO {year}, but {ann_file} holds COCO {file_year} "
            f"annotations; pass --split {split} (the year is taken from the file) or the "
            f"{year} annotation file"
        )
    year = year if year is not None else file_year
    images, by_image, problems = index_coco(data, ann_file)
    warnings: list[str] = []
    if not data["annotations"]:
        warnings.append(
            f"{ann_file}: the file holds no annotations, so every label map is background (an "
            "image_info or test file?); use instances_<split>2014.json or its 2017 version"
        )
    warnings += polygon_warnings(ann_file, [a for v in by_image.values() for a in v])

    layout_dir = DatasetLayout.of("coco14", root).images_dir(split)
    img_dir = layout_dir if images_dir is None else Path(images_dir)
    if images_dir is None and year is not None and (root / f"{split}{year}").is_dir():
        img_dir = root / f"{split}{year}"
        if img_dir != layout_dir:
            warnings.append(
                f"{root}: holds both {layout_dir.name}/ and {img_dir.name}/; the label maps are "
                f"checked against {img_dir.name}/, but fma's data loaders read {layout_dir.name}/ "
                f"for split {split!r}: keep one of them under this root"
            )
    if img_dir.is_dir():
        present = set(os.listdir(img_dir))
        for img in images.values():
            if img["file_name"] not in present:
                problems.append(f"{img_dir / img['file_name']}: missing image")
    else:
        warnings.append(
            f"{img_dir}: image folder not found; label maps written without checking images"
        )
    if problems:
        raise DatasetCheckError(str(ann_file), problems)

    seg_dir = out / "SegmentationClass" / split
    old = read_manifest(seg_dir, required=False)
    if old is not None:
        if old.format != COCO_LABEL_FORMAT or old.dataset != COCO14.name:
            raise ValueError(
                f"{seg_dir}: holds {old.format}/{old.dataset} files, not coco14 label maps"
            )
        if old.params.get("crowd", crowd) != crowd:
            raise ValueError(
                f"{seg_dir}: earlier run used --crowd {old.params.get('crowd')}; pass the same "
                "value, or delete the folder to convert again"
            )
    params: dict[str, Any] = {
        "crowd": crowd,
        "overlap": "descending area (smaller instance on top), ties by annotation id",
        "ann_file": str(ann_file),
        "year": year,
        "complete": False,
    }
    manifest = Manifest(
        format=COCO_LABEL_FORMAT, version=COCO_LABEL_VERSION, count=0, dataset=COCO14.name,
        split=split, class_names=list(COCO14.class_names),
        producer=producer_info("tools/prepare_coco.py"), params=params,
    )  # fmt: skip
    write_manifest(seg_dir, manifest)

    order = sorted(images.values(), key=lambda im: Path(im["file_name"]).stem)
    tasks = [
        (Path(im["file_name"]).stem, im["height"], im["width"], by_image.get(im["id"], []),
         str(seg_dir / f"{Path(im['file_name']).stem}.png"), crowd)
        for im in order
    ]  # fmt: skip
    C = COCO14.num_classes
    labels: dict[str, list[int]] = {}
    counts = np.zeros(C, dtype=np.int64)
    written = reused = 0
    stems = [t[0] for t in tasks]
    done = map_per_image(
        stems, _coco_task_id, ({t[0]: t for t in tasks},), workers=workers if workers > 1 else 0,
        desc=split, progress=progress,
    )  # fmt: skip
    for stem, present_idx, wrote, problem in (done[i] for i in stems):
        if problem is not None:
            problems.append(f"{ann_file}: {problem}")
            continue
        labels[stem] = [c for c in present_idx if c > 0]
        counts[present_idx] += 1
        written += int(wrote)
        reused += int(not wrote)
    if problems:
        raise DatasetCheckError(str(ann_file), problems)

    ids = [t[0] for t in tasks]
    split_file = out / "ImageSets" / f"{split}.txt"
    write_text_atomic(split_file, "".join(f"{i}\n" for i in ids))
    extra: dict[str, Path] = {}
    if split == "val":
        subset_file = out / "ImageSets" / f"val_{VAL_SUBSET_SIZE}.txt"
        write_text_atomic(subset_file, "".join(f"{i}\n" for i in val_subset_ids(ids)))
        extra["val_subset_file"] = subset_file
    labels_file = save_image_labels(
        out / "cls_labels" / f"{split}.json", labels, COCO14.class_names, COCO14.name, split,
        producer={**manifest.producer, "params": {"year": year, "ann_file": str(ann_file)}},
    )  # fmt: skip
    no_ann = sum(1 for im in order if not by_image.get(im["id"]))
    manifest.count = len(ids)
    params.update(complete=True, images=len(ids), images_without_annotations=no_ann)
    params["annotations"] = sum(len(v) for v in by_image.values())
    manifest_path = write_manifest(seg_dir, manifest)
    return CocoPrepareResult(
        split, out, ids, labels, counts, written, reused, no_ann, warnings,
        {"labels_dir": seg_dir, "split_file": split_file, "image_labels": labels_file,
         "manifest": manifest_path, **extra}, year,
    )  # fmt: skip
