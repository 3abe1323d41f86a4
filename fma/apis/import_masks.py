"""Mask folders into fma mask files: segment-anything ``amg.py`` outputs, or another version.

:func:`import_amg` imports ``amg.py`` outputs (either layout, mixed allowed); :func:`convert_masks`
rewrites a folder of fma mask files in another file format (e.g. version-1 ``.json.gz`` folders
as version-2 ``.npz``, which the seeding stages read 3-5 ms faster per VOC image, or back to
JSON for other tools), keeping every record and the folder's manifest. Both are stage runs over
images (:func:`fma.stage.run_per_image`: resumable, ``workers``), so they live in ``fma.apis``;
the format code they use is :mod:`fma.io.masks.amg`, :mod:`fma.io.masks.records` and
:mod:`fma.io.masks.layout`. ``tools/convert_masks.py`` runs either.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fma.io.manifest import Manifest, producer_info, read_manifest, write_manifest
from fma.io.masks.amg import _bbox_xywh, _num, _parse_amg_records, _read_folder, amg_record
from fma.io.masks.layout import detect_amg_layout, mask_layout
from fma.io.masks.records import FORMAT as SAM_FORMAT
from fma.io.masks.records import VERSION as SAM_VERSION
from fma.io.masks.records import (
    SamMaskError,
    encode_rle,
    files_by_suffix,
    find_mask_file,
    make_record,
    mask_suffix,
    read_json_file,
    read_sam_records,
    save_sam_masks,
)
from fma.stage import run_per_image

__all__ = ["MASK_SOURCE", "convert_masks", "import_amg"]

#: ``params.mask_source`` of a folder written by :func:`import_amg`.
MASK_SOURCE = "amg_import"
#: ``producer.tool`` of its manifest; kept from before the module moved (a stable file field).
PRODUCER = "fma.io.amg.import_amg"


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
    masks, recs, h, w = _parse_amg_records(path, doc)
    out = []
    for i, r in enumerate(recs):
        try:
            out.append(amg_record(r, masks[i], h, w, level=-1))
        except (TypeError, ValueError) as exc:
            raise SamMaskError(f"{path}: mask record {i} has malformed fields ({exc})") from exc
    return out, h, w


def _import_one(image_id: str, src_root: str, out_dir: str, suffix: str) -> None:
    kind, path = mask_layout(src_root, image_id)
    if kind == "amg_folder":
        recs, h, w = _records_from_folder(path)
    elif kind == "fma":  # any version, records as they are
        doc = read_sam_records(path)
        recs, h, w = doc["masks"], int(doc["height"]), int(doc["width"])
    else:
        recs, h, w = _records_from_json(path)
    save_sam_masks(Path(out_dir) / f"{image_id}{suffix}", image_id, h, w, recs)


def _write_all(
    ids: Sequence[str], src: Path, out: Path, suffix: str, workers: int, desc: str, progress: bool
) -> Any:
    """:func:`_import_one` over ``ids``; images with a mask file of any suffix in ``out`` are
    skipped (the resumption rule of both entry points)."""
    return run_per_image(
        ids,
        _import_one,
        (str(src), str(out), suffix),
        output_path=lambda i: find_mask_file(out, i) or out / f"{i}{suffix}",
        workers=workers,
        desc=desc,
        progress=progress,
    )


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
    file_format: str = "npz",
) -> Any:
    """Convert amg.py outputs (either layout, mixed allowed) into fma ``sam_masks`` files.

    Writes ``<out_dir>/<image_id>.npz`` per image (version 2; ``.json.gz`` / ``.json`` with
    ``file_format="json.gz"`` / ``"json"``; masks re-encoded as COCO RLE where needed, ``level``
    -1, scores and boxes from ``metadata.csv`` or the JSON records) and, when every image
    succeeded,
    ``<out_dir>/manifest.json`` (format ``sam_masks``; ``params``: ``mask_source`` =
    ``"amg_import"``, ``src_root``, ``src_layouts``, ``file_suffix``). Images that already have
    a mask file of any suffix are skipped, so an interrupted import resumes.

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
        file_format: ``"npz"`` (default), ``"json.gz"`` or ``"json"`` (see
            :data:`fma.io.masks.records.FILE_FORMATS`).

    Returns:
        :class:`fma.stage.StageReport` (failed images are listed by id with their error).
    """
    found = detect_amg_layout(src_root)
    ids = list(found) if image_ids is None else list(dict.fromkeys(image_ids))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = mask_suffix(file_format)
    report = _write_all(ids, Path(src_root), out, suffix, workers, "import amg masks", progress)
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
                producer=producer_info(PRODUCER),
                params={
                    "mask_source": MASK_SOURCE,
                    "src_root": str(src_root),
                    "src_layouts": layouts,
                    "file_suffix": suffix,
                },
            ),
        )
    return report


def convert_masks(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    file_format: str = "npz",
    image_ids: Sequence[str] | None = None,
    workers: int = 0,
    progress: bool = True,
) -> Any:
    """Rewrite a folder of fma mask files (any version, mixed allowed) in ``file_format``.

    Every record is kept as it is (levels, scores, boxes, points). Images that already have a
    mask file of any suffix in ``out_dir`` are skipped, so an interrupted run resumes. When every
    image succeeded, ``out_dir/manifest.json`` is ``src_dir``'s manifest (dataset, split,
    classes, mask source and settings) with ``file_suffix`` and ``files_by_suffix`` of the new
    folder and ``converted_from`` = ``src_dir`` (a minimal ``sam_masks`` manifest when
    ``src_dir`` has none).

    Args:
        src_dir: folder of fma mask files.
        out_dir: destination folder (not ``src_dir``).
        file_format: ``"npz"`` (default), ``"json.gz"`` or ``"json"``.
        image_ids: ids to convert (default: every mask file of ``src_dir``).
        workers: worker processes (0: this process).
        progress: show a progress bar.

    Returns:
        :class:`fma.stage.StageReport`.

    Raises:
        ValueError: ``out_dir`` is ``src_dir``, an unknown ``file_format``, or ``src_dir`` holds
            amg.py outputs (import those with :func:`import_amg`).
        FileNotFoundError: no such folder, or a requested id without a mask file.
    """
    src, out = Path(src_dir), Path(out_dir)
    suffix = mask_suffix(file_format)
    if out.resolve() == src.resolve():
        raise ValueError(f"{out}: convert into another folder than the source")
    found = detect_amg_layout(src)
    ids = list(found) if image_ids is None else list(dict.fromkeys(image_ids))
    absent = [i for i in ids if i not in found]
    if absent:
        raise FileNotFoundError(f"{src}: no mask file for {len(absent)} ids (e.g. {absent[0]})")
    foreign = [i for i in ids if found[i] != "fma"]
    if foreign:
        raise ValueError(
            f"{src}: {len(foreign)} images hold amg.py outputs, not fma mask files (e.g. "
            f"{foreign[0]}); import them with tools/convert_masks.py --from-amg"
        )
    desc = f"convert masks to {file_format}"
    report = _write_all(ids, src, out, suffix, workers, desc, progress)
    if report.ok:
        old = read_manifest(src, format=SAM_FORMAT, required=False)
        by_suffix = files_by_suffix(out, ids)
        params = dict(old.params) if old is not None and old.params else {}
        params.update(file_suffix=suffix, converted_from=str(src), files_by_suffix=by_suffix)
        write_manifest(
            out,
            Manifest(
                format=SAM_FORMAT,
                version=SAM_VERSION,
                count=sum(by_suffix.values()),
                dataset=old.dataset if old is not None else None,
                split=old.split if old is not None else None,
                class_names=old.class_names if old is not None else None,
                producer=producer_info("fma.apis.import_masks.convert_masks"),
                params=params,
            ),
        )
    return report
