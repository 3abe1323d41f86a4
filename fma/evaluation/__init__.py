"""Label evaluation math: confusion matrices, IoU/mIoU and their table.

The folder-level evaluation of label PNGs (a stage run) lives in :mod:`fma.apis.evaluate`.
"""

from fma.evaluation.confusion import (
    confusion_matrix,
    format_table,
    metrics_from_confusion,
    per_class_iou,
)

__all__ = [
    "confusion_matrix",
    "format_table",
    "metrics_from_confusion",
    "per_class_iou",
]
