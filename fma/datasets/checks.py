"""Checks shared by the dataset preparation modules, and the one ``classes.txt`` reader.

* :class:`DatasetCheckError`: every problem of a dataset folder, each naming its file.
* :func:`check_image_file`: an image exists and decodes completely.
* :func:`format_class_table`: images per split and per class.
* :func:`read_class_names`: a custom dataset's ``classes.txt`` (strict: no ``background``, no
  duplicates, a BOM is dropped); :func:`dataset_label_space`: class names and palette of any
  dataset key (built-in or ``custom``), used by seeding, refinement and evaluation alike.

The per-dataset preparation lives in :mod:`fma.datasets.prepare_voc`,
:mod:`fma.datasets.prepare_coco` and :mod:`fma.datasets.custom`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fma.datasets.layout import DatasetLayout
from fma.datasets.meta import get_dataset_meta
from fma.io.label_maps import bitwise_palette

__all__ = [
    "DatasetCheckError",
    "check_image_file",
    "dataset_label_space",
    "format_class_table",
    "read_class_names",
]

MAX_LISTED = 200  # problems shown in an exception message; all are kept in ``.problems``


class DatasetCheckError(ValueError):
    """A dataset folder has problems; ``problems`` lists every one, each naming its file."""

    def __init__(self, what: str, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:MAX_LISTED])
        more = len(self.problems) - MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{what}: {len(self.problems)} problem(s):\n  {shown}{tail}")


def check_image_file(path: str | os.PathLike) -> tuple[tuple[int, int] | None, str | None]:
    """Check that an image file exists and decodes completely.

    JPEGs are decoded at 1/8 scale (``Image.draft``), which still reads every byte, so truncated
    or corrupt files are caught at about half the cost of a full decode.

    Returns:
        ((height, width), None) when readable, else (None, "<path>: <reason>").
    """
    path = Path(path)
    if not path.is_file():
        return None, f"{path}: missing image"
    try:
        with Image.open(path) as img:
            size = (img.height, img.width)
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        return None, f"{path}: unreadable image ({exc})"
    return size, None


def format_class_table(
    class_names: Sequence[str], counts: dict[str, np.ndarray], images: dict[str, int]
) -> str:
    """Plain-text table: number of images per split and, per class, images containing it.

    Args:
        class_names: C names.
        counts: split -> (C,) int, images in which each class occurs.
        images: split -> number of images.
    """
    w = {s: max(8, len(s)) for s in counts}
    width = max(len(n) for n in class_names)
    lines = ["class".ljust(width) + "".join(f"  {s:>{w[s]}}" for s in counts)]
    lines.append("-" * len(lines[0]))
    lines.append("images".ljust(width) + "".join(f"  {images[s]:>{w[s]}}" for s in counts))
    for c, name in enumerate(class_names):
        lines.append(name.ljust(width) + "".join(f"  {int(counts[s][c]):>{w[s]}}" for s in counts))
    return "\n".join(lines)


def read_class_names(path: str | os.PathLike) -> tuple[str, ...]:
    """Read ``classes.txt``: foreground class names, one per line, in index order 1..C-1.

    Blank lines and lines starting with ``#`` are skipped; names are stripped. ``background`` is
    class 0 implicitly and must not be listed.

    Returns:
        (C,) names with ``"background"`` prepended.

    Raises:
        FileNotFoundError: no such file.
        DatasetCheckError: no names, duplicates, ``background`` listed, or a ``;`` in a name.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: class list not found; write the foreground class names one per line"
        )
    names: list[str] = []
    problems = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if name.lower() == "background":
            problems.append(f"line {lineno}: 'background' is class 0 implicitly; remove the line")
        elif ";" in name:
            problems.append(
                f"line {lineno}: class name {name!r} contains ';' (the label separator)"
            )
        elif name in names:
            problems.append(f"line {lineno}: class {name!r} listed twice")
        else:
            names.append(name)
    if not names and not problems:
        problems.append("no class names")
    if problems:
        raise DatasetCheckError(str(path), problems)
    return ("background", *names)


def dataset_label_space(dataset: str, data_root: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Class names (index order, ``background`` first) and (256, 3) uint8 palette of a dataset.

    Built-in datasets use :func:`fma.datasets.meta.get_dataset_meta`; ``custom`` reads the
    foreground names from ``ROOT/classes.txt`` with :func:`read_class_names` and uses the
    bitwise VOC palette.
    """
    layout = DatasetLayout.of(dataset, data_root)
    if layout.dataset == "custom":
        return list(read_class_names(layout.root / "classes.txt")), bitwise_palette()
    meta = get_dataset_meta(layout.dataset)
    return list(meta.class_names), meta.palette
