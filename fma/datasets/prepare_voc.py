"""PASCAL VOC 2012 preparation: check the folder and write the image-level labels.

:func:`prepare_voc` checks that every listed image and ground-truth PNG exists and decodes and
writes ``cls_labels/<split>.json``. All problems of a run are reported together, each naming its
file (docs/datasets.md). ``train_aug`` reads ``SegmentationClassAug/``, which
:func:`fma.datasets.sbd.convert_sbd` writes from SBD together with ``train_aug.txt``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fma.datasets.checks import check_image_file, format_class_table
from fma.datasets.labels import (
    image_labels_from_label_map,
    save_image_labels,
)
from fma.datasets.layout import DatasetLayout, read_split_file
from fma.datasets.meta import VOC12
from fma.io import (
    LabelMapError,
    producer_info,
    read_label_map,
)
from fma.stage import map_per_image

__all__ = ["VOC_SPLITS", "SplitReport", "VocPrepareResult", "prepare_voc", "voc_default_splits"]

VOC_SPLITS = ("train", "val", "train_aug")


@dataclasses.dataclass
class SplitReport:
    """Outcome of preparing one split."""

    split: str
    image_ids: list[str]
    labels: dict[str, list[int]]  # image id -> foreground indices (good images only)
    class_counts: np.ndarray  # (C,) int64, images containing each class (incl. background)
    problems: list[str]  # one line per missing/unreadable/invalid file, naming it
    out_path: Path | None  # labels file written, None when the split had problems


@dataclasses.dataclass
class VocPrepareResult:
    """Outcome of :func:`prepare_voc`."""

    root: Path
    out_dir: Path
    layout_problems: list[str]
    splits: dict[str, SplitReport]

    @property
    def problems(self) -> list[str]:
        """Every problem found, layout first."""
        out = list(self.layout_problems)
        for rep in self.splits.values():
            out += rep.problems
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """Images per split and per-class image counts, as a table."""
        if not self.splits:
            return "no split checked"
        table = format_class_table(
            VOC12.class_names,
            {s: r.class_counts for s, r in self.splits.items()},
            {s: len(r.labels) for s, r in self.splits.items()},
        )
        written = [f"{s}: {r.out_path}" for s, r in self.splits.items() if r.out_path]
        return table + ("\nwritten:\n  " + "\n  ".join(written) if written else "")


def voc_default_splits(root: str | os.PathLike) -> list[str]:
    """Splits whose list file exists: ``train``, ``val`` and, with SegmentationClassAug,
    ``train_aug`` (``train_aug.txt`` or mmseg's ``trainaug.txt``)."""
    layout = DatasetLayout.of("voc12", root)
    out = [s for s in ("train", "val") if layout.split_file(s).is_file()]
    if layout.labels_dir("train_aug").is_dir() and layout.split_file("train_aug").is_file():
        out.append("train_aug")
    return out


def _voc_check_pair(task: tuple[str, str, str, int]) -> tuple[str, list[int] | None, list[str]]:
    """Check one image + label PNG; return (id, present class indices incl. 0 or None, problems)."""
    image_id, image_path, label_path, num_classes = task
    problems = []
    size, err = check_image_file(image_path)
    if err:
        problems.append(err)
    label = None
    try:
        label = read_label_map(label_path, num_classes=num_classes)
    except FileNotFoundError:
        problems.append(f"{label_path}: missing label map")
    except LabelMapError as exc:
        problems.append(str(exc))
    if label is not None and size is not None and label.shape != size:
        problems.append(
            f"{label_path}: label size {label.shape[1]}x{label.shape[0]} (WxH) differs from "
            f"image size {size[1]}x{size[0]} of {image_path}"
        )
    if problems or label is None:
        return image_id, None, problems
    present = image_labels_from_label_map(label, num_classes, VOC12.ignore_index)
    return image_id, np.flatnonzero(present).tolist(), []


def _voc_check_id(image_id: str, tasks: dict[str, tuple[str, str, str, int]]) -> tuple:
    """:func:`_voc_check_pair` of one id (the per-image function for :func:`map_per_image`)."""
    return _voc_check_pair(tasks[image_id])


def prepare_voc(
    root: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    splits: Sequence[str] | None = None,
    *,
    workers: int = 1,
    progress: bool = False,
) -> VocPrepareResult:
    """Check a VOC 2012 folder and write image-level labels per split.

    For each split, every listed image (``JPEGImages/<id>.jpg``) and ground-truth PNG
    (``SegmentationClass/<id>.png``; ``SegmentationClassAug`` for ``train_aug``) must exist and
    decode, the PNG must hold only 0..20 and 255, and both must have the same size. Labels are
    derived from the ground truth (class present iff a pixel has it, 255 ignored).

    A split with any problem gets no labels file (a partial file would silently train on fewer
    images); splits without problems are written. All problems are returned, none raised.

    Args:
        root: the ``VOC2012`` folder.
        out_dir: folder for ``<split>.json``; default ``root/cls_labels``.
        splits: splits to process; default :func:`voc_default_splits`.
        workers: processes for checking files (0 or 1 = in this process).
        progress: show a tqdm bar per split.

    Returns:
        A :class:`VocPrepareResult`; ``result.ok`` is False when anything was wrong.
    """
    root = Path(root)
    layout = DatasetLayout.of("voc12", root)
    out = Path(out_dir) if out_dir is not None else root / "cls_labels"
    result = VocPrepareResult(root, out, [], {})
    if not root.is_dir():
        result.layout_problems.append(f"{root}: folder not found (expected a VOC2012 folder)")
        return result
    for folder in ("JPEGImages", "SegmentationClass"):
        if not (root / folder).is_dir():
            result.layout_problems.append(f"{root / folder}: missing folder")
    if splits is None:
        splits = voc_default_splits(root)
        if not splits:
            result.layout_problems.append(
                f"{root / 'ImageSets' / 'Segmentation'}: no train.txt or val.txt"
            )
    todo = []
    for split in splits:
        if split not in VOC_SPLITS:
            result.layout_problems.append(f"unknown VOC split {split!r}; use {VOC_SPLITS}")
        elif not layout.split_file(split).is_file():
            result.layout_problems.append(
                f"{layout.split_file(split)}: missing split file{layout.split_hint(split)}"
            )
        elif not layout.labels_dir(split).is_dir():
            result.layout_problems.append(f"{layout.labels_dir(split)}: missing folder")
        else:
            todo.append(split)
    if result.layout_problems:
        return result

    producer = producer_info("tools/prepare_voc.py")
    C = VOC12.num_classes
    for split in todo:
        ids = read_split_file(layout.split_file(split))
        problems = []
        seen: set[str] = set()
        unique = []
        for i in ids:
            if i in seen:
                problems.append(f"{layout.split_file(split)}: id {i} listed more than once")
            else:
                seen.add(i)
                unique.append(i)
        tasks = {
            i: (i, str(layout.image_path(split, i)), str(layout.labels_dir(split) / f"{i}.png"), C)
            for i in unique
        }
        labels: dict[str, list[int]] = {}
        counts = np.zeros(C, dtype=np.int64)
        checked = map_per_image(
            unique, _voc_check_id, (tasks,), workers=workers if workers > 1 else 0, desc=split,
            progress=progress,
        )  # fmt: skip
        for image_id, present, probs in (checked[i] for i in unique):
            problems += probs
            if present is not None:
                labels[image_id] = [c for c in present if c > 0]
                counts[present] += 1
        out_path = None
        if not problems:
            out_path = save_image_labels(
                out / f"{split}.json", labels, VOC12.class_names, "voc12", split,
                producer=producer,
            )  # fmt: skip
        result.splits[split] = SplitReport(split, unique, labels, counts, problems, out_path)
    return result
