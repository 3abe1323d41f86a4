"""COCO 2014 (81 classes) stage I dataset; same contract as :class:`fma.datasets.voc.ClsDataset`."""

from __future__ import annotations

from fma.datasets.voc import ClsDataset
from fma.registry import DATASETS

__all__ = ["COCOClsDataset"]


@DATASETS.register_module()
class COCOClsDataset(ClsDataset):
    """COCO 2014 object segmentation stage I dataset (``<root>/<split>2014/<id>.jpg``)."""

    DATASET_KEY = "coco14"
