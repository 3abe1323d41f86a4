"""Where a dataset's files live on disk, for the built-in datasets and custom ones.

Layouts (``ROOT`` is the ``--data-root`` argument):

``voc12`` (a ``VOCdevkit/VOC2012`` folder, the standard layout)::

    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png          ground truth (train, val)
    ROOT/SegmentationClassAug/<id>.png       SBD-augmented ground truth (train_aug), optional
    ROOT/ImageSets/Segmentation/<split>.txt  train.txt, val.txt, train_aug.txt (or trainaug.txt)
    ROOT/cls_labels/<split>.json             image-level labels written by tools/prepare_voc.py

``coco14`` (written by tools/prepare_coco.py next to the COCO images)::

    ROOT/<split>2014/<id>.jpg                COCO's own image folders (train2014, val2014;
                                             train2017/val2017 when no <split>2014 exists)
    ROOT/SegmentationClass/<split>/<id>.png  81-class index maps
    ROOT/ImageSets/<split>.txt
    ROOT/cls_labels/<split>.json

``custom`` (see docs/datasets.md, "Custom datasets")::

    ROOT/images/<id>.<jpg|png|...>
    ROOT/classes.txt                         foreground class names, one per line
    ROOT/labels.csv or ROOT/labels.json      image-level labels
    ROOT/ground_truth/<id>.png               optional, only for evaluation
    ROOT/splits/<split>.txt                  optional; without it the split "all" lists every image
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

__all__ = ["DatasetLayout", "read_split_file"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclasses.dataclass(frozen=True)
class DatasetLayout:
    """Paths of one dataset root; ``dataset`` is ``voc12``, ``coco14`` or ``custom``."""

    dataset: str
    root: Path

    @classmethod
    def of(cls, dataset: str, root: str | os.PathLike) -> DatasetLayout:
        key = {"voc": "voc12", "coco": "coco14"}.get(dataset.lower(), dataset.lower())
        if key not in ("voc12", "coco14", "custom"):
            raise KeyError(f"unknown dataset {dataset!r}; expected voc12, coco14 or custom")
        return cls(key, Path(root))

    def split_file(self, split: str) -> Path:
        """List file of ``split``. VOC's ``train_aug`` falls back to ``trainaug.txt``, the name
        mmseg's ``voc_aug.py`` converter gives the 10,582-image list; its ``aug.txt`` is only the
        SBD remainder (without the 1,464 VOC train images) and is never used (see
        :meth:`split_hint`)."""
        if self.dataset == "voc12":
            seg = self.root / "ImageSets" / "Segmentation"
            mmseg = seg / "trainaug.txt"
            if split == "train_aug" and not (seg / "train_aug.txt").is_file() and mmseg.is_file():
                return mmseg
            return seg / f"{split}.txt"
        if self.dataset == "coco14":
            return self.root / "ImageSets" / f"{split}.txt"
        return self.root / "splits" / f"{split}.txt"

    def split_hint(self, split: str) -> str:
        """Advice for a missing split file ("" when there is none to give)."""
        seg = self.root / "ImageSets" / "Segmentation"
        if self.dataset == "voc12" and split == "train_aug" and (seg / "aug.txt").is_file():
            return (
                f"; {seg / 'aug.txt'} is mmseg's SBD-only remainder without the VOC train "
                "images, not the train_aug list: use the trainaug.txt that mmseg's voc_aug.py "
                "writes next to it, or `cat train.txt aug.txt > train_aug.txt`"
            )
        return ""

    def images_dir(self, split: str) -> Path:
        """Image folder of ``split``; COCO uses ``<split>2017`` when ``<split>2014`` is absent."""
        if self.dataset == "voc12":
            return self.root / "JPEGImages"
        if self.dataset == "coco14":
            coco14, coco17 = self.root / f"{split}2014", self.root / f"{split}2017"
            return coco17 if not coco14.is_dir() and coco17.is_dir() else coco14
        return self.root / "images"

    def labels_dir(self, split: str) -> Path:
        """Folder of ground-truth label PNGs named ``<id>.png``."""
        if self.dataset == "voc12":
            aug = self.root / "SegmentationClassAug"
            return aug if split == "train_aug" else self.root / "SegmentationClass"
        if self.dataset == "coco14":
            return self.root / "SegmentationClass" / split
        return self.root / "ground_truth"

    def image_labels_file(self, split: str) -> Path:
        """Image-level label JSON in fma's format (fma.datasets.labels).

        Custom datasets keep their labels as ``labels.csv`` or a plain ``labels.json``; read them
        with ``fma.datasets.custom.load_custom_dataset``, not through this path.
        """
        if self.dataset == "custom":
            raise ValueError(
                "custom datasets have no fma image-label file; use "
                "fma.datasets.custom.load_custom_dataset(root)"
            )
        return self.root / "cls_labels" / f"{split}.json"

    def image_path(self, split: str, image_id: str) -> Path:
        """Path of an image; for custom datasets the first existing suffix wins."""
        folder = self.images_dir(split)
        if self.dataset != "custom":
            return folder / f"{image_id}.jpg"
        for suffix in IMAGE_SUFFIXES:
            for candidate in (suffix, suffix.upper()):
                p = folder / f"{image_id}{candidate}"
                if p.is_file():
                    return p
        return folder / f"{image_id}.jpg"

    def image_ids(self, split: str) -> list[str]:
        """Ids of a split, from its split file; custom datasets without one list ``images/``."""
        path = self.split_file(split)
        if self.dataset == "custom" and split == "all" and not path.is_file():
            folder = self.images_dir(split)
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: image folder not found")
            return sorted(p.stem for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not path.is_file() and self.split_hint(split):
            raise FileNotFoundError(f"{path}: split file not found{self.split_hint(split)}")
        return read_split_file(path)


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Read a split list: one image id per line (blank lines and ``#`` comments ignored).

    Lines such as VOC's ``<id> <something>`` or mmseg's ``JPEGImages/<id>.jpg ...`` keep only the
    stem of the first token.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found; check --data-root and --split")
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        ids.append(Path(line.split()[0]).stem)
    return ids
