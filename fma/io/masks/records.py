"""SAM mask files, one per image: version 1 (JSON with COCO compressed RLE) and version 2 (.npz).

Three file formats (:data:`FILE_FORMATS`): ``npz`` writes ``<image_id>.npz``, version 2 (the
run lengths as arrays, read without parsing; :mod:`fma.io.masks.npz`, the default of the mask
stage); ``json.gz`` and ``json`` write ``<image_id>.json.gz`` / ``<image_id>.json``, version 1,
the same JSON document, ``.json.gz`` its gzip compression (deterministic: header mtime 0,
compression level :data:`GZIP_LEVEL`)::

    {"format": "sam_masks", "version": 1, "image_id": str, "height": H, "width": W,
     "masks": [record, ...]}

Each record uses segment-anything's own keys: ``segmentation`` (COCO compressed RLE
``{"size": [H, W], "counts": str}``), ``area`` (int), ``bbox`` (XYWH), ``predicted_iou``,
``stability_score``, ``point_coords`` ([[x, y]]), ``crop_box`` (XYWH), plus ``level``
(0 = sub-part, 1 = part, 2 = whole; -1 when the source has no levels). The folder carries a
``manifest.json`` of format ``sam_masks``.

Writing: :func:`save_sam_masks` writes version 2 when the path ends with ``.npz`` and gzips
exactly when it ends with ``.gz``. Reading: :func:`read_sam_records` recognises a version-2
file by its zip magic bytes and gzip by its magic bytes, not by the name, so a gzip'd file named
``.json`` and a plain file named ``.json.gz`` both read; a version-2 file reads as the
equivalent version-1 document. Locating: an image's file is found with :func:`find_mask_file`,
which tries :data:`MASK_SUFFIXES` in order (``.npz``, ``.json.gz``, ``.json``), so folders of
any version (or a mix) stay readable.

The names every mask file shares (:data:`FORMAT`, :class:`SamMaskError`, :data:`MASK_SUFFIXES`,
:func:`mask_file_id`) live in :mod:`fma.io.masks.npz`, the bottom module, and are importable
from here too. pycocotools is imported lazily, inside the RLE functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import itertools
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fma.io.atomic import write_bytes_atomic, write_json_atomic
from fma.io.masks.counts import checked_prefix
from fma.io.masks.npz import (
    FILE_FORMATS,
    FORMAT,
    MASK_SUFFIXES,
    NPZ_VERSION,
    SamMaskError,
    _error,
    files_by_suffix,
    find_mask_file,
    is_mask_npz,
    mask_file_id,
    mask_suffix,
    read_npz_arrays,
    save_mask_npz,
)

__all__ = [
    "FILE_FORMATS",
    "FORMAT",
    "GZIP_LEVEL",
    "MASK_SUFFIXES",
    "VERSION",
    "SamMaskError",
    "SamMasks",
    "compress_rle",
    "decode_rle",
    "encode_rle",
    "files_by_suffix",
    "find_mask_file",
    "load_sam_masks",
    "make_record",
    "mask_file_id",
    "mask_suffix",
    "max_decode_bytes",
    "open_json_bytes",
    "read_json_file",
    "read_sam_records",
    "save_sam_masks",
]

#: The version of the JSON files (version 2, ``.npz``: :data:`fma.io.masks.npz.NPZ_VERSION`).
VERSION = 1
#: zlib level of the ``.json.gz`` files: 9 is 1-3 % smaller than 6 at 2-3 times the
#: compression time, which stays under 15 ms for 500 masks, far below mask generation.
GZIP_LEVEL = 9
_GZIP_MAGIC = b"\x1f\x8b"
#: Environment variable: the most memory (MiB) one image's decoded (K, H, W) mask stack may take.
MAX_DECODE_ENV = "FMA_MAX_DECODE_MB"
_DEFAULT_MAX_DECODE_MB = 4096


def max_decode_bytes() -> int:
    """Limit on the bytes of one image's decoded mask stack (``FMA_MAX_DECODE_MB``, MiB).

    Decoding K masks of H x W pixels takes K * H * W bytes (twice that while pycocotools'
    output is transposed); pycocotools does not check its allocation, so a stack beyond the
    machine's memory crashes the process instead of raising. Default 4096 MiB.
    """
    raw = os.environ.get(MAX_DECODE_ENV, "")
    try:
        mb = float(raw) if raw.strip() else _DEFAULT_MAX_DECODE_MB
    except ValueError:
        raise ValueError(f"{MAX_DECODE_ENV}={raw!r}: expected a number of MiB") from None
    return int(mb * 2**20)


@contextlib.contextmanager
def open_json_bytes(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Binary stream of a file's JSON text, gunzipped when the file starts with gzip's magic.

    The content decides, not the name. Errors (OSError, EOFError, zlib.error) come from
    ``open`` / ``read`` as Python raises them.
    """
    with open(path, "rb") as f:
        gzipped = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not gzipped:
            yield f
            return
        with gzip.GzipFile(fileobj=f) as gz:
            yield gz


