"""mmengine metric of stage I: write CAM files and (optionally) monitor CAM mIoU.

:class:`CAMMetric` receives the data samples predicted by :class:`fma.models.PromptCLIP`
(``cam``, ``fg_cls``, ``fg_logit``, ``all_logit``, optional ``att``; metainfo ``img_id``,
``ori_shape`` and, with ``with_gt=True`` datasets, ``gt_path``). With ``output_dir`` it writes
``<output_dir>/<img_id>.npz`` through :mod:`fma.io.cams` and a ``cams`` manifest at the end.
When ground-truth paths are present it scores the CAMs as method-fma 6.4 (resize to the GT
size, ReLU, min-max, background ``(1 - max)^gamma``, argmax) for every ``gamma`` and reports the
mIoU of each (monitoring only; nothing is selected automatically). With ``show_dir`` it also
writes ``<show_dir>/<img_id>.png`` panels for the first ``show_num`` images (per process):
the image, then one heat overlay per positive class (:func:`cam_panel`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric

from fma.cam import cam_to_label, cam_to_score
from fma.datasets.custom import custom_dataset_meta
from fma.datasets.meta import get_dataset_meta
from fma.evaluation.confusion import confusion_matrix, metrics_from_confusion
from fma.io.cams import CAM_DTYPES, FORMAT, VERSION, CamRecord, save_cam
from fma.io.label_maps import read_label_map
from fma.io.manifest import (
    Manifest,
    check_compatible,
    producer_info,
    write_manifest,
)
from fma.registry import METRICS
from fma.visualization.panels import overlay, panel_image, save_png, side_by_side

__all__ = ["CAMMetric", "cam_panel"]


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.cpu().numpy()
    return np.asarray(x)


def cam_panel(
    image: np.ndarray,
    cam: torch.Tensor,
    titles: Sequence[str],
    alpha: float = 0.5,
) -> np.ndarray:
    """Image plus one heat overlay per CAM, side by side with titles.

    Each CAM is turned into a score as for evaluation (:func:`fma.cam.cam_to_score`: bilinear
    resize to the image size, ReLU, per-class min-max) and blended over the image with
    :func:`fma.visualization.panels.overlay` (jet-like colours, weight ``alpha``).

    Args:
        image: (H, W, 3) uint8 RGB image.
        cam: (K, h, w) raw CAM of the image's K positive classes.
        titles: K + 1 titles (the image's first).
        alpha: colour weight of the overlays.

    Returns:
        (H + title bar, (K + 1) * W + 4 * K, 3) uint8 panel.
    """
    h, w = image.shape[:2]
    if len(titles) != cam.shape[0] + 1:
        raise ValueError(f"{len(titles)} titles for an image and {cam.shape[0]} CAMs")
    score = cam_to_score(cam.float(), size=(h, w)).cpu().numpy()
    panels = [image] + [overlay(image, s, alpha=alpha) for s in score]
    return side_by_side(panels, titles=list(titles))


@METRICS.register_module()
class CAMMetric(BaseMetric):
    """Write per-image CAM ``.npz`` files and report CAM mIoU per background exponent.

    Args:
        output_dir: folder for ``<img_id>.npz`` files and ``manifest.json``; None writes nothing.
        dataset: dataset key (class names of the manifest and of the mIoU table).
        dataset_root: the folder of a ``custom`` dataset (its ``classes.txt``).
        split: split name recorded in the manifest.
        gammas: background exponents to score (empty: no mIoU even with ground truth).
        save_att: store the attention matrix (``att``) when the model returned it.
        cam_dtype: on-disk dtype of ``cam``: ``"float32"`` (default, as the original stores
            CAMs before seeding) or ``"float16"`` (opt-in, smaller files). Recorded in the
            manifest's params, so a rerun into the folder with the other dtype is refused.
        skip_existing: do not rewrite files that already exist (resumed runs).
        config: config path recorded in the manifest's producer.
        show_dir: folder for ``<img_id>.png`` CAM panels (:func:`cam_panel`); None = none.
        show_num: panels written per process at most (the first images it sees).
        params: settings that decide the CAMs (``tools/test.py`` records the checkpoint's
            sha256 and the ``tta`` setting), stored in the manifest. A folder whose manifest
            holds different values for the same keys is refused before anything is written, so
            a rerun never mixes CAMs of two checkpoints or settings; the manifest is written
            (incomplete) before the first file, so this holds for interrupted runs too.
        collect_device: mmengine result collection device.
        prefix: metric name prefix (default ``"cam"``).
    """

    default_prefix = "cam"

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        dataset: str = "voc12",
        dataset_root: str | os.PathLike | None = None,
        split: str | None = None,
        gammas: Sequence[float] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
        save_att: bool = False,
        cam_dtype: str = "float32",
        skip_existing: bool = True,
        config: str | None = None,
        show_dir: str | os.PathLike | None = None,
        show_num: int = 20,
        params: Mapping[str, Any] | None = None,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        if dataset == "custom":
            if dataset_root is None:
                raise ValueError("CAMMetric(dataset='custom') needs dataset_root (its classes.txt)")
            self.meta = custom_dataset_meta(dataset_root)
        else:
            self.meta = get_dataset_meta(dataset)
        self.split = split
        self.gammas = tuple(float(g) for g in gammas)
        self.save_att = save_att
        if cam_dtype not in CAM_DTYPES:
            raise ValueError(f"cam_dtype must be one of {CAM_DTYPES}, got {cam_dtype!r}")
        self.cam_dtype = cam_dtype
        self.skip_existing = skip_existing
        self.config = config
        self.show_dir = Path(show_dir) if show_dir is not None else None
        if show_num < 0:
            raise ValueError(f"show_num must be >= 0, got {show_num}")
        self.show_num = int(show_num)
        self._shown = 0
        # JSON round trip: tuples become lists, as in the manifest they are compared with.
        self.params = json.loads(json.dumps({**dict(params or {}), "cam_dtype": cam_dtype}))
        self._checked = False

    def _manifest(self, complete: bool) -> Manifest:
        out_dir = Path(self.output_dir or ".")
        return Manifest(
            format=FORMAT,
            version=VERSION,
            count=sum(1 for _ in out_dir.glob("*.npz")),
            dataset=self.meta.name,
            split=self.split,
            class_names=list(self.meta.class_names),
            producer=producer_info("tools/test.py", self.config),
            params={"gammas": list(self.gammas), **self.params, "complete": complete},
        )

    def _check_output_dir(self) -> None:
        """Refuse a CAM folder written with other settings; mark it as in progress."""
        self._checked = True
        if self.output_dir is None:
            return
        check_compatible(
            self.output_dir, self.params, format=FORMAT, what="CAMs",
            hint="write to another folder (--out) or delete this one",
        )  # fmt: skip
        if is_main_process():
            write_manifest(self.output_dir, self._manifest(complete=False))

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Write each image's CAM file and accumulate confusion matrices."""
        if not self._checked:
            self._check_output_dir()
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
                    save_cam(path, rec, cam_dtype=self.cam_dtype)
            if self.gammas and ds.get("gt_path"):
                self._score(torch.as_tensor(cam).float(), fg_cls, ds["gt_path"])
            if self.show_dir is not None and self._shown < self.show_num:
                self._show(ds, torch.as_tensor(cam), fg_cls)

    def _show(self, ds: dict, cam: torch.Tensor, fg_cls: np.ndarray) -> None:
        ori = tuple(int(v) for v in ds["ori_shape"])
        image = panel_image(ds.get("img_path"), ori)
        names = [self.meta.class_names[c] if 0 < c < self.meta.num_classes else str(c)
                 for c in fg_cls.tolist()]  # fmt: skip
        panel = cam_panel(image, cam, [str(ds["img_id"]), *names])
        save_png(self.show_dir / f"{ds['img_id']}.png", panel)
        self._shown += 1

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
        self._shown = 0  # a later evaluation with this metric shows its first images again
        if self.output_dir is not None:
            write_manifest(self.output_dir, self._manifest(complete=True))
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
