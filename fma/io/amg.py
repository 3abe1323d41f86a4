"""Readers and an importer for the outputs of segment-anything's ``scripts/amg.py``.

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

Masks come back as :class:`fma.io.sam_masks.SamMasks` with ``levels`` -1 (amg.py keeps no
whole/part/sub-part level). Nothing here unpickles anything.

A mask root may also hold fma's own ``sam_masks`` files, ``<image_id>.json.gz`` or
``<image_id>.json`` (:func:`fma.io.sam_masks.find_mask_file` order); :func:`mask_layout` tells
them from amg.py's JSON lists by content, and any JSON file may be gzip'd (recognised by its
magic bytes). :func:`import_amg` writes ``<image_id>.json.gz`` (or ``.json`` with
``compress=False``).
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fma.io.atomic import write_bytes_atomic, write_text_atomic
from fma.io.label_maps import read_image_array
from fma.io.manifest import Manifest, producer_info, write_manifest
from fma.io.sam_masks import (
    FORMAT as SAM_FORMAT,
)
from fma.io.sam_masks import (
    MASK_SUFFIXES,
    SamMaskError,
    SamMasks,
    decode_rle,
    encode_rle,
    find_mask_file,
    load_sam_masks,
    make_record,
    mask_file_id,
    mask_suffix,
    open_json_bytes,
    read_json_file,
    save_sam_masks,
)
from fma.io.sam_masks import (
    VERSION as SAM_VERSION,
)

__all__ = [
    "MASK_SOURCE",
    "METADATA_COLUMNS",
    "detect_amg_layout",
    "import_amg",
    "load_masks_any",
    "mask_layout",
    "read_amg_folder",
    "read_amg_json",
    "write_amg_folder",
]

#: Header of amg.py's ``metadata.csv``.
METADATA_COLUMNS = (
    "id", "area", "bbox_x0", "bbox_y0", "bbox_w", "bbox_h", "point_input_x", "point_input_y",
    "predicted_iou", "stability_score", "crop_box_x0", "crop_box_y0", "crop_box_w", "crop_box_h",
)  # fmt: skip
#: ``params.mask_source`` of a folder written by :func:`import_amg`.
MASK_SOURCE = "amg_import"

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
    :func:`fma.io.sam_masks.load_sam_masks` instead.

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


# ---------------------------------------------------------------------------------------------
# any layout
# ---------------------------------------------------------------------------------------------
def _json_kind(path: Path) -> str:
    """``amg_coco_rle`` for a JSON list (amg.py), else ``fma`` (an object: fma's format).

    Looks at the first bytes only, after gunzipping when the file starts with gzip's magic.
    """
    try:
        with open_json_bytes(path) as f:
            head = f.read(64)
    except (OSError, EOFError, zlib.error) as exc:
        raise SamMaskError(f"{path}: unreadable mask file ({exc}); delete it and re-run") from exc
    return "amg_coco_rle" if head.lstrip().startswith(b"[") else "fma"


def mask_layout(mask_root: str | os.PathLike, image_id: str) -> tuple[str, Path]:
    """Which mask layout holds ``image_id`` under ``mask_root``, and its path.

    The file ``<id>.json.gz`` wins over ``<id>.json`` (:func:`fma.io.sam_masks.find_mask_file`),
    and either wins over a folder ``<id>/``.

    Returns:
        (kind, path) with kind ``"fma"`` (fma ``sam_masks`` JSON), ``"amg_coco_rle"``
        (amg.py JSON list) or ``"amg_folder"`` (amg.py PNG folder).

    Raises:
        FileNotFoundError: none of ``<root>/<id>.json.gz``, ``<root>/<id>.json`` and
            ``<root>/<id>/`` exists.
    """
    root = Path(mask_root)
    json_path = find_mask_file(root, image_id)
    folder = root / image_id
    if json_path is not None:
        return _json_kind(json_path), json_path
    if folder.is_dir():
        return "amg_folder", folder
    names = " or ".join(f"{image_id}{suffix}" for suffix in MASK_SUFFIXES)
    raise FileNotFoundError(
        f"no SAM masks for {image_id!r} in {root}: expected {names} (fma mask file, or "
        f"amg.py --convert-to-rle output) or a folder {folder}{os.sep} of amg.py mask PNGs"
    )


def load_masks_any(
    mask_root: str | os.PathLike, image_id: str, *, image_size: tuple[int, int] | None = None
) -> SamMasks:
    """Load one image's masks from whichever layout ``mask_root`` uses (see :func:`mask_layout`).

    Args:
        mask_root: folder of fma mask files or of amg.py outputs.
        image_id: the image id.
        image_size: (H, W) of the image, used only to shape an empty mask set.

    Returns:
        :class:`SamMasks`.
    """
    kind, path = mask_layout(mask_root, image_id)
    if kind == "amg_folder":
        return read_amg_folder(path, image_size=image_size)
    if kind == "amg_coco_rle":
        return read_amg_json(path, image_size=image_size)
    return _with_size(load_sam_masks(path), image_size)


def detect_amg_layout(src_root: str | os.PathLike) -> dict[str, str]:
    """Image ids found in an amg.py output folder and their layout.

    Returns:
        ``{image_id: kind}`` sorted by id, kind as in :func:`mask_layout` (which also decides
        between ``<id>.json.gz``, ``<id>.json`` and ``<id>/``). ``manifest.json`` and hidden
        entries are skipped.
    """
    root = Path(src_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: amg.py output folder not found")
    ids: set[str] = set()
    for entry in os.scandir(root):
        name = entry.name
        if name.startswith(".") or name == "manifest.json":
            continue
        if entry.is_dir():
            ids.add(name)
        elif any(name.endswith(suffix) for suffix in MASK_SUFFIXES):
            ids.add(mask_file_id(name))
    return {image_id: mask_layout(root, image_id)[0] for image_id in sorted(ids)}


def _records_from_folder(folder: Path) -> tuple[list[dict[str, Any]], int, int]:
    masks, rows = _read_folder(folder, None)
    h, w = masks.shape[1:]
    recs = []
    for i, rle in enumerate(encode_rle(masks)):
        row = rows[i]
        bbox = (
            [_num(row, c, 0.0) for c in ("bbox_x0", "bbox_y0", "bbox_w", "bbox_h")]
            if row is not None
            else _bbox_xywh(masks[i])
        )
        point = (
            [[_num(row, "point_input_x", 0.0), _num(row, "point_input_y", 0.0)]]
            if row is not None and row.get("point_input_x") not in (None, "")
            else []
        )
        crop = [_num(row, c, d) for c, d in zip(
            ("crop_box_x0", "crop_box_y0", "crop_box_w", "crop_box_h"), (0, 0, w, h), strict=True
        )]  # fmt: skip
        recs.append(
            make_record(
                rle,
                area=int(masks[i].sum()),
                bbox=bbox,
                predicted_iou=_num(row, "predicted_iou", 1.0),
                stability_score=_num(row, "stability_score", 1.0),
                point_coords=point,
                crop_box=crop,
                level=-1,
            )
        )
    return recs, h, w


def _records_from_json(path: Path) -> tuple[list[dict[str, Any]], int, int]:
    doc = read_json_file(path)
    if isinstance(doc, dict) and doc.get("format") == SAM_FORMAT:
        return list(doc.get("masks", [])), int(doc["height"]), int(doc["width"])
    masks, recs, h, w = _parse_amg_records(path, doc)
    out = []
    for i, r in enumerate(recs):
        try:
            out.append(
                make_record(
                    r["segmentation"],
                    area=int(masks[i].sum()),
                    bbox=list(r.get("bbox") or _bbox_xywh(masks[i])),
                    predicted_iou=float(r.get("predicted_iou", 1.0)),
                    stability_score=float(r.get("stability_score", 1.0)),
                    point_coords=[list(p) for p in (r.get("point_coords") or [])],
                    crop_box=list(r.get("crop_box") or [0, 0, w, h]),
                    level=-1,
                )
            )
        except (TypeError, ValueError) as exc:
            raise SamMaskError(f"{path}: mask record {i} has malformed fields ({exc})") from exc
    return out, h, w


def _import_one(image_id: str, src_root: str, out_dir: str, suffix: str) -> None:
    kind, path = mask_layout(src_root, image_id)
    if kind == "amg_folder":
        recs, h, w = _records_from_folder(path)
    else:
        recs, h, w = _records_from_json(path)
    save_sam_masks(Path(out_dir) / f"{image_id}{suffix}", image_id, h, w, recs)


def import_amg(
    src_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    image_ids: Sequence[str] | None = None,
    workers: int = 0,
    dataset: str | None = None,
    split: str | None = None,
    class_names: Sequence[str] | None = None,
    progress: bool = True,
    compress: bool = True,
) -> Any:
    """Convert amg.py outputs (either layout, mixed allowed) into fma ``sam_masks`` files.

    Writes ``<out_dir>/<image_id>.json.gz`` per image (``.json`` with ``compress=False``; masks
    re-encoded as compressed RLE where needed, ``level`` -1, scores and boxes from
    ``metadata.csv`` or the JSON records) and, when every image succeeded,
    ``<out_dir>/manifest.json`` (format ``sam_masks``; ``params``: ``mask_source`` =
    ``"amg_import"``, ``src_root``, ``src_layouts``, ``file_suffix``). Images that already have
    a mask file of either suffix are skipped, so an interrupted import resumes.

    Args:
        src_root: amg.py ``--output`` folder.
        out_dir: destination folder.
        image_ids: ids to import (default: every ``<id>/`` folder and ``<id>.json[.gz]``
            file).
        workers: worker processes (0: this process).
        dataset: dataset key for the manifest (optional).
        split: split name for the manifest (optional).
        class_names: class names for the manifest (optional).
        progress: show a progress bar.
        compress: write gzip'd ``.json.gz`` files (default) or plain ``.json``.

    Returns:
        :class:`fma.stage.StageReport` (failed images are listed by id with their error).
    """
    from fma.stage import run_per_image

    found = detect_amg_layout(src_root)
    ids = list(found) if image_ids is None else list(dict.fromkeys(image_ids))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = mask_suffix(compress)
    report = run_per_image(
        ids,
        _import_one,
        (str(src_root), str(out), suffix),
        output_path=lambda i: find_mask_file(out, i) or out / f"{i}{suffix}",
        workers=workers,
        desc="import amg masks",
        progress=progress,
    )
    if report.ok:
        layouts = sorted({found.get(i, "missing") for i in ids})
        write_manifest(
            out,
            Manifest(
                format=SAM_FORMAT,
                version=SAM_VERSION,
                count=sum(1 for i in ids if find_mask_file(out, i) is not None),
                dataset=dataset,
                split=split,
                class_names=list(class_names) if class_names is not None else None,
                producer=producer_info("fma.io.amg.import_amg"),
                params={
                    "mask_source": MASK_SOURCE,
                    "src_root": str(src_root),
                    "src_layouts": layouts,
                    "file_suffix": suffix,
                },
            ),
        )
    return report