def read_json_file(path: str | os.PathLike) -> Any:
    """Parse a JSON file, gunzipping it first when it starts with the gzip magic bytes.

    The content decides, not the name: a plain file named ``.json.gz`` and a gzip'd file
    named ``.json`` both read (:func:`open_json_bytes`).

    Raises:
        FileNotFoundError: no such file.
        SamMaskError: unreadable, truncated or corrupt gzip, or invalid JSON (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SAM mask file not found; run tools/gen_sam_masks.py")
    try:
        with open_json_bytes(path) as f:
            return json.loads(f.read())
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise SamMaskError(f"{path}: unreadable mask file ({exc}); delete it and re-run") from exc


def _mask_utils() -> Any:
    try:
        from pycocotools import mask as mask_utils
    except ImportError as exc:  # pragma: no cover - pycocotools is a core dependency
        raise ImportError("SAM mask RLE needs pycocotools: pip install pycocotools") from exc
    return mask_utils


def encode_rle(masks: np.ndarray) -> list[dict[str, Any]]:
    """Encode (K, H, W) bool masks as COCO compressed RLE dicts with str ``counts``."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    rles = _mask_utils().encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
        rle["size"] = [int(s) for s in rle["size"]]
    return rles


def compress_rle(rles: list[dict[str, Any]], height: int, width: int) -> list[dict[str, Any]]:
    """COCO uncompressed RLE dicts (``counts`` a list of run lengths) -> compressed, str counts."""
    if not rles:
        return []
    coded = _mask_utils().frPyObjects(rles, height, width)
    return [
        {"size": [int(height), int(width)], "counts": c["counts"].decode("ascii")} for c in coded
    ]


