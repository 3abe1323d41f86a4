"""Image-level labels: which classes occur in an image.

Stage I of the pipeline trains on image-level labels only. For the built-in datasets they are
derived from the ground-truth label maps (class ``c`` is present iff any pixel has value ``c``;
the ignore value 255 is skipped), as the FMA-WSSS preparation does.

On disk (never a pickle) fma keeps them as one JSON file per split::

    {"format": "image_labels", "version": 1, "dataset": "voc12", "split": "train",
     "class_names": ["background", "aeroplane", ...],
     "labels": {"2007_000032": [1, 15], ...}}

``labels`` maps an image id to its sorted *foreground* class indices (1..C-1); background is
implicit and never listed, an empty list means "background only".

Custom datasets may also give labels as CSV (``image_id,labels``) or as a plain JSON object
``{image_id: [names or indices]}``, read by :mod:`fma.datasets.custom_labels`
(docs/datasets.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fma.io.atomic import write_text_atomic

__all__ = [
    "IMAGE_LABELS_FORMAT",
    "IMAGE_LABELS_VERSION",
    "ImageLabelsError",
    "image_labels_from_label_map",
    "labels_to_multi_hot",
    "load_image_labels",
    "multi_hot_to_labels",
    "save_image_labels",
]

IMAGE_LABELS_FORMAT = "image_labels"
IMAGE_LABELS_VERSION = 1


class ImageLabelsError(ValueError):
    """An image-level label file is unreadable or does not match the expected dataset."""


def image_labels_from_label_map(
    label: np.ndarray, num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """Classes present in a label map.

    Args:
        label: (H, W) integer label map (any integer dtype), values 0..num_classes-1 or
            ``ignore_index``.
        num_classes: number of classes C including background.
        ignore_index: value that marks unlabelled pixels; it is skipped.

    Returns:
        (C,) bool array; entry ``c`` is True iff at least one pixel equals ``c`` (entry 0 is the
        background).

    Raises:
        ValueError: a value is negative or >= num_classes and is not ``ignore_index``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    flat = np.asarray(label).ravel()
    if flat.size and not np.issubdtype(flat.dtype, np.integer):
        raise ValueError(f"label map must hold integers, got dtype {flat.dtype}")
    flat = flat.astype(np.int64, copy=False)
    flat = flat[flat != ignore_index]
    if flat.size == 0:
        return np.zeros(num_classes, dtype=bool)
    lo, hi = int(flat.min()), int(flat.max())
    if lo < 0 or hi >= num_classes:
        bad = np.unique(flat[(flat < 0) | (flat >= num_classes)])[:10].tolist()
        raise ValueError(
            f"label values {bad} are not classes 0..{num_classes - 1} (nor ignore {ignore_index})"
        )
    return np.bincount(flat, minlength=num_classes) > 0


def multi_hot_to_labels(present: np.ndarray) -> list[int]:
    """Sorted foreground indices (>= 1) of a (C,) bool vector, background entry dropped."""
    idx = np.flatnonzero(np.asarray(present, dtype=bool))
    return [int(i) for i in idx if i > 0]


def labels_to_multi_hot(
    labels: dict[str, Sequence[int]], ids: Sequence[str], num_classes: int
) -> np.ndarray:
    """Stack the labels of ``ids`` into a multi-hot matrix.

    Args:
        labels: image id -> foreground class indices (1..C-1).
        ids: image ids, the row order of the result.
        num_classes: C, including background.

    Returns:
        (N, C) bool; column 0 (background) is always False, use ``[:, 1:]`` for the foreground.

    Raises:
        KeyError: an id has no labels.
        ValueError: an index lies outside 1..C-1.
    """
    out = np.zeros((len(ids), num_classes), dtype=bool)
    missing = [i for i in ids if i not in labels]
    if missing:
        raise KeyError(f"no image-level labels for {len(missing)} image(s): {missing[:10]}")
    for row, image_id in enumerate(ids):
        cls = np.asarray(labels[image_id], dtype=np.int64)
        if cls.size and (cls.min() < 1 or cls.max() >= num_classes):
            raise ValueError(
                f"{image_id}: class indices {cls.tolist()} outside 1..{num_classes - 1}"
            )
        out[row, cls] = True
    return out


