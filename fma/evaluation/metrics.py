"""mmengine metric of stage I: write CAM files and (optionally) monitor CAM mIoU.

:class:`CAMMetric` receives the data samples predicted by :class:`fma.models.PromptCLIP`
(``cam``, ``fg_cls``, ``fg_logit``, ``all_logit``, optional ``att``; metainfo ``img_id``,
``ori_shape`` and, with ``with_gt=True`` datasets, ``gt_path``). With ``output_dir`` it writes
``<output_dir>/<img_id>.npz`` through :mod:`fma.io.cams` and a ``cams`` manifest at the end.
When ground-truth paths are present it scores the CAMs as method-fma 6.4 (resize to the GT
size, ReLU, min-max, background ``(1 - max)^gamma``, argmax) for every ``gamma`` and reports the
mIoU of each (monitoring only; nothing is selected automatically).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from fma.cam import cam_to_label
from fma.datasets.meta import get_dataset_meta
from fma.evaluation.confusion import confusion_matrix, metrics_from_confusion
from fma.io.cams import FORMAT, VERSION, CamRecord, save_cam
from fma.io.label_maps import read_label_map
from fma.io.manifest import Manifest, producer_info, write_manifest
from fma.registry import METRICS

__all__ = ["CAMMetric"]


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.cpu().numpy()
    return np.asarray(x)


@METRICS.register_module()
class CAMMetric(BaseMetric):
    """Write per-image CAM ``.npz`` files and report CAM mIoU per background exponent.

    Args:
        output_dir: folder for ``<img_id>.npz`` files and ``manifest.json``; None writes nothing.
        dataset: dataset key (class names of the manifest and of the mIoU table).
        split: split name recorded in the manifest.
        gammas: background exponents to score (empty: no mIoU even with ground truth).
        save_att: store the attention matrix (``att``) when the model returned it.
        skip_existing: do not rewrite files that already exist (resumed runs).
        config: config path recorded in the manifest's producer.
        collect_device: mmengine result collection device.
        prefix: metric name prefix (default ``"cam"``).
    """

    default_prefix = "cam"

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        dataset: str = "voc12",
        split: str | None = None,
        gammas: Sequence[float] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
        save_att: bool = False,
        skip_existing: bool = True,
        config: str | None = None,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.meta = get_dataset_meta(dataset)
        self.split = split
        self.gammas = tuple(float(g) for g in gammas)
        self.save_att = save_att
        self.skip_existing = skip_existing
        self.config = config

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Write each image's CAM file and accumulate confusion matrices."""
        for ds in data_samples:
            img_id = ds["img_id"]
            cam = ds["cam"]
            fg_cls = _numpy(ds["fg_cls"]).astype(np.int64)
            if self.output_dir is not None:
                path = self.output_dir / f"{img_id}.npz"
                if not (self.skip_existing and path.is_file()):
                    rec = CamRecord(
                        cam=_numpy(cam),
                        fg_cls=fg_cls,
                        fg_logit=_numpy(ds["fg_logit"]) if "fg_logit" in ds else None,
                        all_logit=_numpy(ds["all_logit"]) if "all_logit" in ds else None,
                        ori_size=tuple(int(v) for v in ds["ori_shape"]),
                        att=_numpy(ds["att"]) if self.save_att and "att" in ds else None,
                    )
                    save_cam(path, rec)
            if self.gammas and ds.get("gt_path"):
                self._score(torch.as_tensor(cam).float(), fg_cls, ds["gt_path"])

    def _score(self, cam: torch.Tensor, fg_cls: np.ndarray, gt_path: str) -> None:
        c = self.meta.num_classes
        gt = read_label_map(gt_path, num_classes=c, ignore_index=self.meta.ignore_index)
        fg = torch.as_tensor(fg_cls, device=cam.device)
        cms = [
            confusion_matrix(
                cam_to_label(cam, fg, size=gt.shape, gamma=g).cpu().numpy().astype(np.uint8),
                gt,
                c,
                self.meta.ignore_index,
            )
            for g in self.gammas
        ]
        total = np.stack(cms).astype(np.int64)
        if not self.results:
            self.results.append({"confusion": total, "images": 1})
        else:
            self.results[0]["confusion"] += total
            self.results[0]["images"] += 1

    def compute_metrics(self, results: list) -> dict[str, float]:
        """mIoU per gamma (``mIoU@<gamma>``), the best one and its gamma; writes the manifest."""
        if self.output_dir is not None:
            count = sum(1 for _ in self.output_dir.glob("*.npz"))
            write_manifest(
                self.output_dir,
                Manifest(
                    format=FORMAT,
                    version=VERSION,
                    count=count,
                    dataset=self.meta.name,
                    split=self.split,
                    class_names=list(self.meta.class_names),
                    producer=producer_info("tools/test.py", self.config),
                    params={"gammas": list(self.gammas)},
                ),
            )
        out: dict[str, float] = {}
        if not results:
            return out
        confusion = sum(r["confusion"] for r in results)
        images = sum(r["images"] for r in results)
        best = (-1.0, None)
        for g, cm in zip(self.gammas, confusion, strict=True):
            miou = metrics_from_confusion(cm, self.meta.class_names)["mIoU"]
            miou = float("nan") if miou is None else float(miou)
            out[f"mIoU@{g:g}"] = miou
            if miou > best[0]:
                best = (miou, g)
        if best[1] is not None:
            out["mIoU_best"] = best[0]
            out["gamma_best"] = float(best[1])
        out["images"] = float(images)
        return out
