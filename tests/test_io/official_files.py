"""Files in the formats of the official FMA-WSSS release, written as its dump code writes them.

The structure follows the authors' writers (see fma/io/official_release.py for file:line):

* annotation pickles: ``pickle.dump`` (default protocol) of a ``SamAnns`` (a ``list``
  subclass of module ``libs.sam.custom_sam.sam_auto`` whose ``__init__`` sets ``data =
  ADict()``, ``ADict`` being alchemy_cat's dict subclass with its own ``__getnewargs__`` /
  ``__getstate__``) of mask dicts with segment-anything's uncompressed RLE and the extra keys;
  the two classes are rebuilt here in stand-in modules registered only while pickling;
* CAMs: ``np.savez`` of ``cam``, ``fg_cls`` (0-based int64), ``fg_logit``, ``all_logit``,
  ``att``; CAA output keeps ``cam``, ``fg_cls``, ``fg_logit``;
* seeds: 8-bit single-channel PNGs (PIL mode ``L``);
* prompt checkpoints: ``torch.save`` of an ``OrderedDict`` ``{"prompt_learner.ctx": ctx}``.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SAM_MODULE = "libs.sam.custom_sam.sam_auto"
ADICT_MODULE = "alchemy_cat.py_tools.config.py_cfg"


class ADict(dict):
    """alchemy_cat's ADict, as far as pickling goes (attributes set with object.__setattr__)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        dict.__init__(self, *args, **kwargs)
        for name, value in (("__parent", None), ("__key", None), ("__frozen", False),
                            ("_whole", False)):  # fmt: skip
            object.__setattr__(self, name, value)

    def __getnewargs__(self) -> tuple:
        return ()

    def __getstate__(self) -> Any:
        return vars(self)

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state)


class SamAnns(list):
    """The official SamAnns: a list of mask dicts with an ADict ``data`` attribute."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data = ADict()


@contextlib.contextmanager
def official_modules() -> Iterator[None]:
    """Register the classes under the authors' module names while the block runs."""
    names = {}
    for dotted, cls in ((SAM_MODULE, SamAnns), (ADICT_MODULE, ADict)):
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                names[name] = types.ModuleType(name)
                sys.modules[name] = names[name]
        setattr(sys.modules[dotted], cls.__name__, cls)
    old = (SamAnns.__module__, ADict.__module__)
    SamAnns.__module__, ADict.__module__ = SAM_MODULE, ADICT_MODULE
    try:
        yield
    finally:
        SamAnns.__module__, ADict.__module__ = old
        for name in names:
            sys.modules.pop(name, None)


def sam_uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """segment-anything's ``mask_to_rle_pytorch`` of one (H, W) mask: column-major runs,
    starting with a background run (0 when the first pixel is foreground)."""
    h, w = mask.shape
    flat = mask.T.reshape(-1).astype(bool)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    idx = np.concatenate([[0], change, [h * w]])
    counts = [] if not flat[0] else [0]
    counts.extend(int(v) for v in np.diff(idx))
    return {"size": [h, w], "counts": counts}


def official_record(
    mask: np.ndarray, level: int, *, iou: float = 0.9, mode: str = "uncompressed_rle"
) -> dict[str, Any]:
    """One mask dict as ``SamAuto.generate`` writes it (Python scalars and lists)."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    seg: Any = sam_uncompressed_rle(mask) if mode == "uncompressed_rle" else mask.astype(bool)
    return {
        "segmentation": seg,
        "segmentation_mode": mode,
        "img_hw": (h, w),
        "area": int(mask.sum()),
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "predicted_iou": iou,
        "predicted_iou_thresh": iou + (0.1 if level == 2 else 0.0),
        "predicted_iou_nms": iou + (1.0 if level == 2 else 0.0),
        "point_coords": [[float(x0), float(y0)]],
        "stability_score": 0.95,
        "crop_box": [0, 0, w, h],
        "stability_score_bias": 0.0,
        "level": level,
    }


def write_official_anns(path: Path, records: list[dict[str, Any]]) -> None:
    """``pickle.dump(SamAnns(records), f)`` with the default protocol."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with official_modules(), open(path, "wb") as f:
        pickle.dump(SamAnns(records), f)


def write_official_cam(
    path: Path, cam: np.ndarray, fg_cls: list[int], *, affed: bool = False, num_fg: int = 20
) -> None:
    """``np.savez`` of the keys infer_cam (or aff_cam with ``affed``) writes; ``fg_cls`` 0-based."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fg = np.asarray(fg_cls, dtype=np.int64)
    saved = {"cam": cam.astype(np.float32), "fg_cls": fg,
             "fg_logit": np.linspace(1, 2, len(fg)).astype(np.float32)}  # fmt: skip
    if not affed:
        hw = cam.shape[1] * cam.shape[2]
        saved["all_logit"] = np.arange(num_fg, dtype=np.float32)
        saved["att"] = np.full((hw, hw), 1.0 / hw, dtype=np.float16)
    np.savez(path, **saved)


def write_official_seed(path: Path, label: np.ndarray) -> None:
    """``arr2PIL(seed).save``: an 8-bit single-channel PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label.astype(np.uint8)).save(path)


def write_official_prompts(path: Path, ctx: Any) -> None:
    """``torch.save(get_state(model))``: only the ``prompt_learner.ctx`` entry."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(OrderedDict([("prompt_learner.ctx", ctx)]), path)


class Hostile:
    """A pickle payload that would run a shell command when loaded unrestricted."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (f"touch {self.marker}",))
