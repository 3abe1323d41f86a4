"""Custom image-level label files: CSV or JSON with class names or indices.

A custom dataset (docs/datasets.md) may give its image-level labels as CSV (header
``image_id,labels``, one row per image) or as a plain JSON object ``{image_id: [names or
indices]}``; fma's own JSON format (:mod:`fma.datasets.labels`) is accepted too. The readers
resolve names and indices against the dataset's class names and report every unknown class and
duplicate id in one message naming the file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from fma.datasets.labels import ImageLabelsError, load_image_labels
from fma.datasets.layout import IMAGE_SUFFIXES

__all__ = [
    "parse_class_tokens",
    "read_image_labels",
    "read_image_labels_checked",
    "read_image_labels_csv",
    "read_image_labels_json",
    "split_label_field",
]


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
