"""Stage I dataset: images + image-level labels (+ seed maps for the segmentation task).

:class:`ClsDataset` reads a dataset root through :class:`fma.datasets.layout.DatasetLayout`
(split list, image paths) and fma's image-label JSON (:mod:`fma.datasets.labels`); the VOC and
COCO classes only fix the dataset key. Relative ``label_file`` / ``seed_dir`` / ``done_dir``
paths are taken as given (relative to the working directory, e.g. ``work_dirs/...``), not
joined with ``data_root``.

Each data item: ``img_id``, ``img_path``, ``gt_labels`` (foreground class ids), optionally
``seed_path`` (``<seed_dir>/<id>.png``) and ``gt_path`` (ground-truth PNG, monitoring only).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmengine.dataset import BaseDataset

from fma.datasets.custom import custom_dataset_meta
from fma.datasets.labels import load_image_labels
from fma.datasets.layout import DatasetLayout
from fma.datasets.meta import get_dataset_meta
from fma.registry import DATASETS

__all__ = ["ClsDataset", "CustomClsDataset", "VOCClsDataset"]


class ClsDataset(BaseDataset):
    """Images with image-level labels for prompt training and CAM inference.

    Args:
        data_root: dataset root (layout of ``fma.datasets.layout``).
        split: split name (``train_aug``, ``train``, ``val``, ...).
        label_file: image-label JSON; default ``<data_root>/cls_labels/<split>.json``.
        seed_dir: folder of seed PNGs ``<id>.png`` (segmentation task); None = no seeds.
        with_gt: add ``gt_path`` (ground-truth label PNG) for CAM mIoU monitoring.
        done_dir: skip images whose ``<done_dir>/<id>.npz`` exists (resume CAM inference).
        pipeline: transforms (configs or callables).
        test_mode: mmengine's test mode flag.
        indices: keep only these indices (mmengine), e.g. a few images for a quick run.
        dataset: dataset key (set by the subclasses).
    """

    DATASET_KEY = "voc12"

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        label_file: str | None = None,
        seed_dir: str | None = None,
        with_gt: bool = False,
        done_dir: str | None = None,
        pipeline: Sequence[Any] = (),
        test_mode: bool = False,
        indices: int | Sequence[int] | None = None,
        dataset: str | None = None,
        **kwargs: Any,
    ) -> None:
        key = dataset or self.DATASET_KEY
        self.layout = DatasetLayout.of(key, data_root)
        custom = self.layout.dataset == "custom"
        self.meta = custom_dataset_meta(data_root) if custom else get_dataset_meta(key)
        self.split = split
        if label_file:
            self.label_file: Path | None = Path(label_file)
        else:  # custom folders keep their own labels.csv / labels.json
            self.label_file = None if custom else self.layout.image_labels_file(split)
        self.seed_dir = Path(seed_dir) if seed_dir else None
        self.with_gt = with_gt
        self.done_dir = Path(done_dir) if done_dir else None
        if self.seed_dir is not None and not self.seed_dir.is_dir():
            raise FileNotFoundError(
                f"{self.seed_dir}: seed folder not found; run tools/make_seeds.py first"
            )
        metainfo = {"classes": self.meta.class_names, "dataset": self.meta.name, "split": split}
        super().__init__(
            data_root=os.fspath(data_root),
            metainfo=metainfo,
            pipeline=list(pipeline),
            test_mode=test_mode,
            indices=indices,
            **kwargs,
        )

    def _images_and_labels(self) -> tuple[list[str], dict[str, Path], dict[str, Any]]:
        """(ids, image paths, image-level labels) of the split."""
        if self.layout.dataset == "custom" and self.label_file is None:
            from fma.datasets.custom import load_custom_dataset

            ds = load_custom_dataset(self.layout.root, self.split)
            paths = dict(zip(ds.image_ids, ds.image_paths, strict=True))
            return ds.image_ids, paths, ds.labels
        ids = self.layout.image_ids(self.split)
        labels = load_image_labels(
            self.label_file, dataset=self.meta.name, num_classes=self.meta.num_classes
        )
        missing = [i for i in ids if i not in labels]
        if missing:
            raise ValueError(
                f"{self.label_file}: no image-level labels for {len(missing)} images of split "
                f"{self.split!r} (e.g. {missing[:3]}); re-create the label file"
            )
        return ids, {i: self.layout.image_path(self.split, i) for i in ids}, labels

    def load_data_list(self) -> list[dict[str, Any]]:
        """Read the split list and the image labels; see the module docstring."""
        ids, paths, labels = self._images_and_labels()
        gt_dir = self.layout.labels_dir(self.split)
        out = []
        for img_id in ids:
            if self.done_dir is not None and (self.done_dir / f"{img_id}.npz").is_file():
                continue
            item: dict[str, Any] = {
                "img_id": img_id,
                "img_path": str(paths[img_id]),
                "gt_labels": list(labels[img_id]),
            }
            if self.seed_dir is not None:
                item["seed_path"] = str(self.seed_dir / f"{img_id}.png")
            if self.with_gt and (self.layout.dataset != "custom" or gt_dir.is_dir()):
                item["gt_path"] = str(gt_dir / f"{img_id}.png")
            out.append(item)
        return out


@DATASETS.register_module()
class VOCClsDataset(ClsDataset):
    """PASCAL VOC 2012 (21 classes) stage I dataset; see :class:`ClsDataset`."""

    DATASET_KEY = "voc12"


@DATASETS.register_module()
class CustomClsDataset(ClsDataset):
    """A custom dataset folder (docs/datasets.md, "Custom datasets"); see :class:`ClsDataset`.

    Images, labels (``labels.csv`` / ``labels.json``) and the split come from
    :func:`fma.datasets.custom.load_custom_dataset`, which checks the folder first; classes
    and prompt names from :func:`fma.datasets.custom.custom_dataset_meta`. ``split='all'``
    without ``splits/all.txt`` is every image; ``with_gt`` adds ``ground_truth/<id>.png`` only
    when the folder has ``ground_truth/``.
    """

    DATASET_KEY = "custom"

    def __init__(self, data_root: str, split: str = "all", **kwargs: Any) -> None:
        super().__init__(data_root, split, **kwargs)