def _as_bytes(rles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The RLE dicts with str ``counts`` as the ASCII bytes pycocotools takes."""
    return [{"size": list(r["size"]), "counts": r["counts"].encode("ascii")}
            if isinstance(r["counts"], str) else r for r in rles]  # fmt: skip


def decode_rle(rles: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Decode COCO compressed RLE dicts into a (K, H, W) bool array (C-contiguous)."""
    if not rles:
        return np.zeros((0, height, width), dtype=bool)
    coded = _as_bytes(rles)
    dense = _mask_utils().decode(coded)  # (H, W, K) uint8, Fortran order
    return np.ascontiguousarray(dense.transpose(2, 0, 1)).astype(bool, copy=False)


def _rle_areas(rles: list[dict[str, Any]]) -> np.ndarray:
    """(K,) int64 pixel counts straight from the RLE (no dense pass)."""
    if not rles:
        return np.zeros(0, dtype=np.int64)
    coded = _as_bytes(rles)
    # pycocotools' area() overflows a uint8 counter under numpy 2 for more than 255 RLEs.
    area = _mask_utils().area
    parts = [
        np.asarray(area(coded[i : i + 255]), dtype=np.int64) for i in range(0, len(coded), 255)
    ]
    return np.concatenate(parts).reshape(-1)


def make_record(
    rle: dict[str, Any],
    *,
    area: int,
    bbox: list[float],
    predicted_iou: float = 1.0,
    stability_score: float = 1.0,
    point_coords: list[list[float]] | None = None,
    crop_box: list[float] | None = None,
    level: int = -1,
) -> dict[str, Any]:
    """Build one mask record with the format's keys and plain-Python values."""
    h, w = rle["size"]
    return {
        "segmentation": rle,
        "area": int(area),
        "bbox": [float(v) for v in bbox],
        "predicted_iou": float(predicted_iou),
        "stability_score": float(stability_score),
        "point_coords": [[float(x), float(y)] for x, y in (point_coords or [])],
        "crop_box": [float(v) for v in (crop_box or [0, 0, w, h])],
        "level": int(level),
    }


def save_sam_masks(
    path: str | os.PathLike, image_id: str, height: int, width: int, records: list[dict[str, Any]]
) -> None:
    """Write one image's mask records atomically (the file appears complete or not at all).

    The file is version 2 when ``path`` ends with ``.npz`` (:func:`fma.io.masks.npz.save_mask_npz`),
    gzip'd JSON when it ends with ``.gz`` (level :data:`GZIP_LEVEL`, header mtime 0, so equal
    records give equal bytes), plain JSON otherwise.
    """
    for i, rec in enumerate(records):
        if list(rec["segmentation"]["size"]) != [height, width]:
            raise SamMaskError(
                f"{path}: mask {i} has size {rec['segmentation']['size']}, "
                f"image is {[height, width]}"
            )
    if os.fspath(path).endswith(".npz"):
        save_mask_npz(path, image_id, height, width, records)
        return
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "image_id": image_id,
        "height": int(height),
        "width": int(width),
        "masks": records,
    }
    if os.fspath(path).endswith(".gz"):
        text = json.dumps(doc, indent=None, allow_nan=False) + "\n"
        data = gzip.compress(text.encode("utf-8"), compresslevel=GZIP_LEVEL, mtime=0)
        write_bytes_atomic(path, data)
    else:
        write_json_atomic(path, doc, indent=None)


