"""Image-level labels: which classes occur in an image.

Size (~510 lines): one job, the label readers/writers and their per-line checks.

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
``{image_id: [names or indices]}``; see :func:`read_image_labels` and docs/datasets.md.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fma.datasets.layout import IMAGE_SUFFIXES
from fma.io.atomic import write_text_atomic

__all__ = [
    "IMAGE_LABELS_FORMAT",
    "IMAGE_LABELS_VERSION",
    "ImageLabelsError",
    "image_labels_from_label_map",
    "labels_to_multi_hot",
    "load_image_labels",
    "multi_hot_to_labels",
    "parse_class_tokens",
    "read_image_labels",
    "read_image_labels_checked",
    "read_image_labels_csv",
    "read_image_labels_json",
    "save_image_labels",
    "split_label_field",
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
            "fma.datasets.labels.read_image_labels"
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


# ---------------------------------------------------------------------------------------------
# Custom label files (CSV or JSON with class names or indices).


def split_label_field(field: str, class_names: Sequence[str] = ()) -> list[str]:
    """Split the ``labels`` field of a CSV row into tokens.

    Rules, in order: a field that contains ``;`` is split on ``;`` only (so class names may hold
    spaces); a field that equals one of ``class_names`` (after stripping) is that one name;
    otherwise the field is split on whitespace. Tokens are stripped, empty ones dropped.

    >>> split_label_field("dog;dining table")
    ['dog', 'dining table']
    >>> split_label_field("dining table", ["background", "dining table"])
    ['dining table']
    >>> split_label_field("dog cat")
    ['dog', 'cat']
    """
    if ";" in field:
        parts = field.split(";")
    elif field.strip() in class_names:
        parts = [field]
    else:
        parts = field.split()
    return [p.strip() for p in parts if p.strip()]


def parse_class_tokens(
    tokens: Iterable[str | int], class_names: Sequence[str]
) -> tuple[list[int], list[str]]:
    """Resolve class names or indices to foreground indices.

    A token that equals a class name (exactly, case-sensitive) is that class; otherwise a token of
    decimal digits (or an int) is an index. ``background`` (name or index 0) is accepted and
    dropped, since background is implicit.

    Args:
        tokens: names, digit strings or ints.
        class_names: C names, ``[0]`` = background.

    Returns:
        (sorted unique foreground indices, tokens that are neither a name nor a valid index).
    """
    index = {name: i for i, name in enumerate(class_names)}
    found: set[int] = set()
    unknown: list[str] = []
    for tok in tokens:
        if isinstance(tok, bool):
            unknown.append(str(tok))
            continue
        if isinstance(tok, int):
            i = tok
        elif isinstance(tok, str) and tok in index:
            i = index[tok]
        elif isinstance(tok, str) and tok.isdigit():
            i = int(tok)
        else:
            unknown.append(str(tok))
            continue
        if 0 <= i < len(class_names):
            if i > 0:
                found.add(i)
        else:
            unknown.append(str(tok))
    return sorted(found), unknown


def _image_id(raw: str) -> str:
    """An image id from a custom label file: a known image suffix is stripped ("a.jpg" -> "a")."""
    raw = raw.strip()
    p = Path(raw)
    return p.stem if p.suffix.lower() in IMAGE_SUFFIXES else raw


def _finish(
    rows: list[tuple[str, list[str | int]]], class_names: Sequence[str]
) -> tuple[dict[str, list[int]], list[str]]:
    """Resolve tokens of all rows; return the labels and one problem line per unknown class and
    per duplicate id."""
    out: dict[str, list[int]] = {}
    unknown: dict[str, list[str]] = {}
    dups: list[str] = []
    for image_id, tokens in rows:
        if image_id in out:
            dups.append(image_id)
            continue
        cls, bad = parse_class_tokens(tokens, class_names)
        for tok in bad:
            unknown.setdefault(tok, []).append(image_id)
        out[image_id] = cls
    problems = []
    for tok, ids in unknown.items():
        where = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        problems.append(f"unknown class {tok!r} (images: {where})")
    problems += [f"image {i!r} listed more than once" for i in dups]
    return out, problems


def _raise_problems(problems: list[str], class_names: Sequence[str], source: str) -> None:
    if problems:
        known = ", ".join(class_names[1:])
        raise ImageLabelsError(
            f"{source}: {len(problems)} problem(s):\n  "
            + "\n  ".join(problems)
            + f"\nknown classes (index 1..{len(class_names) - 1}): {known}"
        )


def read_image_labels_csv(
    path: str | os.PathLike, class_names: Sequence[str]
) -> dict[str, list[int]]:
    """Read a custom CSV label file.

    Format: a header row ``image_id,labels``, then one row per image. ``image_id`` is the image
    file name without its extension (a known image extension is stripped). ``labels`` holds class
    names or indices split as :func:`split_label_field` describes; it may be empty (background
    only). Quote the field when it contains a comma. Blank lines are skipped.

    Args:
        path: the ``.csv`` file (UTF-8, a byte-order mark is accepted).
        class_names: C names, ``[0]`` = background.

    Returns:
        image id -> sorted foreground indices.

    Raises:
        ImageLabelsError: bad header, a row without exactly two fields, unknown classes or
            duplicate ids (all listed in one message naming the file).
    """
    labels, problems = _read_csv(Path(path), class_names)
    _raise_problems(problems, class_names, str(path))
    return labels


def read_image_labels_json(
    path: str | os.PathLike, class_names: Sequence[str]
) -> dict[str, list[int]]:
    """Read a custom JSON label file: fma's format or a plain ``{image_id: [names or indices]}``.

    In the plain form a value may also be one string, split like a CSV ``labels`` field. In fma's
    format (``"format": "image_labels"``) the file's ``class_names`` must equal ``class_names``.

    Raises:
        ImageLabelsError: bad JSON, class-name mismatch, unknown classes or duplicate ids (all
            listed in one message naming the file).
    """
    labels, problems = _read_json(Path(path), class_names)
    _raise_problems(problems, class_names, str(path))
    return labels


def read_image_labels_checked(
    path: str | os.PathLike, class_names: Sequence[str]
) -> tuple[dict[str, list[int]], list[str]]:
    """Like :func:`read_image_labels`, but return unknown-class and duplicate-id problems.

    Structural errors (unreadable file, bad header, malformed rows) still raise
    :class:`ImageLabelsError`; the returned labels omit duplicate rows and unknown tokens.

    Returns:
        (image id -> sorted foreground indices, problem lines, each naming the class or image).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, class_names)
    if suffix == ".json":
        return _read_json(path, class_names)
    raise ImageLabelsError(f"{path}: unknown label file type {suffix!r}; use .csv or .json")


