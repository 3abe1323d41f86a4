"""COCO instance annotation files: what a file is, its year, its checks and its masks.

The reading side of the COCO conversion (:mod:`fma.datasets.prepare_coco` writes the label
PNGs, split lists and labels): a file of another COCO task (keypoints, captions, panoptic,
stuff, image info) is recognised and named (:func:`coco_file_kind`); COCO 2014 and 2017 share
the dataset key ``coco14`` (same 80 classes) and a year-suffixed split (``train2017``) is read
as its split of that year (:func:`coco_split_year`); categories, images and annotations are
checked with every problem named (:func:`index_coco`); instances are painted into 81-class label
maps (:func:`render_coco_label_map`), with dropped polygons reported. pycocotools is imported
only when masks are decoded.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fma.datasets.meta import COCO14, COCO91_TO_81

__all__ = [
    "COCO_YEARS",
    "MAX_LISTED_IDS",
    "coco_annotation_to_rle",
    "coco_file_kind",
    "coco_file_year",
    "coco_split_year",
    "dropped_polygons",
    "index_coco",
    "load_coco_json",
    "polygon_warnings",
    "render_coco_label_map",
]

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


def coco_file_year(ann_file: Path, data: dict[str, Any]) -> int | None:
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


def load_coco_json(ann_file: Path) -> dict[str, Any]:
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


def index_coco(
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


def polygon_warnings(ann_file: Path, annotations: Sequence[dict[str, Any]]) -> list[str]:
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