def read_sam_records(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a mask file: version 2, or plain or gzip'd JSON (:func:`read_json_file`).

    Checks the format name and version, and that the stored ``image_id`` is the file name's.

    Returns:
        The JSON document (records stay RLE-encoded); a version-2 file gives the equivalent
        document (:func:`_npz_records`, ``"version": 2``).
    """
    path = Path(path)
    if path.is_file() and is_mask_npz(path):
        return _npz_records(path)
    doc = read_json_file(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise SamMaskError(f"{path}: not an fma SAM mask file (format {found!r})")
    if doc.get("version") != VERSION:
        raise SamMaskError(
            f"{path}: mask format version {doc.get('version')!r}, this fma reads {VERSION}"
        )
    stored, named = doc.get("image_id"), mask_file_id(path)
    if stored is not None and str(stored) != named:
        raise SamMaskError(
            f"{path}: holds the masks of image {stored!r}, but its name says {named!r} (a file "
            "copied or renamed by hand?); regenerate it with tools/gen_sam_masks.py"
        )
    return doc


def _npz_records(path: Path) -> dict[str, Any]:
    """A version-2 file as the version-1 document (records with compressed counts strings).

    For the readers that work on records (panels, format conversion); the seeding stages read
    runs straight from the arrays (:func:`fma.io.masks.runs.load_mask_runs`).
    """
    header, counts, table, pts = read_npz_arrays(path, points=True)
    h, w = header["height"], header["width"]
    offsets = np.zeros(table.shape[0] + 1, dtype=np.int64)
    offsets[1:] = table["counts_end"]
    try:
        checked_prefix(counts, offsets, (h, w))  # pycocotools would not check
    except ValueError as exc:
        raise _error(path, f"corrupt mask record ({exc})") from exc
    bounds, values = offsets.tolist(), counts.tolist()
    rles = [{"size": [h, w], "counts": values[a:b]} for a, b in itertools.pairwise(bounds)]
    coded = compress_rle(rles, h, w)
    pb = [0, *table["points_end"].astype(np.int64).tolist()]
    assert pts is not None
    records = [
        {"segmentation": coded[i], "area": int(row["area"]),
         "bbox": [float(v) for v in row["bbox"]], "predicted_iou": float(row["predicted_iou"]),
         "stability_score": float(row["stability_score"]),
         "point_coords": pts[pb[i] : pb[i + 1]].tolist(),
         "crop_box": [float(v) for v in row["crop_box"]], "level": int(row["level"])}
        for i, row in enumerate(table)
    ]  # fmt: skip
    return {"format": FORMAT, "version": NPZ_VERSION, "image_id": header["image_id"],
            "height": h, "width": w, "masks": records}  # fmt: skip


@dataclasses.dataclass
class SamMasks:
    """Decoded masks of one image."""

    masks: np.ndarray  # (K, H, W) bool
    levels: np.ndarray  # (K,) int8, 0 sub-part / 1 part / 2 whole, -1 unknown
    predicted_iou: np.ndarray  # (K,) float32
    stability_score: np.ndarray  # (K,) float32
    areas: np.ndarray  # (K,) int64, pixel counts
    image_id: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    def __len__(self) -> int:
        return int(self.masks.shape[0])


def load_sam_masks(path: str | os.PathLike) -> SamMasks:
    """Read a mask file and decode every mask (at most :func:`max_decode_bytes` of them).

    Returns:
        :class:`SamMasks` with (K, H, W) bool masks in file order.
    """
    doc = read_sam_records(path)
    recs = doc["masks"]
    h, w = int(doc["height"]), int(doc["width"])
    need, limit = len(recs) * h * w, max_decode_bytes()
    if need > limit:
        raise SamMaskError(
            f"{path}: decoding its {len(recs)} masks of {w}x{h} px needs {need / 2**20:.0f} MiB, "
            f"above the limit of {limit / 2**20:.0f} MiB ({MAX_DECODE_ENV}); make fewer masks "
            f"or downscale the image, or raise {MAX_DECODE_ENV} if the machine has the memory"
        )
    try:
        rles = [r["segmentation"] for r in recs]
        # pycocotools sizes its output by the first record and writes every record into it
        # unchecked: a record of another size would overrun the buffer (a crash, not an error)
        bad = next((i for i, r in enumerate(rles) if list(r["size"]) != [h, w]), None)
        if bad is not None:
            raise SamMaskError(
                f"{path}: mask {bad} has size {rles[bad]['size']}, the file's header says "
                f"{[h, w]}; delete the file and re-run tools/gen_sam_masks.py"
            )
        masks = decode_rle(rles, h, w)
        areas = _rle_areas(rles)
    except (KeyError, TypeError, ValueError) as exc:
        raise SamMaskError(f"{path}: corrupt mask record ({exc}); delete it and re-run") from exc
    if masks.shape[1:] != (h, w):
        raise SamMaskError(f"{path}: masks are {masks.shape[1:]}, header says {(h, w)}")

    def col(key: str, dtype: Any, default: float) -> np.ndarray:
        return np.asarray([r.get(key, default) for r in recs], dtype=dtype).reshape(-1)

    return SamMasks(
        masks=masks,
        levels=col("level", np.int8, -1),
        predicted_iou=col("predicted_iou", np.float32, 1.0),
        stability_score=col("stability_score", np.float32, 1.0),
        areas=areas,
        image_id=str(doc.get("image_id", mask_file_id(path))),
    )
