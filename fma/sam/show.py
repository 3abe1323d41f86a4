"""Images in and pictures out of the SAM-mask stage: reading any image as RGB, level panels.

:func:`read_image_rgb` is how the stage reads its input images (any PIL mode to (H, W, 3) uint8
RGB); :func:`level_panel` and :func:`write_level_panels` draw what ``--show-dir`` writes: the
image next to one overlay per mask level. Both the generator runs and the panels read images
the same way, so panels show exactly what the masks were computed on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from fma.io.masks.paint import MaskSource, dense_source, paint_masks, rle_source
from fma.io.masks.records import SamMasks, find_mask_file, read_sam_records

__all__ = ["level_panel", "read_image_rgb", "write_level_panels"]

_LEVEL_NAMES = {0: "sub-part", 1: "part", 2: "whole", -1: "masks"}


# ----------------------------------------------------------------------------------------
# image reading
# ----------------------------------------------------------------------------------------
def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale a grey/colour array of any numeric dtype to uint8."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:
        return np.round(arr / 257.0).astype(np.uint8)
    a = arr.astype(np.float64)
    lo, hi = float(np.nanmin(a)) if a.size else 0.0, float(np.nanmax(a)) if a.size else 0.0
    if lo >= 0 and hi <= 1.0 and np.issubdtype(arr.dtype, np.floating):
        a = a * 255.0
    elif lo >= 0 and hi <= 255:
        pass
    elif lo >= 0 and hi <= 65535:
        a = a / 257.0
    else:
        a = (a - lo) / max(hi - lo, 1e-12) * 255.0
    return np.clip(np.round(np.nan_to_num(a)), 0, 255).astype(np.uint8)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB, whatever its PIL mode.

    Grey (``L``, ``1``, ``I;16``, ``I``, ``F``) is repeated to three channels, with 16-bit and
    wider values scaled to 0..255; palette images are expanded through their palette; alpha
    (``LA``, ``RGBA``, ``PA``) is dropped; CMYK and YCbCr are converted by PIL. EXIF orientation
    is not applied, so masks align with label maps read the same way.

    Raises:
        FileNotFoundError: no such file.
        OSError: unreadable or truncated image; the message names the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    img = None
    try:
        img = Image.open(path)
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's truncated / corrupt file errors
        if img is not None:
            img.close()
        raise OSError(
            f"{path}: not a readable image ({exc}); replace it with an intact copy (e.g. "
            "re-download or re-extract it) or drop its id from the image list, then rerun: "
            "finished images are skipped"
        ) from exc
    with img:
        mode = img.mode
        if mode == "RGB":
            arr = np.asarray(img)
        elif mode in ("1", "L", "I", "F") or mode.startswith("I;"):
            grey = _to_uint8(np.asarray(img))
            arr = np.repeat(grey[:, :, None], 3, axis=2)
        elif mode in ("LA", "La"):
            arr = np.repeat(np.asarray(img.getchannel("L"))[:, :, None], 3, axis=2)
        elif mode in ("P", "PA"):  # through RGBA so that palette transparency is handled
            arr = np.asarray(img.convert("RGBA").convert("RGB"))
        else:  # RGBA, RGBa, RGBX, CMYK, YCbCr, LAB, HSV
            arr = np.asarray(img.convert("RGB"))
    arr = np.ascontiguousarray(arr)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:  # pragma: no cover
        raise OSError(f"{path}: could not convert PIL mode {mode!r} to RGB")
    return arr


# ----------------------------------------------------------------------------------------
# level panels
# ----------------------------------------------------------------------------------------
def level_panel(image: np.ndarray, masks: SamMasks, alpha: float = 0.6) -> np.ndarray:
    """Image plus one overlay per level, each mask in its own colour (smaller masks on top).

    Args:
        image: (H, W, 3) uint8 RGB.
        masks: decoded masks of the image.
        alpha: overlay weight.

    Returns:
        (H', W', 3) uint8 strip: the image, then levels in increasing order, titled with the
        level name and mask count.
    """
    return _level_strip(image, dense_source(masks.masks), masks.levels, masks.areas, alpha)


def _level_strip(
    image: np.ndarray, source: MaskSource, levels: np.ndarray, areas: np.ndarray, alpha: float
) -> np.ndarray:
    """:func:`level_panel` from masks decoded in batches (memory: a few H x W arrays)."""
    from fma.visualization.masks import mask_palette
    from fma.visualization.panels import overlay, side_by_side

    palette = mask_palette()
    h, w = image.shape[:2]
    panels, titles = [image], ["image"]
    uniq = sorted(set(levels.tolist()) | {0, 1, 2}) if len(levels) else [0, 1, 2]
    for level in uniq:
        sel = np.nonzero(levels == level)[0]
        label = np.full((h, w), 255, dtype=np.int64)
        if sel.size:
            order = sel[np.argsort(areas[sel], kind="stable")]  # smallest first ...
            top = paint_masks(source, order[::-1], h, w)  # ... painted last, so on top
            covered = top >= 0
            label[covered] = top[covered] % 254
        panels.append(overlay(image, label, palette, alpha))
        titles.append(f"{level} {_LEVEL_NAMES.get(level, '')} ({sel.size})")
    return side_by_side(panels, titles)


def write_level_panels(
    out_dir: str | os.PathLike,
    image_ids: Sequence[str],
    image_path: Callable[[str], str | os.PathLike],
    show_dir: str | os.PathLike,
    num_show: int | None = None,
) -> list[Path]:
    """Write ``<show_dir>/<id>.png`` (:func:`level_panel`) for ids whose mask file exists.

    Args:
        out_dir: folder of the mask files (``<id>.npz``, ``<id>.json.gz`` or ``<id>.json``,
            found with :func:`fma.io.masks.records.find_mask_file`).
        image_ids: candidate ids, in order.
        image_path: callable id -> image path.
        show_dir: output folder.
        num_show: at most this many panels (None: all).

    Returns:
        Paths written.
    """
    from fma.visualization.panels import save_png

    written: list[Path] = []
    for image_id in image_ids:
        if num_show is not None and len(written) >= num_show:
            break
        src = find_mask_file(out_dir, image_id)
        if src is None:
            continue
        doc = read_sam_records(src)
        h, w = int(doc["height"]), int(doc["width"])
        rles = [r["segmentation"] for r in doc["masks"]]
        levels = np.asarray([r.get("level", -1) for r in doc["masks"]], dtype=np.int8)
        areas = np.asarray([int(r["area"]) for r in doc["masks"]], dtype=np.int64)
        image = read_image_rgb(image_path(image_id))
        panel = _level_strip(image, rle_source(rles, h, w), levels, areas, 0.6)
        dst = Path(show_dir) / f"{image_id}.png"
        save_png(dst, panel)
        written.append(dst)
    return written
