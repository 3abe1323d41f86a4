"""SAM mask files, format version 2 (run lengths as arrays in a NumPy ``.npz``), and what
every mask file shares: the format name :data:`FORMAT`, :class:`SamMaskError`, the file names
(:data:`MASK_SUFFIXES`, :data:`FILE_FORMATS`, :func:`find_mask_file`, :func:`mask_file_id`),
and :func:`is_mask_npz`, which tells the versions apart by content.

The bottom module of :mod:`fma.io.masks`: it imports only :mod:`fma.io.masks.counts` and
:mod:`fma.io.atomic`; :mod:`fma.io.masks.records` (version 1, records, dispatch) and
:mod:`fma.io.masks.runs` build on it, so the seeding stages read a version-2 file into runs
through three modules (``runs``, ``npz``, ``counts``).

Why a second version: reading a version-1 file (gzip'd JSON holding COCO compressed-RLE
strings, :mod:`fma.io.masks.records`) into runs takes 4-6 ms per VOC-size image at 155 masks
(inflating, parsing the JSON, decoding the counts strings), more than SEPL itself; this layout
takes about 1.5 ms (``benchmarks/seeding.py``, "read" rows). Version 1 stays readable and writable
(``file_format="json.gz"``) for tools that want segment-anything's JSON records.

File ``<image_id>.npz``, a zip of ``.npy`` members (deflated), read with
``np.load(path, allow_pickle=False)`` (nothing is unpickled)::

    header  0-d str       JSON {"format": "sam_masks", "version": 2, "image_id": str,
                          "height": H, "width": W}
    counts  (V,) uint32   COCO uncompressed-RLE run lengths of all masks, mask after mask: each
                          mask's lengths alternate background / foreground over its pixels in
                          column-major order (flat index x * H + y), start with background
                          (possibly 0) and add up to H * W
    masks   (K,) records  per mask: counts_end uint64 (mask k's lengths are
                          counts[counts_end[k - 1]:counts_end[k]]), area int64, bbox (4,)
                          float64 XYWH, predicted_iou float64, stability_score float64,
                          crop_box (4,) float64 XYWH, level int8, points_end uint64
    points  (P, 2) float64  the masks' ``point_coords`` (x, y), mask after mask (``points_end``)

A version-1 record round-trips exactly: :func:`fma.io.masks.records.read_sam_records` gives
back the same numbers and the same compressed counts strings (re-encoded by pycocotools). Equal
records give equal bytes (numpy writes every zip member with the fixed 1980 timestamp).

Reading is plain ``np.load``: a hand-written zip and ``.npy`` header reader saved about 0.3 ms
per mask file (0.55 vs 0.86 ms at 155 masks) and 0.16 ms per CAM file, 3-7 % of the seeding
tools' end-to-end CPU time (``benchmarks/seeding.py``, 40 mini-VOC images), not worth a second
zip reader to maintain.

Uncompressed ``uint32`` lengths, deflated, make files a little larger than version 1's gzip'd
strings on real VOC superpixel masks (34 vs 29 kB per image at 158 masks, all members) and need
one ``cumsum`` to become runs; byte-shuffled lengths deflate 20 % smaller but take twice as long
to restore.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fma.io.atomic import write_bytes_atomic
from fma.io.masks.counts import checked_prefix, decode_counts

__all__ = [
    "FILE_FORMATS",
    "FORMAT",
    "MASK_SUFFIXES",
    "MASK_TABLE_DTYPE",
    "NPZ_VERSION",
    "SamMaskError",
    "files_by_suffix",
    "find_mask_file",
    "is_mask_npz",
    "mask_file_id",
    "mask_suffix",
    "read_npz_arrays",
    "save_mask_npz",
]

#: The ``format`` name of every fma mask file (and of its folder's ``manifest.json``).
FORMAT = "sam_masks"
NPZ_VERSION = 2
#: File-name endings of an image's mask file, in lookup order: version 2, gzip'd JSON, JSON.
MASK_SUFFIXES = (".npz", ".json.gz", ".json")
#: The ``file_format`` names of the writers and the suffix each writes.
FILE_FORMATS = {"npz": ".npz", "json.gz": ".json.gz", "json": ".json"}
#: The per-mask record of the ``masks`` member.
MASK_TABLE_DTYPE = np.dtype(
    [
        ("counts_end", "<u8"),
        ("area", "<i8"),
        ("bbox", "<f8", (4,)),
        ("predicted_iou", "<f8"),
        ("stability_score", "<f8"),
        ("crop_box", "<f8", (4,)),
        ("level", "i1"),
        ("points_end", "<u8"),
    ]
)
_ZIP_MAGIC = b"PK\x03\x04"
_MEMBERS = ("header", "counts", "masks", "points")


class SamMaskError(ValueError):
    """A SAM mask file is unreadable or inconsistent."""


def mask_file_id(path: str | os.PathLike) -> str:
    """The image id of a mask file name: ``a.npz``, ``a.json.gz`` and ``a.json`` -> ``a``."""
    name = Path(path).name
    for suffix in MASK_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def find_mask_file(folder: str | os.PathLike, image_id: str) -> Path | None:
    """The mask file of ``image_id`` in ``folder``: the first of :data:`MASK_SUFFIXES` found.

    Returns:
        The first existing file in :data:`MASK_SUFFIXES` order, or None when there is none.
    """
    folder = Path(folder)
    for suffix in MASK_SUFFIXES:
        path = folder / f"{image_id}{suffix}"
        if path.is_file():
            return path
    return None


def files_by_suffix(folder: str | os.PathLike, image_ids: Sequence[str]) -> dict[str, int]:
    """How many of ``image_ids`` have their mask file (:func:`find_mask_file`) in ``folder``,
    per suffix; suffixes without files are left out."""
    counts = dict.fromkeys(MASK_SUFFIXES, 0)
    for image_id in image_ids:
        path = find_mask_file(folder, image_id)
        if path is not None:
            counts[next(s for s in MASK_SUFFIXES if path.name.endswith(s))] += 1
    return {s: n for s, n in counts.items() if n}


def mask_suffix(file_format: str) -> str:
    """The suffix a writer of ``file_format`` (a key of :data:`FILE_FORMATS`) uses.

    Raises:
        ValueError: an unknown format name (the message lists the known ones).
    """
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {sorted(FILE_FORMATS)}, got {file_format!r}")
    return FILE_FORMATS[file_format]


def is_mask_npz(path: str | os.PathLike) -> bool:
    """True when the file starts with the zip magic bytes (a version-2 file, whatever its name)."""
    with open(path, "rb", buffering=0) as f:
        return f.read(4) == _ZIP_MAGIC


def _error(path: Path, what: str) -> SamMaskError:
    return SamMaskError(f"{path}: {what}; delete it and re-run tools/gen_sam_masks.py")


def _counts_of(
    records: list[dict[str, Any]], shape: tuple[int, int], path: Path
) -> tuple[np.ndarray, list[int]]:
    """(V,) int64 run lengths of all records (checked against ``shape``) and each record's
    number of lengths."""
    strings = [r["segmentation"]["counts"] for r in records]
    if all(isinstance(c, (str, bytes)) for c in strings):
        values, offsets = decode_counts(strings)
    else:  # uncompressed (list) counts, possibly mixed with strings
        parts = [
            decode_counts([c])[0] if isinstance(c, (str, bytes)) else np.asarray(c, np.int64)
            for c in strings
        ]
        values = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        offsets = np.zeros(len(parts) + 1, np.int64)
        np.cumsum([p.size for p in parts], out=offsets[1:])
    try:
        checked_prefix(values, offsets, shape)
    except ValueError as exc:
        raise _error(path, str(exc)) from exc
    return values, np.diff(offsets).tolist()


def save_mask_npz(
    path: str | os.PathLike, image_id: str, height: int, width: int, records: list[dict[str, Any]]
) -> None:
    """Write one image's mask records as a version-2 file, atomically.

    Args:
        path: the ``.npz`` file.
        image_id: the image id (stored in the header).
        height, width: the image size; every record's ``segmentation.size`` must be it.
        records: version-1 records (:func:`fma.io.masks.records.make_record`); ``counts`` as a
            compressed string or an uncompressed list.
    """
    path = Path(path)
    values, per_mask = _counts_of(records, (int(height), int(width)), path)
    if values.size and values.max() >= 2**32:
        raise _error(path, "an RLE count does not fit in 32 bits")
    k = len(records)
    table = np.zeros(k, dtype=MASK_TABLE_DTYPE)
    table["counts_end"] = np.cumsum(per_mask, dtype=np.uint64)
    points = [list(r.get("point_coords") or []) for r in records]
    table["points_end"] = np.cumsum([len(p) for p in points], dtype=np.uint64)
    if k:
        table["area"] = [int(r["area"]) for r in records]
        table["bbox"] = [[float(v) for v in r["bbox"]] for r in records]
        table["predicted_iou"] = [float(r.get("predicted_iou", 1.0)) for r in records]
        table["stability_score"] = [float(r.get("stability_score", 1.0)) for r in records]
        table["crop_box"] = [
            [float(v) for v in (r.get("crop_box") or [0, 0, width, height])] for r in records
        ]
        table["level"] = [int(r.get("level", -1)) for r in records]
    flat_points = [[float(x), float(y)] for p in points for x, y in p]
    header = {"format": FORMAT, "version": NPZ_VERSION, "image_id": str(image_id),
              "height": int(height), "width": int(width)}  # fmt: skip
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        header=np.array(json.dumps(header)),
        counts=values.astype("<u4"),
        masks=table,
        points=np.asarray(flat_points, dtype="<f8").reshape(-1, 2),
    )
    write_bytes_atomic(path, buf.getvalue())


def read_npz_arrays(
    path: str | os.PathLike, *, points: bool = False
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray | None]:
    """Read and check a version-2 file (``np.load(path, allow_pickle=False)``).

    Args:
        path: the ``.npz`` file.
        points: also read the ``points`` member (the seeding stages do not need it).

    Returns:
        ``(header, counts, masks, points)``: the header dict, (V,) uint32 run lengths, the
        (K,) :data:`MASK_TABLE_DTYPE` table, and (P, 2) float64 points (None unless asked).

    Raises:
        FileNotFoundError: no such file.
        SamMaskError: not a zip of the four members, wrong format or version, an image id that
            is not the file name's, or counts / tables that do not fit together (names the file).
            Whether every mask's run lengths cover the image is checked by the readers of the
            lengths (:func:`fma.io.masks.runs.load_mask_runs`,
            :func:`fma.io.masks.records.read_sam_records`), which add them up anyway.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SAM mask file not found; run tools/gen_sam_masks.py")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not a zip of members")
        with z:
            wanted = _MEMBERS if points else _MEMBERS[:3]
            members = {m: z[m] for m in wanted if m in z.files}
            missing = [m for m in _MEMBERS if m not in z.files]
        header = json.loads(str(members["header"][()])) if "header" in members else None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise _error(path, f"unreadable mask file ({exc})") from exc
    if missing:
        raise _error(path, f"not an fma mask file (members {missing} missing)")
    counts, table = members["counts"], members["masks"]
    pts = members["points"] if points else None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _error(path, "not an fma SAM mask file (its header names another format)")
    if header.get("version") != NPZ_VERSION:
        raise _error(path, f"mask format version {header.get('version')!r} in an .npz file")
    stored, named = str(header.get("image_id")), mask_file_id(path)
    if stored != named:
        raise _error(path, f"holds the masks of image {stored!r}, but its name says {named!r}")
    h, w = header.get("height"), header.get("width")
    if not (isinstance(h, int) and isinstance(w, int) and h >= 0 and w >= 0):
        raise _error(path, f"header size {h}x{w} is not two non-negative integers")
    if counts.dtype != np.dtype("<u4") or counts.ndim != 1:
        raise _error(path, f"counts are {counts.dtype} {counts.shape}, expected (V,) uint32")
    if table.dtype != MASK_TABLE_DTYPE or table.ndim != 1:
        raise _error(path, "the masks table has other fields than this fma writes")
    ends = table["counts_end"]
    if ends.size and (np.any(np.diff(ends.astype(np.int64)) < 0) or int(ends[-1]) != counts.size):
        raise _error(path, "the masks' counts_end do not partition the counts")
    if not ends.size and counts.size:
        raise _error(path, "counts without masks")
    if pts is not None and (pts.ndim != 2 or pts.shape[1] != 2 or pts.dtype != np.float64):
        raise _error(path, f"points are {pts.dtype} {pts.shape}, expected (P, 2) float64")
    pend = table["points_end"]
    if pts is not None and pend.size and int(pend[-1]) != pts.shape[0]:
        raise _error(path, "the masks' points_end do not partition the points")
    return header, counts, table, pts
