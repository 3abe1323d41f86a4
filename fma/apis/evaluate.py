"""Evaluate a folder of label PNGs (seeds, pseudo labels, predictions) against ground truth.

Size (~410 lines): one job, the folder evaluation with its checks, result types and panels.

One confusion matrix is accumulated over the whole split (method-fma section 10.1), so the mIoU
is the dataset-level one, not a mean of per-image scores. Every per-file problem (missing,
corrupt, wrong size, wrong values) is collected first and reported together in one
:class:`LabelEvalError`, one line per file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fma.datasets.checks import DatasetCheckError, dataset_label_space
from fma.datasets.layout import DatasetLayout
from fma.evaluation.confusion import confusion_matrix, metrics_from_confusion, per_class_iou
from fma.io.label_maps import LabelMapError, read_label_map
from fma.version import __version__

__all__ = [
    "ImageScore",
    "LabelEvalError",
    "LabelEvalResult",
    "dataset_label_space",
    "evaluate_dataset_split",
    "evaluate_label_dir",
    "result_summary",
    "write_show_panels",
]

MAX_LISTED_MISSING = 20  # missing ids named in an error message
MAX_LISTED_PROBLEMS = 100  # per-file problem lines in an error message


class LabelEvalError(ValueError):
    """Evaluation cannot run: missing, unreadable or mismatching files.

    Attributes:
        problems: one line per bad file (or folder).
        missing: ids whose prediction file is missing.
    """

    def __init__(self, message: str, problems: Sequence[str] = (), missing: Sequence[str] = ()):
        super().__init__(message)
        self.problems = list(problems)
        self.missing = list(missing)


@dataclasses.dataclass
class ImageScore:
    """Scores of one image, from its own confusion matrix.

    Attributes:
        image_id: the image id.
        miou: mean IoU (percent) over the classes present in its GT or prediction; None when
            the image has no non-ignored ground-truth pixel and no predicted class.
        iou: (C,) float64 per-class IoU in percent, NaN for classes absent from both.
        acc: pixel accuracy (percent) over its non-ignored ground-truth pixels; None when
            there are none.
    """

    image_id: str
    miou: float | None
    iou: np.ndarray
    acc: float | None = None

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        vals = [None if np.isnan(v) else float(v) for v in self.iou]
        iou: Any = dict(zip(class_names, vals, strict=True)) if class_names is not None else vals
        return {"id": self.image_id, "mIoU": self.miou, "aAcc": self.acc, "IoU": iou}


@dataclasses.dataclass
class LabelEvalResult:
    """Outcome of :func:`evaluate_label_dir`.

    Attributes:
        metrics: :func:`fma.evaluation.confusion.metrics_from_confusion` of the whole split.
        confusion: (C, C + 1) int64 accumulated confusion matrix.
        n_images: number of images evaluated.
        n_missing: number of ids whose prediction is missing (skipped with allow_missing).
        missing: those ids.
        per_image: per-image scores in id order when requested, else None.
    """

    metrics: dict[str, Any]
    confusion: np.ndarray
    n_images: int
    n_missing: int = 0
    missing: list[str] = dataclasses.field(default_factory=list)
    per_image: list[ImageScore] | None = None

    @property
    def miou(self) -> float | None:
        """Dataset-level mIoU in percent."""
        return self.metrics["mIoU"]


@dataclasses.dataclass
class _Outcome:
    image_id: str
    cm: np.ndarray | None = None
    missing: bool = False
    problem: str | None = None


def _describe(path: Path, exc: BaseException) -> str:
    text = str(exc)
    return text if str(path) in text else f"{path}: {text}"


def _evaluate_one(
    image_id: str,
    pred_dir: Path,
    gt_dir: Path,
    num_classes: int,
    ignore_index: int,
    palette: np.ndarray | None,
) -> _Outcome:
    pred_path = pred_dir / f"{image_id}.png"
    gt_path = gt_dir / f"{image_id}.png"
    if not pred_path.is_file():
        return _Outcome(image_id, missing=True)
    if not gt_path.is_file():
        return _Outcome(image_id, problem=f"{gt_path}: ground-truth label map not found")
    labels = []
    for path in (pred_path, gt_path):
        try:
            labels.append(
                read_label_map(
                    path, num_classes=num_classes, ignore_index=ignore_index, palette=palette
                )
            )
        except (LabelMapError, OSError, ValueError) as exc:
            return _Outcome(image_id, problem=_describe(path, exc))
    pred, gt = labels
    if pred.shape != gt.shape:
        return _Outcome(
            image_id,
            problem=(
                f"{pred_path}: prediction size {pred.shape[1]}x{pred.shape[0]} (WxH) differs from "
                f"ground truth {gt_path} size {gt.shape[1]}x{gt.shape[0]}"
            ),
        )
    try:
        cm = confusion_matrix(pred, gt, num_classes, ignore_index)
    except ValueError as exc:
        return _Outcome(image_id, problem=f"{pred_path}: {exc}")
    return _Outcome(image_id, cm=cm)


def _progress(it: Iterator[_Outcome], total: int, enabled: bool) -> Iterator[_Outcome]:
    if not enabled:
        return it
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    return iter(tqdm(it, total=total, desc="eval labels", unit="img", leave=False))


def _imap(fn: Callable[[str], _Outcome], ids: Sequence[str], workers: int) -> Iterator[_Outcome]:
    """Map ``fn`` over ``ids`` in order, keeping a bounded number of tasks in flight.

    Threads, not :func:`fma.stage.map_per_image`: the work is PNG decoding (which releases the
    GIL) and each result is folded into one confusion matrix as it arrives, whereas
    ``map_per_image`` keeps every per-image value and spawns processes that re-import the
    package; on COCO's 40k val images that would cost gigabytes for no speed-up.
    """
    if workers <= 1:
        yield from map(fn, ids)
        return
    chunk = 64 * workers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(ids), chunk):
            yield from pool.map(fn, ids[start : start + chunk])


def _list_missing(pred_dir: Path, missing: Sequence[str], total: int) -> str:
    shown = ", ".join(f"{i}.png" for i in missing[:MAX_LISTED_MISSING])
    more = (
        f" (and {len(missing) - MAX_LISTED_MISSING} more)"
        if len(missing) > MAX_LISTED_MISSING
        else ""
    )
    return (
        f"{pred_dir}: {len(missing)} of {total} predictions missing: {shown}{more}; "
        "produce them, or pass allow_missing=True (--allow-missing) to evaluate the rest"
    )


def evaluate_label_dir(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    image_ids: Sequence[str],
    num_classes: int,
    class_names: Sequence[str],
    *,
    ignore_index: int = 255,
    palette: np.ndarray | None = None,
    allow_missing: bool = False,
    per_image: bool = False,
    progress: bool = True,
    num_workers: int | None = None,
) -> LabelEvalResult:
    """Accumulate one confusion matrix of ``<pred_dir>/<id>.png`` against ``<gt_dir>/<id>.png``.

    Label PNGs are read with :func:`fma.io.read_label_map` (palette or greyscale PNGs; RGB PNGs
    through ``palette``). Prediction pixels equal to ``ignore_index`` count as misses of their
    ground-truth class; ground-truth ignore pixels are skipped.

    Args:
        pred_dir: folder of predicted label PNGs.
        gt_dir: folder of ground-truth label PNGs.
        image_ids: ids to evaluate (a split list).
        num_classes: number of classes C, background included.
        class_names: C names in index order.
        ignore_index: ignore label in both folders.
        palette: (N, 3) uint8 colours to map RGB PNGs back to labels.
        allow_missing: skip (and count) ids without a prediction instead of failing.
        per_image: also compute each image's IoUs and mIoU (:class:`ImageScore`).
        progress: show a tqdm progress bar.
        num_workers: threads decoding PNGs (default: ``min(8, cpu_count)``; 0 or 1 = none).

    Returns:
        :class:`LabelEvalResult`.

    Raises:
        LabelEvalError: a folder is missing, predictions are missing (unless allowed), or files
            are unreadable, of the wrong size, or hold values that are not classes; the message
            has one line per bad file.
    """
    pred_dir = Path(pred_dir)
    gt_dir = Path(gt_dir)
    names = list(class_names)
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for num_classes={num_classes}")
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index {ignore_index} is a class index (num_classes={num_classes})"
        )
    for folder, what in ((pred_dir, "prediction"), (gt_dir, "ground-truth")):
        if not folder.is_dir():
            msg = f"{folder}: {what} folder not found"
            raise LabelEvalError(msg, problems=[msg])
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        raise LabelEvalError("no image ids to evaluate (empty split list)")
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)

    def work(image_id: str) -> _Outcome:
        return _evaluate_one(image_id, pred_dir, gt_dir, num_classes, ignore_index, palette)

    total = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    scores: list[ImageScore] = []
    missing: list[str] = []
    problems: list[str] = []
    n_images = 0
    for out in _progress(_imap(work, ids, num_workers), len(ids), progress):
        if out.missing:
            missing.append(out.image_id)
        elif out.problem is not None:
            problems.append(out.problem)
        else:
            total += out.cm
            n_images += 1
            if per_image:
                iou = per_class_iou(out.cm)
                finite = iou[~np.isnan(iou)]
                miou = float(finite.mean()) if finite.size else None
                pixels = int(out.cm.sum())
                acc = float(100.0 * np.trace(out.cm[:, :num_classes]) / pixels) if pixels else None
                scores.append(ImageScore(out.image_id, miou, iou, acc))
    lines = list(problems)
    if missing and not allow_missing:
        lines.append(_list_missing(pred_dir, missing, len(ids)))
    if lines:
        shown = lines[:MAX_LISTED_PROBLEMS]
        if len(lines) > MAX_LISTED_PROBLEMS:
            shown.append(f"... and {len(lines) - MAX_LISTED_PROBLEMS} more problems")
        head = (
            f"evaluating {pred_dir} against {gt_dir}: {len(problems)} bad file(s), "
            f"{len(missing)} missing prediction(s)"
        )
        raise LabelEvalError("\n".join([head, *shown]), problems=problems, missing=missing)
    if n_images == 0:
        raise LabelEvalError(
            f"{pred_dir}: none of the {len(ids)} predictions exist; nothing to evaluate",
            missing=missing,
        )
    return LabelEvalResult(
        metrics=metrics_from_confusion(total, names),
        confusion=total,
        n_images=n_images,
        n_missing=len(missing),
        missing=missing,
        per_image=scores if per_image else None,
    )


def evaluate_dataset_split(
    pred_dir: str | os.PathLike,
    dataset: str,
    split: str,
    data_root: str | os.PathLike,
    *,
    gt_dir: str | os.PathLike | None = None,
    **kw: Any,
) -> LabelEvalResult:
    """Evaluate ``pred_dir`` against the ground truth of a dataset split.

    Args:
        pred_dir: folder of ``<id>.png`` label maps.
        dataset: ``voc12``, ``coco14`` or ``custom`` (see :class:`fma.datasets.DatasetLayout`).
        split: split name; its ids come from the layout's split file.
        data_root: dataset root.
        gt_dir: ground-truth folder overriding the layout's.
        **kw: further keyword arguments of :func:`evaluate_label_dir`.

    Raises:
        LabelEvalError: as :func:`evaluate_label_dir`, and for a missing split or class file.
    """
    layout = DatasetLayout.of(dataset, data_root)
    try:
        names, palette = dataset_label_space(dataset, data_root)
    except (FileNotFoundError, DatasetCheckError) as exc:  # a custom dataset's classes.txt
        raise LabelEvalError(str(exc)) from exc
    try:
        ids = layout.image_ids(split)
    except FileNotFoundError as exc:
        raise LabelEvalError(str(exc)) from exc
    kw.setdefault("palette", palette)
    return evaluate_label_dir(
        pred_dir,
        gt_dir if gt_dir is not None else layout.labels_dir(split),
        ids,
        len(names),
        names,
        **kw,
    )


def result_summary(result: LabelEvalResult, **extra: Any) -> dict[str, Any]:
    """JSON-ready summary: the metrics, image counts, missing ids, fma version and ``extra``."""
    out: dict[str, Any] = dict(result.metrics)
    out.update(
        n_images=result.n_images,
        n_missing=result.n_missing,
        missing=list(result.missing),
        fma_version=__version__,
    )
    out.update(extra)
    return out


def write_show_panels(
    result: LabelEvalResult,
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    image_path: Callable[[str], Path],
    out_dir: str | os.PathLike,
    palette: np.ndarray,
    *,
    num_show: int = 5,
    ignore_index: int = 255,
    class_names: Sequence[str] | None = None,
) -> list[Path]:
    """Write image | prediction | ground truth panels of the worst and best images.

    Images are ranked by per-image mIoU (``result`` must come from ``per_image=True``; images
    without a defined mIoU are skipped). Files are ``worst_01_<id>.png`` (lowest first) and
    ``best_01_<id>.png`` (highest first), ``num_show`` of each.

    Args:
        result: evaluation result with per-image scores.
        pred_dir: prediction folder that was evaluated.
        gt_dir: ground-truth folder that was evaluated.
        image_path: maps an id to its image file (e.g. ``DatasetLayout.image_path``).
        out_dir: output folder (created).
        palette: (N, 3) uint8 colours for the label maps.
        num_show: panels per group.
        ignore_index: ignore label (drawn white).
        class_names: names of the labels for the legend under each panel (colour -> name of
            every label in the prediction or the ground truth); None shows the ids only.

    Returns:
        Paths written, worst first then best.
    """
    from fma.visualization.panels import add_legend, colorize, panel_image, save_png, side_by_side

    if result.per_image is None:
        raise ValueError("write_show_panels needs a result computed with per_image=True")
    ranked = sorted(
        (s for s in result.per_image if s.miou is not None), key=lambda s: (s.miou, s.image_id)
    )
    n = max(0, min(num_show, len(ranked)))
    groups = [("worst", ranked[:n]), ("best", ranked[::-1][:n])]
    out_dir = Path(out_dir)
    written = []
    for tag, items in groups:
        for rank, score in enumerate(items, start=1):
            pred = read_label_map(Path(pred_dir) / f"{score.image_id}.png", palette=palette)
            gt = read_label_map(Path(gt_dir) / f"{score.image_id}.png", palette=palette)
            img = panel_image(Path(image_path(score.image_id)), gt.shape)
            panel = side_by_side(
                [
                    img,
                    colorize(pred, palette, ignore_index=ignore_index),
                    colorize(gt, palette, ignore_index=ignore_index),
                ],
                titles=[score.image_id, f"prediction mIoU {score.miou:.1f}", "ground truth"],
            )
            panel = add_legend(panel, [pred, gt], class_names, palette, ignore_index=ignore_index)
            path = out_dir / f"{tag}_{rank:02d}_{score.image_id}.png"
            save_png(path, panel)
            written.append(path)
    return written
