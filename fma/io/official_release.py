"""The on-disk formats of the official FMA-WSSS release (``experiment.tar``), read without its code.

Where each format comes from (repository HAL-42/FMA-WSSS, file:line at the commit named):

* **SAM annotations**, ``<sams>/<split>/anns/<img_id>.pkl`` (VOC ``VOC/sams/split=<split>/``,
  COCO ``COCO/sams/<split>/``): ``src/tasks/sam_auto_seg/run.py`` (2502bc9) builds the path at
  :83, calls ``SamAuto.generate`` at :94 and writes ``pickle.dump(img_anns, f)`` at :101-102
  (default protocol; ``-m`` selects the output mode, default ``uncompressed_rle``, :33).
  ``src/libs/sam/custom_sam/sam_auto.py`` (6aea544): the pickled object is a ``SamAnns``
  (:29-34), a ``list`` subclass whose ``__init__`` sets ``self.data = ADict()``
  (``alchemy_cat``'s attribute dict, imported at :16), so the pickle names these two classes
  besides plain data. ``generate`` (:178) appends one dict per mask (:228-245) with the keys
  ``segmentation`` (mode ``uncompressed_rle``: segment-anything's ``{"size": [H, W],
  "counts": [int, ...]}``, column-major run lengths starting with a background run;
  ``coco_rle``: compressed string counts; ``binary_mask``: an (H, W) bool ndarray),
  ``segmentation_mode``, ``img_hw`` (a tuple), ``area``, ``bbox`` (XYWH), ``predicted_iou``,
  ``predicted_iou_thresh``, ``predicted_iou_nms``, ``point_coords`` ([[x, y]]),
  ``stability_score``, ``crop_box`` (XYWH), ``stability_score_bias`` and ``level`` (0, 1, 2 =
  sub-part, part, whole: the index of SAM's three multimask outputs, set in ``_process_batch``).
  All values are Python scalars and lists (``.item()`` / ``.tolist()``), except the masks of
  ``binary_mask`` mode. The seeding step reads them back with ``SamAnns(pickle.load(f))``
  (``src/tasks/anns_seed/run.py`` (0c0baf0) :101-103) and decodes each mask with
  ``SamAuto.decode_segmentation`` (sam_auto.py:250).
* **CAMs**, ``<infer>/cam/<img_id>.npz``: ``src/tasks/infer_cam/run.py`` (0474e09) :164-168,
  ``np.savez`` (uncompressed) of ``cam`` (P, h, w) float32, ``fg_cls`` (P,) int64 0-based
  foreground ids (``np.nonzero`` of the label vector, :141), ``fg_logit`` (P,) float32,
  ``all_logit`` (F,) float32 and, with ``save_att``, ``att`` (h*w, h*w) float16. CAA-refined
  ``<aff>/cam_affed/<img_id>.npz``: ``src/tasks/aff_cam/run.py`` (0b388c2) :109-110, keys
  ``cam``, ``fg_cls``, ``fg_logit``. Read at anns_seed/run.py:93-95 (``cam``, ``fg_cls``).
  :func:`fma.io.cams.load_cam` reads both (no ``format_version`` key: ``fg_cls`` + 1).
* **Seeds**, ``<ann>/seed/<img_id>.png``: anns_seed/run.py:120, ``arr2PIL(seed).save``, an
  8-bit single-channel PNG of class ids (0 = background, no 255).
* **Prompt contexts**, ``<task>/checkpoints/{start,iter-<n>,final}.pth``:
  ``src/tasks/train_coop/run.py`` (089586e) :58 (folder), :99 and :105 (``torch.save`` of
  ``get_state(model)``); ``src/libs/coop/getters.py`` (612d063) :23-28 keeps the entries of
  ``model.state_dict()`` whose key contains ``prompt_learner.ctx`` (an ``OrderedDict``).
  The key is ``prompt_learner.ctx`` (``GradCAMCLIP.prompt_learner``,
  ``src/libs/coop/custom_clips/cam_clips.py`` (835a6ae) :35), the tensor (M, D) for a shared
  context or (G, M, D) with class-specific contexts (``src/libs/coop/prompt_learners.py``
  (d44df4e) :56-68, :76), the G prompts being the foreground then the background names
  (``configs/clip_cam/base.py`` (d44df4e) :91). fma's :class:`fma.clip.PromptLearner` has the
  same key, shape and prompt order.

Nothing of the authors' code is imported: the pickles are read by
:func:`fma.io.safe_pickle.load_data_pickle` with :func:`official_substitutes`, which stands
inert classes in for ``SamAnns`` and ``ADict`` and refuses every other non-data name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fma.io.masks.amg import _parse_amg_records, amg_record
from fma.io.masks.records import SamMaskError, encode_rle
from fma.io.safe_pickle import load_data_pickle

__all__ = [
    "OFFICIAL_LEVELS",
    "OfficialADict",
    "OfficialAnns",
    "official_mask_records",
    "official_substitutes",
    "read_official_anns",
]

#: The levels the official mask generator writes (``SamAuto.level_num = 3``).
OFFICIAL_LEVELS = (0, 1, 2)
_MODES = ("uncompressed_rle", "coco_rle", "binary_mask")


class OfficialAnns(list):
    """Inert stand-in for ``SamAnns`` (a list of mask dicts); the pickled ``data`` is dropped."""

    def __setstate__(self, state: Any) -> None:
        pass


class OfficialADict(dict):
    """Inert stand-in for ``alchemy_cat``'s ``ADict`` (a dict); its attributes are dropped."""

    def __setstate__(self, state: Any) -> None:
        pass


