"""Reader and writer of segment-anything's ``scripts/amg.py`` output format (per image).

Which layout a mask root holds is decided by :mod:`fma.io.masks.layout`; the batch importer
into fma ``sam_masks`` files is :func:`fma.apis.import_masks.import_amg`.

``amg.py`` writes one of two layouts per image (``<root>`` is its ``--output``):

* ``binary_mask`` (default): a folder ``<root>/<image_id>/`` with one single-channel 8-bit PNG per
  mask, ``<k>.png`` with foreground 255 and background 0, plus ``metadata.csv`` with the columns
  :data:`METADATA_COLUMNS` (one row per mask, ``id`` = k). This is also the layout the official
  SEPL code (``cskyl/SAM_WSSS``) reads.
* ``coco_rle`` (``--convert-to-rle``): a file ``<root>/<image_id>.json`` holding a JSON *list* of
  records with segment-anything's keys (``segmentation`` as COCO RLE ``{"size": [H, W],
  "counts": ...}``, ``area``, ``bbox``, ``predicted_iou``, ``point_coords``,
  ``stability_score``, ``crop_box``).

Reading rules for mask PNGs (folder layout):

* Files named ``<integer>.png`` are the masks, in numeric order; other files are ignored (for
  example ``<k>matting.png`` of amg.py's ``--matting``). A folder without any ``<integer>.png``
  falls back to every ``*.png`` in name order, except ``*matting.png``.
* In an 8-bit PNG (mode ``L``/``P``/``I``) exactly the value 255 is foreground, as in the official
  SEPL code; a file with other nonzero values warns, because those pixels read as background.
* A 1-bit PNG (mode ``1``) is read as its bits (True = foreground) with a warning: the official
  SEPL code compares such files with 255 and so reads them as empty masks.
* Colour PNGs are rejected.

Masks come back as :class:`fma.io.masks.records.SamMasks` with ``levels`` -1 (amg.py keeps no
whole/part/sub-part level). Nothing here unpickles anything.

Any JSON file may be gzip'd (recognised by its magic bytes).
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fma.io.atomic import write_bytes_atomic, write_text_atomic
from fma.io.label_maps import read_image_array
from fma.io.masks.records import (
    FORMAT as SAM_FORMAT,
)
from fma.io.masks.records import (
    SamMaskError,
    SamMasks,
    decode_rle,
    encode_rle,
    load_sam_masks,
    make_record,
    mask_file_id,
    read_json_file,
)

__all__ = [
    "METADATA_COLUMNS",
    "read_amg_folder",
    "read_amg_json",
    "write_amg_folder",
]

#: Header of amg.py's ``metadata.csv``.
METADATA_COLUMNS = (
    "id", "area", "bbox_x0", "bbox_y0", "bbox_w", "bbox_h", "point_input_x", "point_input_y",
    "predicted_iou", "stability_score", "crop_box_x0", "crop_box_y0", "crop_box_w", "crop_box_h",
)  # fmt: skip

_INT_PNG = re.compile(r"^(\d+)\.png$")


# ---------------------------------------------------------------------------------------------
# binary_mask folders
# ---------------------------------------------------------------------------------------------
def _mask_files(folder: Path) -> list[Path]:
    numbered = []
    others = []
    for entry in os.scandir(folder):
        if not entry.is_file() or not entry.name.lower().endswith(".png"):
            continue
        m = _INT_PNG.match(entry.name)
        if m:
            numbered.append((int(m.group(1)), Path(entry.path)))
        elif not entry.name.lower().endswith("matting.png"):
            others.append(Path(entry.path))
    if numbered:
        return [p for _, p in sorted(numbered)]
    return sorted(others)


def _read_mask_png(path: Path) -> np.ndarray:
    mode, arr = read_image_array(path, SamMaskError, "mask PNG")
    if mode == "1":
        warnings.warn(
            f"{path}: 1-bit mask PNG read as its bits; the official SEPL code reads such files as "
            "empty masks (it tests for 255). Save masks as 8-bit 0/255 PNGs to match it.",
            stacklevel=3,
        )
        return arr.astype(bool, copy=False)
    if mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
        raise SamMaskError(
            f"{path}: mask PNG has mode {mode!r}; amg.py masks are single-channel 8-bit PNGs "
            "with foreground 255"
        )
    fg = arr == 255
    if np.count_nonzero(arr) != np.count_nonzero(fg):  # values other than 0 and 255
        warnings.warn(
            f"{path}: mask holds nonzero values other than 255; only 255 counts as foreground "
            "(amg.py convention)",
            stacklevel=3,
        )
    return fg


def _read_metadata(folder: Path) -> dict[int, dict[str, str]]:
    path = folder / "metadata.csv"
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise SamMaskError(f"{path}: unreadable metadata.csv ({exc})") from exc
    out: dict[int, dict[str, str]] = {}
    for row in rows:
        try:
            out[int(float(row["id"]))] = row
        except (KeyError, TypeError, ValueError) as exc:
            raise SamMaskError(
                f"{path}: metadata row without a numeric 'id' column: {row}"
            ) from exc
    return out


def _num(row: dict[str, str] | None, key: str, default: float) -> float:
    if row is None or row.get(key) in (None, ""):
        return default
    try:
        return float(row[key])
    except ValueError:
        return default


def _read_folder(
    folder: Path, image_size: tuple[int, int] | None
) -> tuple[np.ndarray, list[dict[str, str] | None]]:
    """(K, H, W) bool masks and the metadata row of each mask (None where absent)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: amg.py mask folder not found")
    files = _mask_files(folder)
    meta = _read_metadata(folder)
    if not files:
        h, w = image_size if image_size is not None else (0, 0)
        return np.zeros((0, h, w), dtype=bool), []
    first = _read_mask_png(files[0])
    masks = np.empty((len(files), *first.shape), dtype=bool)  # filled in place: no stack copy
    masks[0] = first
    for i, p in enumerate(files[1:], start=1):
        a = _read_mask_png(p)
        if a.shape != first.shape:
            raise SamMaskError(
                f"{p}: mask is {a.shape}, but {files[0].name} in the same folder is "
                f"{first.shape}; all masks of an image must have its size"
            )
        masks[i] = a
    rows = []
    for p in files:
        m = _INT_PNG.match(p.name)
        rows.append(meta.get(int(m.group(1))) if m else None)
    return masks, rows


