"""Dataset metadata, on-disk layouts and image-level labels."""

from fma.datasets.labels import (
    image_labels_from_label_map,
    labels_to_multi_hot,
    load_image_labels,
    save_image_labels,
)
from fma.datasets.layout import DatasetLayout, read_split_file
from fma.datasets.meta import COCO14, VOC12, DatasetMeta, get_dataset_meta

__all__ = [
    "COCO14",
    "VOC12",
    "DatasetLayout",
    "DatasetMeta",
    "get_dataset_meta",
    "image_labels_from_label_map",
    "labels_to_multi_hot",
    "load_image_labels",
    "read_split_file",
    "save_image_labels",
]