def official_substitutes(module: str, name: str) -> type | None:
    """Stand-ins for the two classes an official annotation pickle names besides data.

    ``SamAnns`` of a module named ``...sam_auto`` (``libs.sam.custom_sam.sam_auto`` in the
    release) and ``ADict`` of any ``alchemy_cat`` module (its location moved between
    ``alchemy_cat`` versions). Everything else is None (refused by the unpickler).
    """
    if name == "SamAnns" and module.rsplit(".", 1)[-1] == "sam_auto":
        return OfficialAnns
    if name == "ADict" and module.split(".", 1)[0] == "alchemy_cat":
        return OfficialADict
    return None


def _segmentation(rec: dict[str, Any], where: str) -> dict[str, Any]:
    """The record's mask as an RLE dict ``{"size": [H, W], "counts": list | str}``."""
    seg = rec.get("segmentation")
    mode = rec.get("segmentation_mode")
    if mode is not None and mode not in _MODES:
        raise SamMaskError(f"{where}: unknown segmentation_mode {mode!r} (expected {_MODES})")
    if isinstance(seg, np.ndarray):
        if seg.ndim != 2:
            raise SamMaskError(f"{where}: binary mask of shape {seg.shape}, expected (H, W)")
        return encode_rle(seg.astype(bool)[None])[0]
    if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
        raise SamMaskError(
            f"{where}: 'segmentation' is {type(seg).__name__}, expected an RLE dict "
            "{'size': [H, W], 'counts': ...} or an (H, W) array"
        )
    counts = seg["counts"]
    if isinstance(counts, (tuple, np.ndarray)):
        counts = [int(c) for c in counts]
    return {"size": [int(s) for s in seg["size"]], "counts": counts}


def read_official_anns(path: str | os.PathLike, *, display: str | None = None) -> list[dict]:
    """Read one official annotation pickle as a list of mask dicts (masks as RLE dicts).

    Args:
        path: ``anns/<img_id>.pkl``.
        display: the name errors give the file (default: ``path``).

    Returns:
        The records in file order, each a plain dict with the official keys and
        ``segmentation`` turned into an RLE dict (:func:`_segmentation`).

    Raises:
        fma.io.safe_pickle.UnsafePickleError: the pickle names a class that is not data.
        SamMaskError: the content is not a list of mask records.
    """
    where = display if display is not None else str(path)
    obj = load_data_pickle(path, substitutes=official_substitutes, display=where)
    if not isinstance(obj, list):
        raise SamMaskError(
            f"{where}: holds a {type(obj).__name__}, not the list of mask records that the "
            "official sam_auto_seg step writes"
        )
    out = []
    for i, rec in enumerate(obj):
        if not isinstance(rec, dict):
            raise SamMaskError(f"{where}: record {i} is a {type(rec).__name__}, not a dict")
        rec = dict(rec)
        rec["segmentation"] = _segmentation(rec, f"{where}: record {i}")
        out.append(rec)
    return out


def _level(rec: dict[str, Any], where: str) -> int:
    level = rec.get("level", -1)
    try:
        level = int(level)
    except (TypeError, ValueError):
        raise SamMaskError(f"{where}: level {level!r} is not an integer") from None
    if level != -1 and level not in OFFICIAL_LEVELS:
        raise SamMaskError(f"{where}: level {level} is not one of {OFFICIAL_LEVELS}")
    return level


def official_mask_records(
    path: str | os.PathLike, *, display: str | None = None
) -> tuple[list[dict[str, Any]], int, int]:
    """An official annotation pickle as fma mask records (:func:`fma.io.masks.records.make_record`).

    The masks go through the amg.py record reader (:func:`fma.io.masks.amg._parse_amg_records`:
    run lengths checked against the image size, re-encoded as COCO compressed RLE); ``area``
    is the decoded mask's pixel count and ``level`` is kept.

    Returns:
        ``(records, H, W)``.

    Raises:
        SamMaskError: an unreadable record, masks of different sizes, a size that is not the
            record's ``img_hw``, or a file without masks (its image size is unknown).
        fma.io.safe_pickle.UnsafePickleError: see :func:`read_official_anns`.
    """
    where = display if display is not None else str(path)
    recs = read_official_anns(path, display=where)
    if not recs:
        raise SamMaskError(
            f"{where}: holds no masks, so the image size is unknown; the official seeding step "
            "cannot use such a file either (it stacks the masks), regenerate it"
        )
    masks, parsed, h, w = _parse_amg_records(Path(where), recs)
    out = []
    for i, (r, orig) in enumerate(zip(parsed, recs, strict=True)):
        at = f"{where}: record {i}"
        img_hw = orig.get("img_hw")
        if img_hw is not None and [int(v) for v in img_hw] != [h, w]:
            raise SamMaskError(f"{at}: img_hw {list(img_hw)} differs from the mask size {[h, w]}")
        try:
            out.append(amg_record(r, masks[i], h, w, level=_level(r, at)))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, SamMaskError):
                raise
            raise SamMaskError(f"{at}: malformed fields ({exc})") from exc
    return out, h, w
