"""COCO preparation: instance annotations into 81-class label PNGs, split lists and labels.

Size (~600 lines): one job, COCO conversion; most lines are the per-file checks and messages.

pycocotools is imported inside :func:`prepare_coco` only. All problems of a run are reported
together, each naming its file (docs/datasets.md). A file of another COCO task (keypoints,
captions, panoptic, stuff, image info) is refused in one line naming what it is
(:func:`coco_file_kind`). COCO 2014 and 2017 share the dataset key ``coco14`` (same 80 classes);
the year is recorded in the label manifest and the image-label file, and a year-suffixed split
(``train2017``) is read as its split (``train``) of that year (:func:`coco_split_year`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fma.datasets.checks import DatasetCheckError, format_class_table
from fma.datasets.labels import (
    image_labels_from_label_map,
    save_image_labels,
)
from fma.datasets.layout import DatasetLayout
from fma.datasets.meta import COCO14, COCO91_TO_81
from fma.io import (
    LabelMapError,
    Manifest,
    producer_info,
    read_label_map,
    read_manifest,
    write_label_map,
    write_manifest,
    write_text_atomic,
)
from fma.stage import map_per_image

__all__ = [
    "COCO_LABEL_FORMAT",
    "VAL_SUBSET_SIZE",
    "CocoPrepareResult",
    "coco_annotation_to_rle",
    "coco_file_kind",
    "coco_split_year",
    "dropped_polygons",
    "prepare_coco",
    "render_coco_label_map",
    "val_subset_ids",
]

COCO_LABEL_FORMAT = "label_maps"
COCO_LABEL_VERSION = 1
#: Images of the in-training validation subset ``ImageSets/val_5000.txt`` (docs/datasets.md 4.3).
VAL_SUBSET_SIZE = 5000
#: COCO releases whose instance annotations this converter reads (the same 80 categories).
COCO_YEARS = (2014, 2017)
_YEAR_SPLIT = re.compile(r"^(train|val)(\d{4})$")
_FILE_YEAR = re.compile(r"(?:train|val)(\d{4})")
_INSTANCE_FILE = "instances_<split>2014.json or instances_<split>2017.json"


def coco_split_year(split: str) -> tuple[str, int | None]:
    """Split name and COCO year of a ``--split`` value: ``"train2017"`` -> ``("train", 2017)``,
    ``"val"`` -> ``("val", None)``.

    Raises:
        ValueError: a year-suffixed ``train``/``val`` of a year other than 2014 and 2017.
    """
    m = _YEAR_SPLIT.match(split)
    if m is None:
        return split, None
    year = int(m.group(2))
    if year not in COCO_YEARS:
        raise ValueError(
            f"split {split!r}: COCO {year} has no instance annotations of the 80 classes; use "
            f"--split {m.group(1)} with the 2014 or 2017 annotation file"
        )
    return m.group(1), year


def _file_year(ann_file: Path, data: dict[str, Any]) -> int | None:
    """COCO year of an annotation file: from its name (``instances_train2017.json``), else from
    its ``info.year``; None when neither says."""
    m = _FILE_YEAR.search(ann_file.name)
    if m is not None and int(m.group(1)) in COCO_YEARS:
        return int(m.group(1))
    info = data.get("info")
    year = info.get("year") if isinstance(info, dict) else None
    try:
        return int(year) if year is not None and int(year) in COCO_YEARS else None
    except (TypeError, ValueError):
        return None


def coco_file_kind(data: Any) -> str | None:
    """What a COCO annotation file is, when it is not an instance file; None for instances.

    Recognises captions, person keypoints, panoptic, stuff (categories 92..183), DensePose, LVIS
    and image-info (test) files by their keys; the first 100 annotations are looked at.
    """
    if not isinstance(data, dict):
        return None
    anns = data.get("annotations")
    sample = [a for a in anns[:100] if isinstance(a, dict)] if isinstance(anns, list) else []
    cats = data.get("categories")
    cats = [c for c in cats if isinstance(c, dict)] if isinstance(cats, list) else []

    def has(items: list[dict[str, Any]], *keys: str) -> bool:
        return any(k in item for item in items for k in keys)

    if has(sample, "caption"):
        return "captions file (one sentence per annotation, no masks)"
    if has(sample, "segments_info") or has(cats, "isthing"):
        return "panoptic segmentation file (segments_info and PNG masks of things and stuff)"
    if has(sample, "keypoints", "num_keypoints") or has(cats, "keypoints", "skeleton"):
        return "person keypoints file (the category 'person' only)"
    if has(sample, "dp_masks", "dp_I"):
        return "DensePose file (the category 'person' only)"
    if has(cats, "synonyms", "synset", "frequency"):
        return f"LVIS file ({len(cats)} categories, not COCO's 80)"
    ids = [c.get("id") for c in cats]
    if ids and all(isinstance(i, int) and i > 90 for i in ids):
        return "stuff segmentation file (COCO-Stuff categories 92..183)"
    if "annotations" not in data and isinstance(data.get("images"), list):
        return "image info file (image list without annotations, as for the test split)"
    return None


def val_subset_ids(ids: Sequence[str], size: int = VAL_SUBSET_SIZE) -> list[str]:
    """The fixed validation subset of a val split: its first ``size`` ids in sorted order.

    Sorted order is the order of ``ImageSets/val.txt``, so the stage II configs select the same
    images with ``indices=5000`` on ``split="val"``. Deterministic, independent of any random
    generator; all ids when there are at most ``size``.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return sorted(ids)[:size]


