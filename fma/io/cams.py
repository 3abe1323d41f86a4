"""Per-image CAM files (``<image_id>.npz``), key names compatible with FMA-WSSS.

Keys: ``cam`` float32 (K, h, w; float16 when written with ``cam_dtype="float16"``) at patch
resolution of the 16-aligned image; ``fg_cls`` int16 (K,) **dataset class ids** (1..C-1,
background is 0); ``fg_logit`` float32 (K,); ``all_logit`` float32 (F,) logits of all
foreground classes; ``ori_size`` int32 (2,) = (H, W) of the original image; optional ``att``
float16 (h*w, h*w); ``format_version`` int (fma files only).

Files written by the original FMA-WSSS code have no ``format_version`` key and store ``fg_cls``
as 0-based foreground ids; :func:`load_cam` shifts those by one so callers always see dataset ids.
Loading never unpickles (``allow_pickle=False``).
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path

import numpy as np

from fma.io.atomic import atomic_path
from fma.io.npz_members import read_npz

__all__ = ["CAM_DTYPES", "FORMAT", "VERSION", "CamError", "CamRecord", "load_cam", "save_cam"]

FORMAT = "cams"
VERSION = 1
CAM_DTYPES = ("float32", "float16")  # float32 as the original stores CAMs before seeding


class CamError(ValueError):
    """A CAM file is unreadable or inconsistent."""


@dataclasses.dataclass
class CamRecord:
    """One image's CAMs."""

    cam: np.ndarray  # (K, h, w) float (float32 on disk unless saved with cam_dtype="float16")
    fg_cls: np.ndarray  # (K,) int64 dataset class ids, 1..C-1
    fg_logit: np.ndarray | None = None  # (K,) float32
    all_logit: np.ndarray | None = None  # (F,) float32
    ori_size: tuple[int, int] | None = None  # (H, W) of the original image
    att: np.ndarray | None = None  # (h*w, h*w) float16, optional


def save_cam(
    path: str | os.PathLike,
    rec: CamRecord,
    *,
    compress: bool = True,
    cam_dtype: str = "float32",
) -> None:
    """Write a CAM record atomically as ``.npz``.

    ``cam_dtype`` is the on-disk dtype of ``cam``: ``"float32"`` (default, what FMA-WSSS stores
    before seeding) or ``"float16"`` (opt-in, smaller files, CAM values rounded to 11 bits).
    """
    if cam_dtype not in CAM_DTYPES:
        raise ValueError(f"cam_dtype must be one of {CAM_DTYPES}, got {cam_dtype!r}")
    cam = np.asarray(rec.cam)
    fg = np.asarray(rec.fg_cls).reshape(-1)
    if cam.ndim != 3 or cam.shape[0] != fg.shape[0]:
        raise CamError(
            f"{path}: cam must be (K, h, w) with K = len(fg_cls); got {cam.shape}, {fg.shape}"
        )
    if fg.size and fg.min() < 1:
        raise CamError(f"{path}: fg_cls must hold dataset class ids >= 1, got {fg.tolist()}")
    arrays: dict[str, np.ndarray] = {
        "cam": cam.astype(cam_dtype),
        "fg_cls": fg.astype(np.int16),
        "format_version": np.asarray(VERSION, dtype=np.int32),
    }
    if rec.fg_logit is not None:
        arrays["fg_logit"] = np.asarray(rec.fg_logit, dtype=np.float32).reshape(-1)
    if rec.all_logit is not None:
        arrays["all_logit"] = np.asarray(rec.all_logit, dtype=np.float32).reshape(-1)
    if rec.ori_size is not None:
        arrays["ori_size"] = np.asarray(rec.ori_size, dtype=np.int32)
    if rec.att is not None:
        arrays["att"] = np.asarray(rec.att, dtype=np.float16)
    saver = np.savez_compressed if compress else np.savez
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        saver(f, **arrays)


def load_cam(path: str | os.PathLike, *, with_att: bool = False) -> CamRecord:
    """Read a CAM ``.npz`` (fma's or the original FMA-WSSS layout); see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CAM file not found; run tools/test.py with --out")
    names = ["cam", "fg_cls", "format_version", "fg_logit", "all_logit", "ori_size"]
    try:
        z = read_npz(path, [*names, "att"] if with_att else names, writable=True)
        if "cam" not in z or "fg_cls" not in z:
            keys = sorted(read_npz(path))
            raise CamError(f"{path}: CAM file lacks 'cam' or 'fg_cls' (keys: {keys})")
        fg = z["fg_cls"].astype(np.int64).reshape(-1)
        if "format_version" not in z:
            fg = fg + 1  # original FMA-WSSS: 0-based foreground ids
        elif int(z["format_version"]) != VERSION:
            raise CamError(
                f"{path}: CAM format version {int(z['format_version'])}, expected {VERSION}"
            )
        rec = CamRecord(
            cam=z["cam"],
            fg_cls=fg,
            fg_logit=z.get("fg_logit"),
            all_logit=z.get("all_logit"),
            ori_size=tuple(int(v) for v in z["ori_size"]) if "ori_size" in z else None,
            att=z.get("att") if with_att else None,
        )
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, CamError):
            raise
        raise CamError(f"{path}: unreadable CAM file ({exc}); delete it and re-run") from exc
    if rec.cam.ndim != 3 or rec.cam.shape[0] != rec.fg_cls.shape[0]:
        raise CamError(
            f"{path}: cam shape {rec.cam.shape} does not match fg_cls {rec.fg_cls.shape}"
        )
    return rec