def read_image_labels(path: str | os.PathLike, class_names: Sequence[str]) -> dict[str, list[int]]:
    """Read a custom label file, ``.csv`` or ``.json`` by suffix (see the two readers).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageLabelsError: any problem, all listed in one message naming the file.
    """
    labels, problems = read_image_labels_checked(path, class_names)
    _raise_problems(problems, class_names, str(path))
    return labels


def _read_csv(path: Path, class_names: Sequence[str]) -> tuple[dict[str, list[int]], list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageLabelsError(f"{path}: cannot read ({exc})") from exc
    rows: list[tuple[str, list[str | int]]] = []
    header_seen = False
    bad_rows: list[str] = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if not header_seen:
            if [c.strip().lower() for c in row] != ["image_id", "labels"]:
                raise ImageLabelsError(
                    f"{path}: first row must be the header 'image_id,labels', got {row!r}"
                )
            header_seen = True
            continue
        if len(row) != 2 or not row[0].strip():
            bad_rows.append(f"line {lineno}: expected 'image_id,labels', got {row!r}")
            continue
        rows.append((_image_id(row[0]), list(split_label_field(row[1], class_names))))
    if not header_seen:
        raise ImageLabelsError(f"{path}: empty file; expected the header 'image_id,labels'")
    if bad_rows:
        raise ImageLabelsError(
            f"{path}: malformed rows (quote a labels field that holds a comma):\n  "
            + "\n  ".join(bad_rows)
        )
    return _finish(rows, class_names)


def _read_json(path: Path, class_names: Sequence[str]) -> tuple[dict[str, list[int]], list[str]]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageLabelsError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(obj, dict) and isinstance(obj.get("format"), str):
        labels = load_image_labels(path, num_classes=len(class_names))
        if list(obj["class_names"]) != list(class_names):
            raise ImageLabelsError(
                f"{path}: class_names {obj['class_names']} differ from the dataset's "
                f"{list(class_names)}"
            )
        return labels, []
    if not isinstance(obj, dict):
        raise ImageLabelsError(
            f"{path}: expected a JSON object {{image_id: [class names or indices]}}, "
            f"got {type(obj).__name__}"
        )
    rows: list[tuple[str, list[str | int]]] = []
    bad: list[str] = []
    for key, value in obj.items():
        if isinstance(value, str):
            value = split_label_field(value, class_names)
        if not isinstance(value, list):
            bad.append(f"{key!r}: expected a list of class names or indices, got {value!r}")
            continue
        rows.append((_image_id(key), value))
    if bad:
        raise ImageLabelsError(f"{path}: malformed entries:\n  " + "\n  ".join(bad))
    return _finish(rows, class_names)
