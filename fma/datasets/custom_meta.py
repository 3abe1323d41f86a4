"""The label space of a custom dataset folder (docs/datasets.md, "Custom datasets").

``ROOT/classes.txt`` names the foreground classes (class 1, 2, ...; background is class 0). The
names double as the CLIP prompt names unless the folder has ``ROOT/prompt_names.txt``: one
prompt text per line, in the order of ``classes.txt`` (e.g. ``person with clothes,people,human``
for ``person``, the CLIP-ES trick of method-fma section 3.4). Background prompt names default to
the VOC CLIP-ES list.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fma.datasets.meta import VOC12, DatasetMeta, bitwise_palette
from fma.datasets.prepare import DatasetCheckError, read_class_names

__all__ = ["custom_dataset_meta", "read_prompt_names"]

PROMPT_NAMES_FILE = "prompt_names.txt"


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
