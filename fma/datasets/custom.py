"""Custom datasets: read and check a folder of images, a class list and image-level labels.

:func:`load_custom_dataset` reports every problem together, each naming its image, class or
file (docs/datasets.md); the class list is read by :func:`fma.datasets.checks.read_class_names`.

:func:`custom_dataset_meta` gives the label space of a folder: ``ROOT/classes.txt`` names the
foreground classes (class 1, 2, ...; background is class 0). The names double as the CLIP prompt
names unless the folder has ``ROOT/prompt_names.txt``: one prompt text per line, in the order of
``classes.txt`` (e.g. ``person with clothes,people,human`` for ``person``, the CLIP-ES names of
method-fma section 3.4). Background prompt names default to the VOC CLIP-ES list.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fma.datasets.checks import DatasetCheckError, read_class_names
from fma.datasets.custom_labels import read_image_labels_checked
from fma.datasets.labels import ImageLabelsError
from fma.datasets.layout import IMAGE_SUFFIXES, read_split_file
from fma.datasets.meta import VOC12, DatasetMeta
from fma.io.label_maps import bitwise_palette

__all__ = ["CustomDataset", "custom_dataset_meta", "load_custom_dataset", "read_prompt_names"]

PROMPT_NAMES_FILE = "prompt_names.txt"


@dataclasses.dataclass(frozen=True)
class CustomDataset:
    """A checked custom dataset (see docs/datasets.md, "Custom datasets")."""

    root: Path
    split: str
    class_names: tuple[str, ...]  # C names, [0] = "background"
    image_ids: list[str]  # sorted ids (file stems) of the split
    image_paths: list[Path]  # same order as image_ids
    labels: dict[str, list[int]]  # image id -> foreground indices 1..C-1, for every image_id
    gt_dir: Path | None  # ROOT/ground_truth when it exists (evaluation only)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def multi_hot(self) -> np.ndarray:
        """(N, C) bool image-level labels in ``image_ids`` order (column 0 always False)."""
        from fma.datasets.labels import labels_to_multi_hot

        return labels_to_multi_hot(self.labels, self.image_ids, self.num_classes)

    def to_meta(self, clip_bg_names: Sequence[str] | None = None) -> DatasetMeta:
        """The folder's :class:`DatasetMeta` (:func:`custom_dataset_meta`)."""
        return custom_dataset_meta(self.root, clip_bg_names)


def load_custom_dataset(root: str | os.PathLike, split: str = "all") -> CustomDataset:
    """Read and check a custom dataset folder.

    Layout::

        ROOT/images/<id>.<jpg|jpeg|png|bmp|tif|tiff|webp>
        ROOT/classes.txt                     foreground class names, one per line
        ROOT/labels.csv or ROOT/labels.json  image-level labels (fma.datasets.labels readers)
        ROOT/ground_truth/<id>.png           optional
        ROOT/splits/<split>.txt              optional; split "all" without it = every image

    Checks (all collected into one error): unknown class names, duplicate label rows, images of
    the split without labels, label entries without an image, split ids without an image, two
    images with the same id. Images are not decoded here.

    Args:
        root: dataset folder.
        split: ``all`` or the name of a ``splits/<split>.txt`` file.

    Returns:
        A :class:`CustomDataset`.

    Raises:
        FileNotFoundError: missing folder, ``images/``, ``classes.txt``, label file or split file.
        DatasetCheckError: the problems listed above, each naming the image, class or file.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    img_dir = root / "images"
    if not img_dir.is_dir():
        raise FileNotFoundError(
            f"{img_dir}: image folder not found; put the images in ROOT/images/"
        )
    class_names = read_class_names(root / "classes.txt")
    csv_path, json_path = root / "labels.csv", root / "labels.json"
    if csv_path.is_file() and json_path.is_file():
        raise DatasetCheckError(
            str(root), [f"both {csv_path.name} and {json_path.name} exist; keep one"]
        )
    label_path = csv_path if csv_path.is_file() else json_path
    if not label_path.is_file():
        raise FileNotFoundError(f"{root}: no labels.csv or labels.json (image-level labels)")
    try:
        labels, label_problems = read_image_labels_checked(label_path, class_names)
    except ImageLabelsError as exc:
        raise DatasetCheckError(str(root), [str(exc)]) from exc
    problems = [f"{label_path}: {p}" for p in label_problems]

    paths: dict[str, Path] = {}
    for p in sorted(img_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in paths:
                problems.append(f"{p}: same id as {paths[p.stem].name}; rename one")
            else:
                paths[p.stem] = p
    if not paths:
        problems.append(f"{img_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")

    split_file = root / "splits" / f"{split}.txt"
    if split_file.is_file():
        ids = list(dict.fromkeys(read_split_file(split_file)))
        problems += [f"{split_file}: {i} has no image in {img_dir}" for i in ids if i not in paths]
        ids = [i for i in ids if i in paths]
    elif split == "all":
        ids = list(paths)
    else:
        raise FileNotFoundError(f"{split_file}: split file not found (split {split!r})")
    problems += [
        f"{paths[i]}: no image-level labels in {label_path.name}" for i in ids if i not in labels
    ]
    problems += [
        f"{label_path}: labels for {i!r} but no image in {img_dir}"
        for i in labels
        if i not in paths
    ]
    if problems:
        raise DatasetCheckError(str(root), problems)
    ids = sorted(ids)
    gt_dir = root / "ground_truth"
    return CustomDataset(
        root=root,
        split=split,
        class_names=class_names,
        image_ids=ids,
        image_paths=[paths[i] for i in ids],
        labels={i: labels[i] for i in ids},
        gt_dir=gt_dir if gt_dir.is_dir() else None,
    )


def read_prompt_names(path: str | os.PathLike, num_fg: int) -> tuple[str, ...]:
    """Read ``prompt_names.txt``: ``num_fg`` non-empty lines (``#`` lines and blanks skipped).

    Raises:
        DatasetCheckError: another number of names than ``classes.txt`` lists.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    names = tuple(s.strip() for s in lines if s.strip() and not s.strip().startswith("#"))
    if len(names) != num_fg:
        raise DatasetCheckError(
            str(path.parent),
            [f"{path}: {len(names)} prompt names for {num_fg} classes in classes.txt; "
             "write one line per class, in the same order (or delete the file)"],
        )  # fmt: skip
    return names


def custom_dataset_meta(
    root: str | os.PathLike, clip_bg_names: Sequence[str] | None = None
) -> DatasetMeta:
    """:class:`DatasetMeta` ``custom`` of a folder: ``classes.txt`` (+ ``prompt_names.txt``).

    Raises:
        FileNotFoundError: no ``classes.txt``.
        DatasetCheckError: a bad class list or prompt-name file (every problem named).
    """
    root = Path(root).expanduser()
    class_names = read_class_names(root / "classes.txt")
    prompt_file = root / PROMPT_NAMES_FILE
    prompts = (
        read_prompt_names(prompt_file, len(class_names) - 1)
        if prompt_file.is_file()
        else class_names[1:]
    )
    return DatasetMeta(
        name="custom",
        class_names=class_names,
        clip_fg_names=prompts,
        clip_bg_names=tuple(clip_bg_names) if clip_bg_names is not None else VOC12.clip_bg_names,
        palette=bitwise_palette(),
    )
