"""Which mask layout a mask root holds for an image, and loading from whichever it is.

A mask root holds fma's own ``sam_masks`` files, ``<image_id>.npz``, ``.json.gz`` or ``.json``
(:func:`fma.io.masks.records.find_mask_file` order), or segment-anything ``amg.py`` outputs
(:mod:`fma.io.masks.amg`): a JSON list per image (``--convert-to-rle``) or a folder of mask
PNGs. :func:`mask_layout` tells fma files from amg.py's JSON lists by content.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from fma.io.masks.amg import _with_size, read_amg_folder, read_amg_json
from fma.io.masks.records import (
    MASK_SUFFIXES,
    SamMaskError,
    SamMasks,
    find_mask_file,
    load_sam_masks,
    mask_file_id,
    open_json_bytes,
)

__all__ = ["detect_amg_layout", "load_masks_any", "mask_layout"]


def _json_kind(path: Path) -> str:
    """``amg_coco_rle`` for a JSON list (amg.py), else ``fma`` (an object, or a version-2 zip).

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

    An fma mask file (``<id>.npz``, ``<id>.json.gz``, ``<id>.json``, the first found by
    :func:`fma.io.masks.records.find_mask_file`) wins over a folder ``<id>/``.

    Returns:
        (kind, path) with kind ``"fma"`` (an fma ``sam_masks`` file), ``"amg_coco_rle"``
        (amg.py JSON list) or ``"amg_folder"`` (amg.py PNG folder).

    Raises:
        FileNotFoundError: neither a mask file ``<root>/<id>.*`` nor ``<root>/<id>/`` exists.
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
        between the mask files ``<id>.*`` and ``<id>/``). ``manifest.json`` and hidden
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