def _mask_utils() -> Any:
    try:
        from pycocotools import mask as mask_utils
    except ImportError as exc:  # pragma: no cover - pycocotools is a core dependency
        raise ImportError(
            "converting COCO annotations needs pycocotools: pip install pycocotools"
        ) from exc
    return mask_utils


def coco_annotation_to_rle(segmentation: Any, height: int, width: int) -> dict[str, Any] | None:
    """COCO ``segmentation`` (polygons, uncompressed or compressed RLE) to a compressed RLE.

    Polygons with fewer than 3 points or an odd number of coordinates are dropped (reported by
    :func:`dropped_polygons`); None is returned when nothing is left.

    Raises:
        ValueError: an unknown segmentation form, or an RLE whose size is not (height, width).
    """
    mask_utils = _mask_utils()
    if isinstance(segmentation, list):
        polys = [p for p in segmentation if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
        if not polys:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise ValueError(
                f"RLE size {segmentation['size']} differs from the image size [{height}, {width}]"
            )
        counts = segmentation["counts"]
        if isinstance(counts, list):
            return mask_utils.frPyObjects(segmentation, height, width)
        if isinstance(counts, str):
            return {"size": [height, width], "counts": counts.encode("ascii")}
        if isinstance(counts, bytes):
            return {"size": [height, width], "counts": counts}
    raise ValueError(f"unknown COCO segmentation form: {str(segmentation)[:80]}")


def render_coco_label_map(
    annotations: Sequence[dict[str, Any]], height: int, width: int, crowd: str = "class"
) -> np.ndarray:
    """Paint the instances of one image into an 81-class label map.

    Rules (docs/datasets.md, "COCO conversion"):

    * class index = ``COCO91_TO_81[category_id]``; pixels of no instance are background 0;
    * instances are painted in descending mask area, so where instances overlap the smaller one
      wins; equal areas are painted in ascending annotation ``id`` (later wins);
    * ``crowd="class"``: crowd regions (``iscrowd=1``) are painted like any instance;
      ``crowd="ignore"``: crowd regions are painted 255 first and every non-crowd instance on
      top, so 255 remains only where no non-crowd instance covers a crowd region.

    Args:
        annotations: COCO annotation dicts of this image (``segmentation``, ``category_id``,
            optional ``iscrowd``, ``id``).
        height: image height H.
        width: image width W.
        crowd: ``"class"`` or ``"ignore"``.

    Returns:
        (H, W) uint8 label map, values 0..80 (and 255 with ``crowd="ignore"``).

    Raises:
        ValueError: an unknown category id, segmentation form or ``crowd`` value.
    """
    if crowd not in ("class", "ignore"):
        raise ValueError(f"crowd must be 'class' or 'ignore', got {crowd!r}")
    mask_utils = _mask_utils()
    items = []
    for pos, ann in enumerate(annotations):
        cat = ann.get("category_id")
        if cat not in COCO91_TO_81:
            raise ValueError(f"annotation {ann.get('id')}: category id {cat} is not a COCO class")
        rle = coco_annotation_to_rle(ann.get("segmentation"), height, width)
        if rle is None:
            continue
        is_crowd = bool(ann.get("iscrowd", 0))
        area = int(mask_utils.area(rle))
        # Sort key: crowd-as-ignore first, then larger areas first, then annotation id.
        first = 0 if (crowd == "ignore" and is_crowd) else 1
        value = 255 if first == 0 else COCO91_TO_81[cat]
        items.append(((first, -area, ann.get("id", pos), pos), rle, value))
    label = np.zeros((height, width), dtype=np.uint8)
    for _, rle, value in sorted(items, key=lambda t: t[0]):
        label[mask_utils.decode(rle).astype(bool)] = value
    return label


def _coco_task(task: tuple[Any, ...]) -> tuple[str, list[int] | None, bool, str | None]:
    """Render (or reuse) one PNG; return (stem, present indices incl. 0, written, problem)."""
    stem, height, width, anns, png, crowd = task
    png = Path(png)
    C = COCO14.num_classes
    if png.is_file():
        try:
            label = read_label_map(png, num_classes=C)
            if label.shape == (height, width):
                present = image_labels_from_label_map(label, C, COCO14.ignore_index)
                return stem, np.flatnonzero(present).tolist(), False, None
        except LabelMapError:
            pass  # not a valid earlier output: render it again
    try:
        label = render_coco_label_map(anns, height, width, crowd)
    except ValueError as exc:
        return stem, None, False, f"image {stem}: {exc}"
    write_label_map(png, label, COCO14.palette)
    present = image_labels_from_label_map(label, C, COCO14.ignore_index)
    return stem, np.flatnonzero(present).tolist(), True, None


def _coco_task_id(stem: str, tasks: dict[str, tuple[Any, ...]]) -> tuple:
    """:func:`_coco_task` of one image (the per-image function for :func:`map_per_image`)."""
    return _coco_task(tasks[stem])


@dataclasses.dataclass
class CocoPrepareResult:
    """Outcome of :func:`prepare_coco`."""

    split: str
    out_root: Path
    image_ids: list[str]
    labels: dict[str, list[int]]
    class_counts: np.ndarray  # (81,) int64, images containing each class (incl. background)
    written: int  # PNGs written by this run
    reused: int  # PNGs already present from an earlier run, read back
    images_without_annotations: int
    warnings: list[str]
    paths: dict[str, Path]  # "labels_dir", "split_file", "image_labels", "manifest"
    # (+ "val_subset_file" for the val split)
    year: int | None = None  # COCO release (2014, 2017) when the split or the file names it

    def summary(self) -> str:
        table = format_class_table(
            COCO14.class_names, {self.split: self.class_counts}, {self.split: len(self.labels)}
        )
        lines = [
            table,
            f"COCO {self.year or '(year not stated)'}, split {self.split!r}, dataset key "
            f"{COCO14.name!r}",
            f"PNGs written: {self.written}, reused: {self.reused}, images without annotations: "
            f"{self.images_without_annotations}",
        ]
        lines += [f"{k}: {v}" for k, v in self.paths.items()]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _load_coco_json(ann_file: Path) -> dict[str, Any]:
    if not ann_file.is_file():
        raise FileNotFoundError(f"{ann_file}: annotation file not found")
    try:
        data = json.loads(ann_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{ann_file}: not valid JSON ({exc})") from exc
    kind = coco_file_kind(data)
    if kind is not None:
        raise ValueError(
            f"{ann_file}: a COCO {kind}, not instance annotations; pass {_INSTANCE_FILE} (the "
            "instance masks of the 80 object categories) with --ann"
        )
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise ValueError(
            f"{ann_file}: not a COCO instance annotation file (needs lists 'images', "
            f"'annotations' and 'categories'; use {_INSTANCE_FILE})"
        )
    return data


def _index_coco(
    data: dict[str, Any], ann_file: Path
) -> tuple[dict[Any, dict[str, Any]], dict[Any, list[dict[str, Any]]], list[str]]:
    """Check categories, images and annotations; return (images by id, annotations by image id,
    problems)."""
    problems: list[str] = []
    for cat in data["categories"]:
        cid, name = cat.get("id"), cat.get("name")
        if cid not in COCO91_TO_81:
            problems.append(f"{ann_file}: category id {cid} ({name!r}) is not a COCO-80 category")
        elif name is not None and name != COCO14.class_names[COCO91_TO_81[cid]]:
            problems.append(
                f"{ann_file}: category id {cid} is named {name!r}, expected "
                f"{COCO14.class_names[COCO91_TO_81[cid]]!r}; not a COCO instance file?"
            )
    images: dict[Any, dict[str, Any]] = {}
    stems: dict[str, Any] = {}
    for img in data["images"]:
        stem = Path(str(img.get("file_name", ""))).stem
        if (
            not stem
            or not isinstance(img.get("height"), int)
            or not isinstance(img.get("width"), int)
        ):
            problems.append(f"{ann_file}: image entry {img.get('id')} lacks file_name/height/width")
            continue
        if stem in stems:
            problems.append(
                f"{ann_file}: image name {stem} used by ids {stems[stem]} and {img['id']}"
            )
            continue
        stems[stem] = img["id"]
        images[img["id"]] = img
    by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    bad_cats: dict[Any, int] = defaultdict(int)
    for ann in data["annotations"]:
        if ann.get("category_id") not in COCO91_TO_81:
            bad_cats[ann.get("category_id")] += 1
        elif ann.get("image_id") not in images:
            problems.append(
                f"{ann_file}: annotation {ann.get('id')} refers to unknown image "
                f"{ann.get('image_id')}"
            )
        else:
            by_image[ann["image_id"]].append(ann)
    for cid, n in sorted(bad_cats.items(), key=str):
        problems.append(
            f"{ann_file}: {n} annotation(s) with category id {cid}, not a COCO-80 category"
        )
    return images, by_image, problems


#: Annotation ids named in a warning about dropped polygons.
MAX_LISTED_IDS = 10


def dropped_polygons(annotations: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Annotation ids whose polygons :func:`coco_annotation_to_rle` drops, by reason.

    Returns:
        ``{"fewer than 3 points": [...], "an odd number of coordinates": [...],
        "no polygon left": [...]}``: one annotation id per dropped polygon for the first two
        reasons (an id repeats when several of its polygons are dropped); the third lists the
        annotations that lose every polygon and so paint nothing.
    """
    out: dict[str, list[Any]] = {
        "fewer than 3 points": [], "an odd number of coordinates": [], "no polygon left": []
    }  # fmt: skip
    for ann in annotations:
        seg = ann.get("segmentation")
        if not isinstance(seg, list):
            continue  # RLE
        kept = 0
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6:
                out["fewer than 3 points"].append(ann.get("id"))
            elif len(poly) % 2:
                out["an odd number of coordinates"].append(ann.get("id"))
            else:
                kept += 1
        if not kept:
            out["no polygon left"].append(ann.get("id"))
    return out


def _polygon_warnings(ann_file: Path, annotations: Sequence[dict[str, Any]]) -> list[str]:
    warnings = []
    for reason, ids in dropped_polygons(annotations).items():
        if not ids:
            continue
        shown = ", ".join(str(i) for i in ids[:MAX_LISTED_IDS])
        more = f" and {len(ids) - MAX_LISTED_IDS} more" if len(ids) > MAX_LISTED_IDS else ""
        if reason == "no polygon left":
            warnings.append(
                f"{ann_file}: {len(ids)} annotation(s) have no usable polygon and paint nothing "
                f"(annotation ids {shown}{more})"
            )
        else:
            warnings.append(
                f"{ann_file}: dropped {len(ids)} polygon(s) with {reason} (annotation ids "
                f"{shown}{more})"
            )
    return warnings


def prepare_coco(
    ann_file: str | os.PathLike,
    split: str,
    root: str | os.PathLike,
    out_root: str | os.PathLike | None = None,
    *,
    crowd: str = "class",
    images_dir: str | os.PathLike | None = None,
    workers: int = 1,
    progress: bool = False,
) -> CocoPrepareResult:
    """Convert COCO instance annotations into fma's ``coco14`` layout.

    Writes, under ``out_root`` (default ``root``):

    * ``SegmentationClass/<split>/<stem>.png``: 81-class palette PNGs
      (:func:`render_coco_label_map`); ``<stem>`` is the image file name without extension;
    * ``SegmentationClass/<split>/manifest.json``;
    * ``ImageSets/<split>.txt``: the stems, sorted;
    * for ``split == "val"`` also ``ImageSets/val_5000.txt``: :func:`val_subset_ids`, the
      images validated on during stage II training (the test uses all of ``val``);
    * ``cls_labels/<split>.json``: image-level labels taken from the written PNGs.

    The run is resumable: existing valid PNGs of the right size are read back, not rendered.
    Everything is checked before anything is written (categories, image ids, duplicate stems,
    and, when ``images_dir`` exists, that every image file is present).

    Args:
        ann_file: ``instances_<split>2014.json`` or ``instances_<split>2017.json``; files of
            other COCO tasks (keypoints, captions, panoptic, stuff) are refused.
        split: split name used in the output paths (``train``, ``val``); ``train2017`` /
            ``val2014`` are read as ``train`` / ``val`` of that year (:func:`coco_split_year`).
        root: COCO root; images are looked up in ``root/<split><year>`` for the year of the
            split or file (else ``root/<split>2014``, or ``root/<split>2017`` when only that
            exists) unless ``images_dir``.
        out_root: output root, default ``root``.
        crowd: ``"class"`` (default) or ``"ignore"``; see :func:`render_coco_label_map`.
        images_dir: folder holding the images; a missing folder only adds a warning.
        workers: processes for rendering (1 = in this process).
        progress: show a tqdm bar.

    Returns:
        A :class:`CocoPrepareResult`.

    Raises:
        DatasetCheckError: every problem found, each named; nothing (or, for render errors, only
            the good PNGs) is written.
        ValueError: unreadable annotation file or one of another COCO task, ``crowd`` unknown,
            a split year that differs from the file's, or an earlier run in the same folder
            used another ``crowd`` setting.
    """
    if crowd not in ("class", "ignore"):
        raise ValueError(f"crowd must be 'class' or 'ignore', got {crowd!r}")
    ann_file = Path(ann_file)
    root = Path(root)
    out = Path(out_root) if out_root is not None else root
    given = split
    split, year = coco_split_year(split)
    data = _load_coco_json(ann_file)
    file_year = _file_year(ann_file, data)
    if year is not None and file_year is not None and year != file_year:
        raise ValueError(
            f"--split {given} names COCO {year}, but {ann_file} holds COCO {file_year} "
            f"annotations; pass --split {split} (the year is taken from the file) or the "
            f"{year} annotation file"
        )
    year = year if year is not None else file_year
    images, by_image, problems = _index_coco(data, ann_file)
    warnings: list[str] = []
    if not data["annotations"]:
        warnings.append(
            f"{ann_file}: the file holds no annotations, so every label map is background (an "
            "image_info or test file?); use instances_<split>2014.json or its 2017 version"
        )
    warnings += _polygon_warnings(ann_file, [a for v in by_image.values() for a in v])

    layout_dir = DatasetLayout.of("coco14", root).images_dir(split)
    img_dir = layout_dir if images_dir is None else Path(images_dir)
    if images_dir is None and year is not None and (root / f"{split}{year}").is_dir():
        img_dir = root / f"{split}{year}"
        if img_dir != layout_dir:
            warnings.append(
                f"{root}: holds both {layout_dir.name}/ and {img_dir.name}/; the label maps are "
                f"checked against {img_dir.name}/, but fma's data loaders read {layout_dir.name}/ "
                f"for split {split!r}: keep one of them under this root"
            )
    if img_dir.is_dir():
        present = set(os.listdir(img_dir))
        for img in images.values():
            if img["file_name"] not in present:
                problems.append(f"{img_dir / img['file_name']}: missing image")
    else:
        warnings.append(
            f"{img_dir}: image folder not found; label maps written without checking images"
        )
    if problems:
        raise DatasetCheckError(str(ann_file), problems)

    seg_dir = out / "SegmentationClass" / split
    old = read_manifest(seg_dir, required=False)
    if old is not None:
        if old.format != COCO_LABEL_FORMAT or old.dataset != COCO14.name:
            raise ValueError(
                f"{seg_dir}: holds {old.format}/{old.dataset} files, not coco14 label maps"
            )
        if old.params.get("crowd", crowd) != crowd:
            raise ValueError(
                f"{seg_dir}: earlier run used --crowd {old.params.get('crowd')}; pass the same "
                "value, or delete the folder to convert again"
            )
    params: dict[str, Any] = {
        "crowd": crowd,
        "overlap": "descending area (smaller instance on top), ties by annotation id",
        "ann_file": str(ann_file),
        "year": year,
        "complete": False,
    }
    manifest = Manifest(
        format=COCO_LABEL_FORMAT, version=COCO_LABEL_VERSION, count=0, dataset=COCO14.name,
        split=split, class_names=list(COCO14.class_names),
        producer=producer_info("tools/prepare_coco.py"), params=params,
    )  # fmt: skip
    write_manifest(seg_dir, manifest)

    order = sorted(images.values(), key=lambda im: Path(im["file_name"]).stem)
    tasks = [
        (Path(im["file_name"]).stem, im["height"], im["width"], by_image.get(im["id"], []),
         str(seg_dir / f"{Path(im['file_name']).stem}.png"), crowd)
        for im in order
    ]  # fmt: skip
    C = COCO14.num_classes
    labels: dict[str, list[int]] = {}
    counts = np.zeros(C, dtype=np.int64)
    written = reused = 0
    stems = [t[0] for t in tasks]
    done = map_per_image(
        stems, _coco_task_id, ({t[0]: t for t in tasks},), workers=workers if workers > 1 else 0,
        desc=split, progress=progress,
    )  # fmt: skip
    for stem, present_idx, wrote, problem in (done[i] for i in stems):
        if problem is not None:
            problems.append(f"{ann_file}: {problem}")
            continue
        labels[stem] = [c for c in present_idx if c > 0]
        counts[present_idx] += 1
        written += int(wrote)
        reused += int(not wrote)
    if problems:
        raise DatasetCheckError(str(ann_file), problems)

    ids = [t[0] for t in tasks]
    split_file = out / "ImageSets" / f"{split}.txt"
    write_text_atomic(split_file, "".join(f"{i}\n" for i in ids))
    extra: dict[str, Path] = {}
    if split == "val":
        subset_file = out / "ImageSets" / f"val_{VAL_SUBSET_SIZE}.txt"
        write_text_atomic(subset_file, "".join(f"{i}\n" for i in val_subset_ids(ids)))
        extra["val_subset_file"] = subset_file
    labels_file = save_image_labels(
        out / "cls_labels" / f"{split}.json", labels, COCO14.class_names, COCO14.name, split,
        producer={**manifest.producer, "params": {"year": year, "ann_file": str(ann_file)}},
    )  # fmt: skip
    no_ann = sum(1 for im in order if not by_image.get(im["id"]))
    manifest.count = len(ids)
    params.update(complete=True, images=len(ids), images_without_annotations=no_ann)
    params["annotations"] = sum(len(v) for v in by_image.values())
    manifest_path = write_manifest(seg_dir, manifest)
    return CocoPrepareResult(
        split, out, ids, labels, counts, written, reused, no_ann, warnings,
        {"labels_dir": seg_dir, "split_file": split_file, "image_labels": labels_file,
         "manifest": manifest_path, **extra}, year,
    )  # fmt: skip