def _check_indices(
    labels: dict[str, Any], num_classes: int | None, source: str
) -> dict[str, list[int]]:
    """Validate ``{id: [int, ...]}`` and return it with sorted, de-duplicated lists."""
    out: dict[str, list[int]] = {}
    problems: list[str] = []
    for image_id, cls in labels.items():
        if not isinstance(cls, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in cls
        ):
            problems.append(f"{image_id}: expected a list of integers, got {cls!r}")
            continue
        bad = [c for c in cls if c < 1 or (num_classes is not None and c >= num_classes)]
        if bad:
            top = "C-1" if num_classes is None else str(num_classes - 1)
            problems.append(f"{image_id}: class indices {bad} outside 1..{top}")
            continue
        out[str(image_id)] = sorted(set(cls))
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ImageLabelsError(f"{source}: invalid image labels:\n  {shown}{more}")
    return out


def save_image_labels(
    path: str | os.PathLike,
    labels: dict[str, Sequence[int]],
    class_names: Sequence[str],
    dataset: str,
    split: str,
    *,
    producer: dict[str, Any] | None = None,
) -> Path:
    """Write image-level labels in fma's JSON format, atomically.

    Args:
        path: output ``.json`` file; its folder is created.
        labels: image id -> foreground class indices (1..C-1); written sorted, ids sorted.
        class_names: the C class names, ``class_names[0]`` being the background.
        dataset: dataset key (``voc12``, ``coco14``, ``custom``).
        split: split name.
        producer: optional provenance record (see :func:`fma.io.producer_info`).

    Returns:
        The path written.

    Raises:
        ValueError: an index lies outside 1..C-1.
    """
    path = Path(path)
    checked = _check_indices(
        {k: [int(c) for c in v] for k, v in labels.items()}, len(class_names), str(path)
    )
    obj: dict[str, Any] = {
        "format": IMAGE_LABELS_FORMAT,
        "version": IMAGE_LABELS_VERSION,
        "dataset": dataset,
        "split": split,
        "class_names": list(class_names),
        "labels": {k: checked[k] for k in sorted(checked)},
    }
    if producer is not None:
        obj["producer"] = producer
    # One image per line keeps the file small and diff-able.
    head = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items() if k != "labels"]
    rows = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in obj["labels"].items()]
    block = '  "labels": {' + ("\n" + ",\n".join(rows) + "\n  }" if rows else "}")
    write_text_atomic(path, "{\n" + ",\n".join([*head, block]) + "\n}\n")
    return path


def load_image_labels(
    path: str | os.PathLike, *, dataset: str | None = None, num_classes: int | None = None
) -> dict[str, list[int]]:
    """Read an fma image-label JSON file.

    Args:
        path: file written by :func:`save_image_labels` (or by ``tools/prepare_*.py``).
        dataset: when given, the file's ``dataset`` must equal it.
        num_classes: when given, the file must have this many class names and every index must
            be < num_classes.

    Returns:
        image id -> sorted foreground class indices.

    Raises:
        FileNotFoundError: the file does not exist.
        ImageLabelsError: bad JSON, wrong format or version, dataset or class-count mismatch,
            an index out of range; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: image-level label file not found; create it with tools/prepare_voc.py or "
            "tools/prepare_coco.py"
        )
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageLabelsError(f"{path}: not valid JSON ({exc}); re-create the file") from exc
    if not isinstance(obj, dict) or obj.get("format") != IMAGE_LABELS_FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ImageLabelsError(
            f"{path}: not an fma image-label file (format {found!r}, expected "
            f"{IMAGE_LABELS_FORMAT!r}); custom label files are read with "
            "fma.datasets.custom_labels.read_image_labels"
        )
    if obj.get("version") != IMAGE_LABELS_VERSION:
        raise ImageLabelsError(
            f"{path}: image-label format version {obj.get('version')!r}, this fma reads "
            f"version {IMAGE_LABELS_VERSION}; re-create the file with this fma"
        )
    if dataset is not None and obj.get("dataset") != dataset:
        raise ImageLabelsError(
            f"{path}: labels are for dataset {obj.get('dataset')!r}, expected {dataset!r}; "
            "point to the right file"
        )
    names = obj.get("class_names")
    if not isinstance(names, list):
        raise ImageLabelsError(f"{path}: 'class_names' missing or not a list")
    if num_classes is not None and len(names) != num_classes:
        raise ImageLabelsError(
            f"{path}: file has {len(names)} classes, expected {num_classes}; wrong dataset?"
        )
    labels = obj.get("labels")
    if not isinstance(labels, dict):
        raise ImageLabelsError(f"{path}: 'labels' missing or not an object")
    return _check_indices(labels, len(names), str(path))