def read_amg_folder(
    folder: str | os.PathLike, *, image_size: tuple[int, int] | None = None
) -> SamMasks:
    """Read an amg.py ``binary_mask`` folder (``<k>.png`` masks + optional ``metadata.csv``).

    Args:
        folder: the image's mask folder, ``<amg output>/<image_id>``.
        image_size: (H, W) used for the mask array when the folder holds no mask at all
            (otherwise the size comes from the PNGs). None: (0, 0).

    Returns:
        :class:`SamMasks` with (K, H, W) bool masks in file-number order, ``predicted_iou`` and
        ``stability_score`` from ``metadata.csv`` (1.0 where absent), ``levels`` -1 and the
        folder name as ``image_id``.

    Raises:
        FileNotFoundError: no such folder.
        SamMaskError: unreadable or colour PNG, masks of different sizes, bad metadata.
    """
    folder = Path(folder)
    masks, rows = _read_folder(folder, image_size)
    k = masks.shape[0]
    return SamMasks(
        masks=masks,
        levels=np.full(k, -1, dtype=np.int8),
        predicted_iou=np.asarray([_num(r, "predicted_iou", 1.0) for r in rows], np.float32),
        stability_score=np.asarray([_num(r, "stability_score", 1.0) for r in rows], np.float32),
        areas=np.asarray([np.count_nonzero(m) for m in masks], dtype=np.int64),
        image_id=folder.name,
    )


def _encode_mask_png(mask: np.ndarray) -> bytes:
    img = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _bbox_xywh(mask: np.ndarray) -> list[int]:
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return [0, 0, 0, 0]
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0]), int(ys[-1] - ys[0])]


