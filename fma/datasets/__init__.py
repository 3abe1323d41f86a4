"""Dataset metadata, on-disk layouts and image-level labels."""

from fma.datasets.layout import DatasetLayout, read_split_file
from fma.datasets.meta import COCO14, VOC12, DatasetMeta, get_dataset_meta

__all__ = ["COCO14", "VOC12", "DatasetLayout", "DatasetMeta", "get_dataset_meta", "read_split_file"]
