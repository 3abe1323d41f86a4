"""``SegMetric``: stage II evaluation that writes what a user keeps.

A drop-in replacement of mmseg's ``IoUMetric`` (same summary keys ``aAcc``/``mIoU``/``mAcc``, so
``save_best='mIoU'`` and the logs work as usual) that also:

* accumulates one confusion matrix over the split with :mod:`fma.evaluation.confusion` (the same
  numbers as ``IoUMetric``; per image only the non-zero cells travel between processes) and
  reports per-class IoU, precision and recall;
* writes ``metrics_file`` (JSON) with the metrics, the dataset, split, protocol (single scale or
  scales + flip), the seeds the network was trained on, the checkpoint and the code version;
* writes the predictions as palette PNGs (``output_dir``, atomic, the dataset palette) and, for
  the first ``show_num`` images, image | prediction | ground truth panels (``show_dir``).

The dataset recorded is the one the data loader reads (its metainfo's ``dataset`` key, set by
fma's stage II datasets): an evaluator configured for another dataset (the tiny VOC configs'
``dataset='voc12'`` on COCO data) records the loader's, with a note.

``provenance`` (seeds, checkpoint, iteration) is filled in by
:class:`fma.mmseg_ext.hooks.SeedProvenanceHook`; ``format_only=True`` writes predictions without
ground truth (the VOC test set).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.logging import print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from fma.evaluation.confusion import confusion_matrix, format_table, metrics_from_confusion
from fma.io.atomic import write_json_atomic
from fma.io.label_maps import write_label_map
from fma.io.manifest import producer_info

__all__ = ["SegMetric"]


@METRICS.register_module()
class SegMetric(IoUMetric):
    """Confusion-matrix evaluation with prediction PNGs, panels and a provenance-carrying JSON.

    Args:
        output_dir: folder for ``<img_id>.png`` palette predictions; None writes none.
        metrics_file: JSON written after each evaluation; ``{iteration}`` in the name is replaced
            by the training iteration (validation during training). None writes none, except
            that ``SeedProvenanceHook`` names one per validation
            (``<work_dir>/metrics_val_iter_<N>.json``).
        show_dir: folder for image | prediction | ground truth panels; None draws none.
        show_num: panels drawn per process.
        format_only: only write predictions (no ground truth needed, no metrics).
        dataset: dataset key recorded in the JSON (``voc12``, ``coco14``, ...); replaced by the
            data loader's own key when its dataset names one.
        split: split recorded in the JSON.
        protocol: test protocol recorded in the JSON, e.g. ``dict(mode='ss')`` or
            ``dict(mode='ms_flip', scales=[...], flip=True)``.
        provenance: seeds / checkpoint / iteration, usually set by ``SeedProvenanceHook``.
        tool: producing tool recorded in the JSON.
        config: config path recorded (with its sha256) in the JSON.
        **kwargs: ``IoUMetric`` arguments (``ignore_index``, ``prefix``, ...).
    """

    def __init__(
        self,
        output_dir: str | None = None,
        metrics_file: str | None = None,
        show_dir: str | None = None,
        show_num: int = 20,
        format_only: bool = False,
        dataset: str | None = None,
        split: str | None = None,
        protocol: dict | None = None,
        provenance: dict | None = None,
        tool: str = "tools/test.py",
        config: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("iou_metrics", None)
        super().__init__(iou_metrics=["mIoU"], format_only=format_only, **kwargs)
        self.output_dir = output_dir  # IoUMetric would write grey PNGs; this class writes them
        self.metrics_file = metrics_file
        self.show_dir = show_dir
        self.show_num = int(show_num)
        self.dataset = dataset
        self.split = split
        self.protocol = dict(protocol or {"mode": "ss", "scales": [1.0], "flip": False})
        self.provenance = dict(provenance or {})
        self.tool = tool
        self.config = config
        self._shown = 0

    @property
    def dataset_meta(self) -> dict | None:
        """The metainfo of the data loader's dataset (set by mmengine's loops)."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta: dict | None) -> None:
        self._dataset_meta = meta
        key = (meta or {}).get("dataset")
        if key is None or key == self.dataset:
            return
        if self.dataset is not None:
            print_log(
                f"note: the evaluator says dataset={self.dataset!r} but its data loader reads "
                f"{key!r} ({len(meta.get('classes', ()))} classes); recording {key!r}",
                logger="current",
                level=logging.WARNING,
            )
        self.dataset = key

    # ---------------------------------------------------------------------------------------
    def _palette(self) -> np.ndarray:
        pal = np.zeros((256, 3), dtype=np.uint8)
        given = np.asarray(self.dataset_meta.get("palette", []), dtype=np.uint8).reshape(-1, 3)
        pal[: len(given)] = given[:256]
        return pal

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Per image: write the prediction PNG and a panel; keep the confusion matrix cells."""
        num_classes = len(self.dataset_meta["classes"])
        palette = self._palette()
        for sample in data_samples:
            pred = sample["pred_sem_seg"]["data"].squeeze(0).cpu().numpy().astype(np.uint8)
            image_id = Path(sample["img_path"]).stem
            if self.output_dir is not None:
                write_label_map(Path(self.output_dir) / f"{image_id}.png", pred, palette)
            gt = None
            if not self.format_only:
                gt = sample["gt_sem_seg"]["data"].squeeze(0).cpu().numpy().astype(np.uint8)
                cm = confusion_matrix(pred, gt, num_classes, self.ignore_index).reshape(-1)
                cells = np.flatnonzero(cm)
                self.results.append((cells.astype(np.int32), cm[cells]))
            if self.show_dir is not None and self._shown < self.show_num:
                self._write_panel(sample["img_path"], image_id, pred, gt, palette)
                self._shown += 1

    def _write_panel(
        self, img_path: str, image_id: str, pred: np.ndarray, gt: np.ndarray | None, palette
    ) -> None:
        from fma.visualization.panels import (
            add_legend,
            colorize,
            panel_image,
            save_png,
            side_by_side,
        )

        maps = [pred] if gt is None else [pred, gt]
        panels = [panel_image(img_path, pred.shape)]
        panels += [colorize(m, palette, ignore_index=self.ignore_index) for m in maps]
        titles = [image_id, "prediction", "ground truth"][: len(panels)]
        panel = side_by_side(panels, titles=titles)
        panel = add_legend(
            panel, maps, self.dataset_meta["classes"], palette, ignore_index=self.ignore_index
        )
        save_png(Path(self.show_dir) / f"{image_id}.png", panel)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Sum the cells into one confusion matrix, write ``metrics_file``, return the summary."""
        if self.format_only:
            print_log(f"predictions written to {self.output_dir}", logger="current")
            return {}
        names = [str(n) for n in self.dataset_meta["classes"]]
        c = len(names)
        flat = np.zeros(c * (c + 1), dtype=np.int64)
        for cells, counts in results:
            np.add.at(flat, cells, counts)
        metrics = metrics_from_confusion(flat.reshape(c, c + 1), names)
        print_log("per-class results:\n" + format_table(metrics), logger="current")
        if self.metrics_file is not None:
            self.write_metrics_file(metrics, len(results))
        return {
            "aAcc": _round(metrics["aAcc"]),
            "mIoU": _round(metrics["mIoU"]),
            "mAcc": _round(metrics["mRecall"]),
        }

    def write_metrics_file(self, metrics: dict[str, Any], n_images: int) -> Path:
        """Write the JSON record of one evaluation (atomic) and return its path."""
        record: dict[str, Any] = dict(metrics)
        record.update(
            n_images=n_images,
            dataset=self.dataset,
            split=self.split,
            protocol=self.protocol,
            **self.provenance,
            producer=producer_info(self.tool, self.config),
        )
        path = Path(str(self.metrics_file).format(iteration=self.provenance.get("iteration")))
        write_json_atomic(path, record)
        print_log(f"metrics written to {path}", logger="current")
        return path


def _round(x: float | None) -> float:
    return float("nan") if x is None else round(float(x), 2)