def amg_record(
    r: dict[str, Any], mask: np.ndarray, height: int, width: int, level: int
) -> dict[str, Any]:
    """An fma mask record from one parsed segment-anything record (``amg.py`` or the authors'
    pickles) and its decoded ``mask`` (H, W) bool; missing optional fields get amg.py's defaults.

    Raises:
        TypeError, ValueError: a field of the wrong type.
    """
    return make_record(
        r["segmentation"],
        area=int(mask.sum()),
        bbox=list(r.get("bbox") or _bbox_xywh(mask)),
        predicted_iou=float(r.get("predicted_iou", 1.0)),
        stability_score=float(r.get("stability_score", 1.0)),
        point_coords=[list(p) for p in (r.get("point_coords") or [])],
        crop_box=list(r.get("crop_box") or [0, 0, width, height]),
        level=level,
    )


def write_amg_folder(
    folder: str | os.PathLike,
    masks: np.ndarray | SamMasks,
    *,
    predicted_iou: Sequence[float] | None = None,
    stability_score: Sequence[float] | None = None,
) -> None:
    """Write masks in amg.py's ``binary_mask`` layout: ``<k>.png`` (0/255, mode L) + metadata.csv.

    Every file is written atomically. ``bbox`` is amg.py's XYWH box (width and height as
    ``x1 - x0`` of the extreme foreground pixels, as segment-anything's ``box_xyxy_to_xywh``);
    ``point_input`` is the box centre (these masks did not come from a point prompt);
    ``crop_box`` is the whole image.

    Args:
        folder: output folder, usually ``<root>/<image_id>`` (created).
        masks: (K, H, W) bool array, or :class:`SamMasks` (its scores are written).
        predicted_iou: (K,) scores for the metadata (default 1.0, or the SamMasks values).
        stability_score: (K,) scores for the metadata (default 1.0, or the SamMasks values).
    """
    folder = Path(folder)
    if isinstance(masks, SamMasks):
        if predicted_iou is None:
            predicted_iou = masks.predicted_iou.tolist()
        if stability_score is None:
            stability_score = masks.stability_score.tolist()
        masks = masks.masks
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got shape {masks.shape}")
    k, h, w = masks.shape
    piou = [1.0] * k if predicted_iou is None else [float(v) for v in predicted_iou]
    stab = [1.0] * k if stability_score is None else [float(v) for v in stability_score]
    if len(piou) != k or len(stab) != k:
        raise ValueError(f"{k} masks but {len(piou)} predicted_iou / {len(stab)} stability scores")
    folder.mkdir(parents=True, exist_ok=True)
    lines = [",".join(METADATA_COLUMNS)]
    for i in range(k):
        write_bytes_atomic(folder / f"{i}.png", _encode_mask_png(masks[i]))
        x0, y0, bw, bh = _bbox_xywh(masks[i])
        row = [i, int(masks[i].sum()), x0, y0, bw, bh, x0 + bw / 2, y0 + bh / 2]
        row += [piou[i], stab[i], 0, 0, w, h]
        lines.append(",".join(str(v) for v in row))
    write_text_atomic(folder / "metadata.csv", "\n".join(lines))


# ---------------------------------------------------------------------------------------------
# coco_rle JSON files
# ---------------------------------------------------------------------------------------------
def _decode_uncompressed(counts: Sequence[int], h: int, w: int) -> np.ndarray:
    runs = np.asarray(counts, dtype=np.int64)
    if runs.sum() != h * w:
        raise ValueError(f"uncompressed RLE covers {int(runs.sum())} pixels, size is {h}x{w}")
    flat = np.repeat(np.arange(runs.size) % 2 == 1, runs)
    return flat.reshape(w, h).T  # COCO RLE runs are column-major


