"""Per-image CAM files (``<image_id>.npz``), key names compatible with FMA-WSSS.

Keys: ``cam`` float32 (K, h, w; float16 when written with ``cam_dtype="float16"``) at patch
resolution of the 16-aligned image; ``fg_cls`` int16 (K,) **dataset class ids** (1..C-1,
background is 0); ``fg_logit`` float32 (K,); ``all_logit`` float32 (F,) logits of all
foreground classes; ``ori_size`` int32 (2,) = (H, W) of the original image; optional ``att``
float16 (h*w, h*w); ``format_version`` int (fma files only).

Files written by the original FMA-WSSS code have no ``format_version`` key and store ``fg_cls``
as 0-based foreground ids; :func:`load_cam` shifts those by one so callers always see dataset ids.
Loading never unpickles (``allow_pickle=False``).

Shape rule (:func:`cam_fits`, :func:`check_cam_size`): the CAM of an H x W image is a patch grid
of the image with one stride on both sides. ``tools/test.py`` resizes the image up to multiples
of 16 (method-fma 6.1) and stores the grid of that input: (ceil(H/16), ceil(W/16)) for 16-pixel
patches, ``16 / p`` times that for p-pixel patches (the demo's tiny CLIP has 8; test-time
augmentation fuses onto the same grid). A model fed the image rounded up to its own patch size p
gives (ceil(H/p), ceil(W/p)); p = 1 is a CAM at full resolution (H, W), as the authors' refined
CAMs may be stored. Any other shape would be stretched onto the image, so :func:`load_cam`
refuses a CAM that does not fit its own ``ori_size``, and readers that know the image size (the
seeding stage: the masks' size) check files without one.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from fma.io.atomic import atomic_path

__all__ = [
    "CAM_ALIGN",
    "CAM_DTYPES",
    "CAM_PATCH_SIZES",
    "FORMAT",
    "VERSION",
    "CamError",
    "CamRecord",
    "cam_fits",
    "cam_grid_sizes",
    "check_cam_size",
    "load_cam",
    "save_cam",
]

FORMAT = "cams"
VERSION = 1
CAM_DTYPES = ("float32", "float16")  # float32 as the original stores CAMs before seeding
#: Sides of the CAM writer's input are rounded up to a multiple of this (method-fma 6.1).
CAM_ALIGN = 16
#: Patch sizes (dividing :data:`CAM_ALIGN`) whose grids a CAM may have: ViT-B/16 first.
CAM_PATCH_SIZES = (16, 8, 4, 2, 1)


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


def cam_grid_sizes(image_size: tuple[int, int]) -> list[tuple[int, int]]:
    """The ``(h, w)`` a CAM of an ``H x W`` image may have, the 16-pixel patch grid first.

    ``(ceil(H/16) * 16 / p, ceil(W/16) * 16 / p)`` for every p in :data:`CAM_PATCH_SIZES`, then
    ``(H, W)`` (full resolution), without repeats; e.g. ``(375, 500)`` gives ``(24, 32)``,
    ``(48, 64)``, ..., ``(384, 512)``, ``(375, 500)``.
    """
    H, W = (int(v) for v in image_size)
    if H <= 0 or W <= 0:
        raise ValueError(f"image size must be positive, got {tuple(image_size)}")
    ah, aw = -(-H // CAM_ALIGN) * CAM_ALIGN, -(-W // CAM_ALIGN) * CAM_ALIGN
    sizes = [(ah // p, aw // p) for p in CAM_PATCH_SIZES] + [(H, W)]
    return list(dict.fromkeys(sizes))


def cam_fits(grid: tuple[int, int], image_size: tuple[int, int]) -> bool:
    """Whether a CAM of spatial size ``grid`` = (h, w) is a patch grid of an (H, W) image.

    True for the sizes of :func:`cam_grid_sizes` (the image rounded up to multiples of 16, then
    p-pixel patches) and for ``(ceil(H/p), ceil(W/p))`` with one integer stride p >= 1 on both
    sides (the image rounded up to multiples of p; p = 1 is the image size).
    """
    h, w = (int(v) for v in grid)
    H, W = (int(v) for v in image_size)
    if (h, w) in cam_grid_sizes((H, W)):
        return True
    if not (0 < h <= H and 0 < w <= W):
        return False
    p = -(-H // h)  # the smallest stride with ceil(H / p) == h; larger ones while it holds
    while -(-H // p) == h and p <= max(H, W):
        if -(-W // p) == w:
            return True
        p += 1
    return False


def check_cam_size(
    rec: CamRecord,
    image_size: tuple[int, int] | None = None,
    *,
    path: str | os.PathLike,
    source: str = "",
) -> None:
    """Refuse a CAM whose (h, w) is not a patch grid of its image (see :func:`cam_fits`).

    Args:
        rec: the CAM record; ``rec.cam`` is (K, h, w).
        image_size: ``(H, W)`` of the image; None uses ``rec.ori_size`` (nothing to check
            when that is None too).
        path: the CAM file, named in the error.
        source: where ``image_size`` comes from, for the message (default: ``ori_size``).

    Raises:
        CamError: one line naming the file, the CAM's shape and the expected shape.
    """
    size = image_size if image_size is not None else rec.ori_size
    if size is None:
        return
    H, W = (int(v) for v in size)
    shape = tuple(int(v) for v in np.shape(rec.cam))
    if H <= 0 or W <= 0:
        raise CamError(f"{path}: image size {(H, W)} is not positive; rewrite the CAM file")
    if len(shape) == 3 and cam_fits(shape[1:], (H, W)):
        return
    sizes = cam_grid_sizes((H, W))
    k = shape[0] if shape else 0
    (gh, gw), (fh, fw) = sizes[0], sizes[1]
    where = source or ("its ori_size" if image_size is None else "the image")
    raise CamError(
        f"{path}: CAM of shape {shape} does not fit the {H}x{W} (HxW) image ({where}): expected "
        f"{(k, gh, gw)} (16-pixel patches of the image rounded up to a multiple of 16; "
        f"{(k, fh, fw)} for 8-pixel patches) or {(k, H, W)} at full resolution. It would be "
        "stretched onto the image: the CAM belongs to another image or was resized; rerun "
        "tools/test.py --out for it"
    )


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
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise CamError(f"{path}: a single .npy array, not a CAM .npz; rewrite the CAM file")
        with npz:
            wanted = [*names, "att"] if with_att else names
            z = {k: npz[k] for k in wanted if k in npz.files}
            keys = sorted(npz.files)
        if "cam" not in z or "fg_cls" not in z:
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
    except (OSError, ValueError, TypeError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        if isinstance(exc, CamError):
            raise
        raise CamError(f"{path}: unreadable CAM file ({exc}); delete it and re-run") from exc
    if rec.cam.ndim != 3 or rec.cam.shape[0] != rec.fg_cls.shape[0]:
        raise CamError(
            f"{path}: cam shape {rec.cam.shape} does not match fg_cls {rec.fg_cls.shape}"
        )
    if rec.ori_size is not None and len(rec.ori_size) != 2:
        raise CamError(f"{path}: ori_size {rec.ori_size} is not (H, W); rewrite the CAM file")
    check_cam_size(rec, path=path)
    return rec
