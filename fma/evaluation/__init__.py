"""Label evaluation: confusion matrices, mIoU and folder-level evaluation of label PNGs."""

from fma.evaluation.confusion import (
    confusion_matrix,
    format_table,
    metrics_from_confusion,
    per_class_iou,
)
from fma.evaluation.label_eval import (
    ImageScore,
    LabelEvalError,
    LabelEvalResult,
    dataset_label_space,
    evaluate_dataset_split,
    evaluate_label_dir,
    result_summary,
    write_show_panels,
)

__all__ = [
    "ImageScore",
    "LabelEvalError",
    "LabelEvalResult",
    "confusion_matrix",
    "dataset_label_space",
    "evaluate_dataset_split",
    "evaluate_label_dir",
    "format_table",
    "metrics_from_confusion",
    "per_class_iou",
    "result_summary",
    "write_show_panels",
]
