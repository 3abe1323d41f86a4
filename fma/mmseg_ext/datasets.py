"""Stage II datasets for mmseg: VOC 2012, COCO 2014 and custom folders with seed labels.

All read the layouts of :mod:`fma.datasets.layout` (the ones ``tools/prepare_voc.py`` and
``tools/prepare_coco.py`` check or write) and take the training labels from any seed folder:

* ``split`` picks the image list (``train_aug``, ``train``, ``val``, ``test``) the same way stage I
  does, so every stage trains on the same ids.
* ``seed_dir`` replaces the ground-truth folder with a folder of ``<id>.png`` label maps (seeds,
  pseudo labels). It is used as given: an absolute path, or a path relative to the current
  directory (the repository root when the tools run from there, as ``work_dirs/`` is). It is
  never joined under ``data_root``, which mmengine does silently with ``data_prefix`` entries.
* ``with_labels=False`` lists images only (the VOC test set, which has no ground truth).

:class:`CustomSeedDataset` takes its classes from the folder's ``classes.txt`` (background first,
the VOC colour map extended to any class count) and its images from ``images/`` with any of the
accepted suffixes; ``split='all'`` without ``splits/all.txt`` lists every image.

Each dataset's metainfo names its key (``dataset``: ``voc12``, ``coco14``, ``custom``), which the
evaluator records (:mod:`fma.mmseg_ext.classes` reads the classes from a loader's config).

Every listed image and label file is checked when the dataset is built; a missing file stops
the run before the first iteration with the folder, the count and the first ids.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from fma.datasets.custom import custom_dataset_meta
from fma.datasets.layout import DatasetLayout, read_split_file
from fma.datasets.meta import COCO14, VOC12, DatasetMeta

__all__ = [
    "COCOObjectDataset",
    "CustomSeedDataset",
    "VOCSeedDataset",
    "resolve_seed_dir",
]

MAX_LISTED = 10  # ids named in a missing-file error


def resolve_seed_dir(seed_dir: str | os.PathLike) -> Path:
    """Absolute path of a seed folder given absolute or relative to the current directory.

    Raises:
        FileNotFoundError: the folder does not exist; the message shows how it was resolved.
    """
    path = Path(seed_dir).expanduser()
    resolved = path if path.is_absolute() else Path.cwd() / path
    if not resolved.is_dir():
        raise FileNotFoundError(
            f"seed folder {resolved} not found (seed_dir={str(seed_dir)!r}, relative paths are "
            f"taken from the current directory {Path.cwd()}). Write the seeds first "
            "(tools/make_seeds.py or tools/refine_labels.py) or point seed_dir at your label PNGs."
        )
    return resolved


def _metainfo(meta: DatasetMeta) -> dict[str, Any]:
    return dict(
        classes=tuple(meta.class_names),
        palette=[[int(c) for c in rgb] for rgb in meta.palette[: meta.num_classes]],
        dataset=meta.name,
    )


def custom_metainfo(data_root: str | os.PathLike) -> dict[str, Any]:
    """mmseg metainfo of a custom folder: its label space
    (:func:`fma.datasets.custom.custom_dataset_meta`, ``background`` first) and its key
    (``dataset='custom'``).

    Raises:
        FileNotFoundError / fma.datasets.checks.DatasetCheckError: a missing or bad
            ``classes.txt`` (or ``prompt_names.txt``).
        ValueError: more than 256 classes.
    """
    meta = custom_dataset_meta(Path(data_root).expanduser())
    if meta.num_classes > 256:
        raise ValueError(f"{data_root}: {meta.num_classes} classes; label PNGs hold at most 256")
    return _metainfo(meta)


def _missing_error(folder: str, what: str, missing: list[str], total: int) -> FileNotFoundError:
    shown = ", ".join(missing[:MAX_LISTED]) + (" ..." if len(missing) > MAX_LISTED else "")
    return FileNotFoundError(
        f"{folder}: {len(missing)} of {total} {what} missing ({shown}). Every id of the split "
        "needs one; re-run the stage that writes them, or fix the split file."
    )


class _LayoutSegDataset(BaseSegDataset):
    """A :class:`BaseSegDataset` whose paths come from an fma dataset layout and a seed folder."""

    DATASET = ""  # key of fma.datasets.layout.DatasetLayout

    def __init__(
        self,
        split: str,
        data_root: str = "",
        seed_dir: str | os.PathLike | None = None,
        with_labels: bool = True,
        **kwargs: Any,
    ) -> None:
        layout = DatasetLayout.of(self.DATASET, Path(data_root).expanduser().resolve())
        self.layout = layout
        self.split = split
        self.seed_dir = str(resolve_seed_dir(seed_dir)) if seed_dir is not None else None
        self.with_labels = with_labels
        labels = self.seed_dir or str(layout.labels_dir(split))
        prefix = dict(img_path=str(layout.images_dir(split)))
        if with_labels:
            prefix["seg_map_path"] = labels
        kwargs.setdefault("img_suffix", ".jpg")
        kwargs.setdefault("seg_map_suffix", ".png")
        kwargs.setdefault("reduce_zero_label", False)
        super().__init__(
            ann_file=str(layout.split_file(split)),
            data_root=str(layout.root),
            data_prefix=prefix,
            **kwargs,
        )

    def _image_ids(self) -> list[str]:
        return read_split_file(self.ann_file)

    def _image_path(self, image_id: str) -> Path:
        return Path(self.data_prefix["img_path"]) / f"{image_id}{self.img_suffix}"

    def load_data_list(self) -> list[dict]:
        """One record per id of the split file, after checking that every file exists."""
        ids = self._image_ids()
        img_dir = Path(self.data_prefix["img_path"])
        seg_dir = self.data_prefix.get("seg_map_path")
        imgs = [self._image_path(i) for i in ids]
        missing = [i for i, p in zip(ids, imgs, strict=True) if not p.is_file()]
        if missing:
            raise _missing_error(str(img_dir), "images", missing, len(ids))
        records = [
            dict(
                img_path=str(p),
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[],
            )
            for p in imgs
        ]
        if seg_dir is not None:
            segs = [Path(seg_dir) / f"{i}{self.seg_map_suffix}" for i in ids]
            missing = [i for i, p in zip(ids, segs, strict=True) if not p.is_file()]
            if missing:
                raise _missing_error(str(seg_dir), "label maps", missing, len(ids))
            for record, p in zip(records, segs, strict=True):
                record["seg_map_path"] = str(p)
        return records


@DATASETS.register_module()
class VOCSeedDataset(_LayoutSegDataset):
    """PASCAL VOC 2012 (21 classes) in the ``VOCdevkit/VOC2012`` layout, labels from ``seed_dir``.

    ``split='train_aug'`` is the 10,582-image list (``train_aug.txt``, or mmseg's
    ``trainaug.txt``); ``split='val'`` evaluates on ``SegmentationClass`` ground truth.
    """

    DATASET = "voc12"
    METAINFO = _metainfo(VOC12)


@DATASETS.register_module()
class COCOObjectDataset(_LayoutSegDataset):
    """COCO 2014 object segmentation (81 classes, 0 = background) in the layout written by
    ``tools/prepare_coco.py``: ``<split>2014/``, ``SegmentationClass/<split>/``,
    ``ImageSets/<split>.txt``."""

    DATASET = "coco14"
    METAINFO = _metainfo(COCO14)


@DATASETS.register_module()
class CustomSeedDataset(_LayoutSegDataset):
    """A custom dataset folder (docs/datasets.md, "Custom datasets"), labels from ``seed_dir``.

    ``images/<id>.<jpg|png|...>``, ``classes.txt`` (the classes, background first implicitly),
    ``ground_truth/<id>.png`` (validation labels, optional), ``splits/<split>.txt`` (optional;
    ``split='all'`` without it is every image). Training reads the seeds (``seed_dir``);
    validation reads ``ground_truth/``.
    """

    DATASET = "custom"
    # The classes come from the folder (custom_metainfo).
    METAINFO: ClassVar[dict] = dict(dataset="custom")

    def __init__(self, split: str = "all", data_root: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("metainfo", custom_metainfo(data_root))
        super().__init__(split, data_root, **kwargs)

    def _image_ids(self) -> list[str]:
        return self.layout.image_ids(self.split)

    def _image_path(self, image_id: str) -> Path:
        return self.layout.image_path(self.split, image_id)