def _parse_amg_records(path: Path, recs: Any) -> tuple[np.ndarray, list[dict[str, Any]], int, int]:
    """Decode a list of amg.py records; returns masks, records with str-count RLE, H, W."""
    if not isinstance(recs, list):
        raise SamMaskError(f"{path}: expected a JSON list of amg.py mask records")
    if not recs:
        return np.zeros((0, 0, 0), dtype=bool), [], 0, 0
    try:
        sizes = {tuple(int(s) for s in r["segmentation"]["size"]) for r in recs}
    except (KeyError, TypeError, ValueError) as exc:
        raise SamMaskError(
            f"{path}: records need 'segmentation' as COCO RLE {{'size': [H, W], 'counts': ...}} "
            f"({exc}); amg.py writes this with --convert-to-rle"
        ) from exc
    if len(sizes) != 1:
        raise SamMaskError(f"{path}: masks of different sizes {sorted(sizes)} in one file")
    (h, w) = sizes.pop()
    compressed = []
    dense: dict[int, np.ndarray] = {}
    for i, r in enumerate(recs):
        counts = r["segmentation"]["counts"]
        if isinstance(counts, list):
            try:
                dense[i] = _decode_uncompressed(counts, h, w)
            except ValueError as exc:
                raise SamMaskError(f"{path}: mask {i}: {exc}") from exc
        elif isinstance(counts, (str, bytes)):
            text = counts.decode("ascii") if isinstance(counts, bytes) else counts
            compressed.append((i, {"size": [h, w], "counts": text}))
        else:
            raise SamMaskError(f"{path}: mask {i} has RLE counts of type {type(counts).__name__}")
    masks = np.zeros((len(recs), h, w), dtype=bool)
    if compressed:
        try:
            decoded = decode_rle([rle for _, rle in compressed], h, w)
        except (TypeError, ValueError) as exc:
            raise SamMaskError(f"{path}: corrupt RLE ({exc})") from exc
        masks[[i for i, _ in compressed]] = decoded
    for i, m in dense.items():
        masks[i] = m
    rles = dict(compressed)
    if dense:
        idx = sorted(dense)
        for i, rle in zip(idx, encode_rle(masks[idx]), strict=True):
            rles[i] = rle
    out = []
    for i, r in enumerate(recs):
        rec = dict(r)
        rec["segmentation"] = rles[i]
        out.append(rec)
    return masks, out, h, w


def _scores(recs: list[dict[str, Any]], key: str) -> np.ndarray:
    vals = []
    for r in recs:
        try:
            vals.append(float(r.get(key, 1.0)))
        except (TypeError, ValueError):
            vals.append(1.0)
    return np.asarray(vals, dtype=np.float32).reshape(-1)


def read_amg_json(
    path: str | os.PathLike, *, image_size: tuple[int, int] | None = None
) -> SamMasks:
    """Read an amg.py ``coco_rle`` file (a JSON list of mask records; may be gzip'd).

    Compressed RLE (``counts`` a string, as amg.py writes) and uncompressed RLE (``counts`` a
    list of run lengths) are accepted. An fma ``sam_masks`` file is read with
    :func:`fma.io.masks.records.load_sam_masks` instead.

    Args:
        path: ``<amg output>/<image_id>.json`` (or ``.json.gz``).
        image_size: (H, W) used when the file holds no mask.

    Returns:
        :class:`SamMasks` in record order, ``levels`` -1 (or the fma file's levels).

    Raises:
        FileNotFoundError: no such file.
        SamMaskError: unreadable JSON, records without COCO RLE, sizes that differ.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: amg.py mask file not found")
    doc = read_json_file(path)
    if isinstance(doc, dict) and doc.get("format") == SAM_FORMAT:
        masks = load_sam_masks(path)
    else:
        arr, recs, _, _ = _parse_amg_records(path, doc)
        k = arr.shape[0]
        masks = SamMasks(
            masks=arr,
            levels=np.full(k, -1, dtype=np.int8),
            predicted_iou=_scores(recs, "predicted_iou"),
            stability_score=_scores(recs, "stability_score"),
            areas=np.asarray([np.count_nonzero(m) for m in arr], dtype=np.int64),
            image_id=mask_file_id(path),
        )
    return _with_size(masks, image_size)


def _with_size(masks: SamMasks, image_size: tuple[int, int] | None) -> SamMasks:
    if image_size is not None and len(masks) == 0 and masks.shape != tuple(image_size):
        masks.masks = np.zeros((0, *image_size), dtype=bool)
    return masks
