"""Dataset preparation: check a dataset on disk and write what the pipeline reads.

* :func:`prepare_voc`: check a PASCAL VOC 2012 folder (every listed image and ground-truth PNG
  exists and decodes) and write the image-level labels ``cls_labels/<split>.json``.
* :func:`prepare_coco`: convert COCO instance annotations into 81-class label PNGs, split lists
  and image-level labels (pycocotools is imported inside this function only).
* :func:`load_custom_dataset`: read and check a custom dataset folder (images, class list,
  image-level labels).

All problems of a run are collected and reported together, each naming its file, so that one
run shows everything to fix. See docs/datasets.md for the layouts and the rules.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from fma.datasets.labels import (
    ImageLabelsError,
    image_labels_from_label_map,
    read_image_labels_checked,
    save_image_labels,
)
from fma.datasets.layout import IMAGE_SUFFIXES, DatasetLayout, read_split_file
from fma.datasets.meta import COCO14, COCO91_TO_81, VOC12, DatasetMeta, bitwise_palette
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

__all__ = [
    "COCO_LABEL_FORMAT",
    "VOC_SPLITS",
    "CocoPrepareResult",
    "CustomDataset",
    "DatasetCheckError",
    "SplitReport",
    "VocPrepareResult",
    "check_image_file",
    "coco_annotation_to_rle",
    "dropped_polygons",
    "format_class_table",
    "load_custom_dataset",
    "prepare_coco",
    "prepare_voc",
    "read_class_names",
    "render_coco_label_map",
    "voc_default_splits",
]

VOC_SPLITS = ("train", "val", "train_aug")
COCO_LABEL_FORMAT = "label_maps"
COCO_LABEL_VERSION = 1
MAX_LISTED = 200  # problems shown in an exception message; all are kept in ``.problems``


class DatasetCheckError(ValueError):
    """A dataset folder has problems; ``problems`` lists every one, each naming its file."""

    def __init__(self, what: str, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:MAX_LISTED])
        more = len(self.problems) - MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{what}: {len(self.problems)} problem(s):\n  {shown}{tail}")


# ---------------------------------------------------------------------------------------------
# Shared helpers


def check_image_file(path: str | os.PathLike) -> tuple[tuple[int, int] | None, str | None]:
    """Check that an image file exists and decodes completely.

    JPEGs are decoded at 1/8 scale (``Image.draft``), which still reads every byte, so truncated
    or corrupt files are caught at about half the cost of a full decode.

    Returns:
        ((height, width), None) when readable, else (None, "<path>: <reason>").
    """
    path = Path(path)
    if not path.is_file():
        return None, f"{path}: missing image"
    try:
        with Image.open(path) as img:
            size = (img.height, img.width)
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        return None, f"{path}: unreadable image ({exc})"
    return size, None


def _imap(fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int, pool: Any) -> Iterator[Any]:
    if workers > 1 and pool is not None and len(tasks) > 1:
        chunk = max(1, min(32, len(tasks) // (workers * 4) or 1))
        return pool.imap(fn, tasks, chunksize=chunk)
    return map(fn, tasks)


def _progress(it: Iterable[Any], total: int, desc: str, enabled: bool) -> Iterable[Any]:
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="img", dynamic_ncols=True)


def _make_pool(workers: int) -> Any:
    return multiprocessing.get_context().Pool(workers) if workers > 1 else None


def format_class_table(
    class_names: Sequence[str], counts: dict[str, np.ndarray], images: dict[str, int]
) -> str:
    """Plain-text table: number of images per split and, per class, images containing it.

    Args:
        class_names: C names.
        counts: split -> (C,) int, images in which each class occurs.
        images: split -> number of images.
    """
    w = {s: max(8, len(s)) for s in counts}
    width = max(len(n) for n in class_names)
    lines = ["class".ljust(width) + "".join(f"  {s:>{w[s]}}" for s in counts)]
    lines.append("-" * len(lines[0]))
    lines.append("images".ljust(width) + "".join(f"  {images[s]:>{w[s]}}" for s in counts))
    for c, name in enumerate(class_names):
        lines.append(name.ljust(width) + "".join(f"  {int(counts[s][c]):>{w[s]}}" for s in counts))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# PASCAL VOC


@dataclasses.dataclass
class SplitReport:
    """Outcome of preparing one split."""

    split: str
    image_ids: list[str]
    labels: dict[str, list[int]]  # image id -> foreground indices (good images only)
    class_counts: np.ndarray  # (C,) int64, images containing each class (incl. background)
    problems: list[str]  # one line per missing/unreadable/invalid file, naming it
    out_path: Path | None  # labels file written, None when the split had problems


@dataclasses.dataclass
class VocPrepareResult:
    """Outcome of :func:`prepare_voc`."""

    root: Path
    out_dir: Path
    layout_problems: list[str]
    splits: dict[str, SplitReport]

    @property
    def problems(self) -> list[str]:
        """Every problem found, layout first."""
        out = list(self.layout_problems)
        for rep in self.splits.values():
            out += rep.problems
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """Images per split and per-class image counts, as a table."""
        if not self.splits:
            return "no split checked"
        table = format_class_table(
            VOC12.class_names,
            {s: r.class_counts for s, r in self.splits.items()},
            {s: len(r.labels) for s, r in self.splits.items()},
        )
        written = [f"{s}: {r.out_path}" for s, r in self.splits.items() if r.out_path]
        return table + ("\nwritten:\n  " + "\n  ".join(written) if written else "")


def voc_default_splits(root: str | os.PathLike) -> list[str]:
    """Splits whose list file exists: ``train``, ``val`` and, with SegmentationClassAug,
    ``train_aug`` (``train_aug.txt`` or mmseg's ``trainaug.txt``)."""
    layout = DatasetLayout.of("voc12", root)
    out = [s for s in ("train", "val") if layout.split_file(s).is_file()]
    if layout.labels_dir("train_aug").is_dir() and layout.split_file("train_aug").is_file():
        out.append("train_aug")
    return out


def _voc_check_pair(task: tuple[str, str, str, int]) -> tuple[str, list[int] | None, list[str]]:
    """Check one image + label PNG; return (id, present class indices incl. 0 or None, problems)."""
    image_id, image_path, label_path, num_classes = task
    problems = []
    size, err = check_image_file(image_path)
    if err:
        problems.append(err)
    label = None
    try:
        label = read_label_map(label_path, num_classes=num_classes)
    except FileNotFoundError:
        problems.append(f"{label_path}: missing label map")
    except LabelMapError as exc:
        problems.append(str(exc))
    if label is not None and size is not None and label.shape != size:
        problems.append(
            f"{label_path}: label size {label.shape[1]}x{label.shape[0]} (WxH) differs from "
            f"image size {size[1]}x{size[0]} of {image_path}"
        )
    if problems or label is None:
        return image_id, None, problems
    present = image_labels_from_label_map(label, num_classes, VOC12.ignore_index)
    return image_id, np.flatnonzero(present).tolist(), []


def prepare_voc(
    root: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    splits: Sequence[str] | None = None,
    *,
    workers: int = 1,
    progress: bool = False,
) -> VocPrepareResult:
    """Check a VOC 2012 folder and write image-level labels per split.

    For each split, every listed image (``JPEGImages/<id>.jpg``) and ground-truth PNG
    (``SegmentationClass/<id>.png``; ``SegmentationClassAug`` for ``train_aug``) must exist and
    decode, the PNG must hold only 0..20 and 255, and both must have the same size. Labels are
    derived from the ground truth (class present iff a pixel has it, 255 ignored).

    A split with any problem gets no labels file (a partial file would silently train on fewer
    images); splits without problems are written. All problems are returned, none raised.

    Args:
        root: the ``VOC2012`` folder.
        out_dir: folder for ``<split>.json``; default ``root/cls_labels``.
        splits: splits to process; default :func:`voc_default_splits`.
        workers: processes for checking files (1 = in this process).
        progress: show a tqdm bar per split.

    Returns:
        A :class:`VocPrepareResult`; ``result.ok`` is False when anything was wrong.
    """
    root = Path(root)
    layout = DatasetLayout.of("voc12", root)
    out = Path(out_dir) if out_dir is not None else root / "cls_labels"
    result = VocPrepareResult(root, out, [], {})
    if not root.is_dir():
        result.layout_problems.append(f"{root}: folder not found (expected a VOC2012 folder)")
        return result
    for folder in ("JPEGImages", "SegmentationClass"):
        if not (root / folder).is_dir():
            result.layout_problems.append(f"{root / folder}: missing folder")
    if splits is None:
        splits = voc_default_splits(root)
        if not splits:
            result.layout_problems.append(
                f"{root / 'ImageSets' / 'Segmentation'}: no train.txt or val.txt"
            )
    todo = []
    for split in splits:
        if split not in VOC_SPLITS:
            result.layout_problems.append(f"unknown VOC split {split!r}; use {VOC_SPLITS}")
        elif not layout.split_file(split).is_file():
            result.layout_problems.append(
                f"{layout.split_file(split)}: missing split file{layout.split_hint(split)}"
            )
        elif not layout.labels_dir(split).is_dir():
            result.layout_problems.append(f"{layout.labels_dir(split)}: missing folder")
        else:
            todo.append(split)
    if result.layout_problems:
        return result

    producer = producer_info("tools/prepare_voc.py")
    C = VOC12.num_classes
    pool = _make_pool(workers)
    try:
        for split in todo:
            ids = read_split_file(layout.split_file(split))
            problems = []
            seen: set[str] = set()
            unique = []
            for i in ids:
                if i in seen:
                    problems.append(f"{layout.split_file(split)}: id {i} listed more than once")
                else:
                    seen.add(i)
                    unique.append(i)
            tasks = [
                (i, str(layout.image_path(split, i)), str(layout.labels_dir(split) / f"{i}.png"), C)
                for i in unique
            ]
            labels: dict[str, list[int]] = {}
            counts = np.zeros(C, dtype=np.int64)
            results = _progress(
                _imap(_voc_check_pair, tasks, workers, pool), len(tasks), split, progress
            )
            for image_id, present, probs in results:
                problems += probs
                if present is not None:
                    labels[image_id] = [c for c in present if c > 0]
                    counts[present] += 1
            out_path = None
            if not problems:
                out_path = save_image_labels(
                    out / f"{split}.json", labels, VOC12.class_names, "voc12", split,
                    producer=producer,
                )  # fmt: skip
            result.splits[split] = SplitReport(split, unique, labels, counts, problems, out_path)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return result


# ---------------------------------------------------------------------------------------------
# COCO


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

    def summary(self) -> str:
        table = format_class_table(
            COCO14.class_names, {self.split: self.class_counts}, {self.split: len(self.labels)}
        )
        lines = [
            table,
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
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise ValueError(
            f"{ann_file}: not a COCO instance annotation file (needs lists 'images', "
            "'annotations' and 'categories'; use instances_<split>2014.json)"
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
    * ``cls_labels/<split>.json``: image-level labels taken from the written PNGs.

    The run is resumable: existing valid PNGs of the right size are read back, not rendered.
    Everything is checked before anything is written (categories, image ids, duplicate stems,
    and, when ``images_dir`` exists, that every image file is present).

    Args:
        ann_file: ``instances_<split>2014.json`` (2017 files work the same).
        split: split name used in the output paths (``train``, ``val``).
        root: COCO root; images are looked up in ``root/<split>2014`` (``root/<split>2017``
            when only that exists) unless ``images_dir``.
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
        ValueError: unreadable annotation file, ``crowd`` unknown, or an earlier run in the same
            folder used another ``crowd`` setting.
    """
    if crowd not in ("class", "ignore"):
        raise ValueError(f"crowd must be 'class' or 'ignore', got {crowd!r}")
    ann_file = Path(ann_file)
    root = Path(root)
    out = Path(out_root) if out_root is not None else root
    data = _load_coco_json(ann_file)
    images, by_image, problems = _index_coco(data, ann_file)
    warnings: list[str] = []
    if not data["annotations"]:
        warnings.append(
            f"{ann_file}: the file holds no annotations, so every label map is background (an "
            "image_info or test file?); use instances_<split>2014.json or its 2017 version"
        )
    warnings += _polygon_warnings(ann_file, [a for v in by_image.values() for a in v])

    img_dir = (
        Path(images_dir) if images_dir is not None
        else DatasetLayout.of("coco14", root).images_dir(split)
    )  # fmt: skip
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
    pool = _make_pool(workers)
    try:
        it = _progress(_imap(_coco_task, tasks, workers, pool), len(tasks), split, progress)
        for stem, present_idx, wrote, problem in it:
            if problem is not None:
                problems.append(f"{ann_file}: {problem}")
                continue
            labels[stem] = [c for c in present_idx if c > 0]
            counts[present_idx] += 1
            written += int(wrote)
            reused += int(not wrote)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    if problems:
        raise DatasetCheckError(str(ann_file), problems)

    ids = [t[0] for t in tasks]
    split_file = out / "ImageSets" / f"{split}.txt"
    write_text_atomic(split_file, "".join(f"{i}\n" for i in ids))
    labels_file = save_image_labels(
        out / "cls_labels" / f"{split}.json", labels, COCO14.class_names, COCO14.name, split,
        producer=manifest.producer,
    )  # fmt: skip
    no_ann = sum(1 for im in order if not by_image.get(im["id"]))
    manifest.count = len(ids)
    params.update(complete=True, images=len(ids), images_without_annotations=no_ann)
    params["annotations"] = sum(len(v) for v in by_image.values())
    manifest_path = write_manifest(seg_dir, manifest)
    return CocoPrepareResult(
        split, out, ids, labels, counts, written, reused, no_ann, warnings,
        {"labels_dir": seg_dir, "split_file": split_file, "image_labels": labels_file,
         "manifest": manifest_path},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Custom datasets


def read_class_names(path: str | os.PathLike) -> tuple[str, ...]:
    """Read ``classes.txt``: foreground class names, one per line, in index order 1..C-1.

    Blank lines and lines starting with ``#`` are skipped; names are stripped. ``background`` is
    class 0 implicitly and must not be listed.

    Returns:
        (C,) names with ``"background"`` prepended.

    Raises:
        FileNotFoundError: no such file.
        DatasetCheckError: no names, duplicates, ``background`` listed, or a ``;`` in a name.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: class list not found; write the foreground class names one per line"
        )
    names: list[str] = []
    problems = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if name.lower() == "background":
            problems.append(f"line {lineno}: 'background' is class 0 implicitly; remove the line")
        elif ";" in name:
            problems.append(
                f"line {lineno}: class name {name!r} contains ';' (the label separator)"
            )
        elif name in names:
            problems.append(f"line {lineno}: class {name!r} listed twice")
        else:
            names.append(name)
    if not names and not problems:
        problems.append("no class names")
    if problems:
        raise DatasetCheckError(str(path), problems)
    return ("background", *names)


@dataclasses.dataclass(frozen=True)
class CustomDataset:
    """A checked custom dataset (see docs/datasets.md, "Custom datasets")."""

    root: Path
    split: str
    class_names: tuple[str, ...]  # C names, [0] = "background"
    image_ids: list[str]  # sorted ids (file stems) of the split
    image_paths: list[Path]  # same order as image_ids
    labels: dict[str, list[int]]  # image id -> foreground indices 1..C-1, for every image_id
    gt_dir: Path | None  # ROOT/ground_truth when it exists (evaluation only)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def multi_hot(self) -> np.ndarray:
        """(N, C) bool image-level labels in ``image_ids`` order (column 0 always False)."""
        from fma.datasets.labels import labels_to_multi_hot

        return labels_to_multi_hot(self.labels, self.image_ids, self.num_classes)

    def to_meta(self, clip_bg_names: Sequence[str] | None = None) -> DatasetMeta:
        """A :class:`DatasetMeta` named ``custom``: the class names double as CLIP prompt names;
        background prompt names default to the VOC CLIP-ES list."""
        return DatasetMeta(
            name="custom",
            class_names=self.class_names,
            clip_fg_names=self.class_names[1:],
            clip_bg_names=tuple(clip_bg_names)
            if clip_bg_names is not None
            else VOC12.clip_bg_names,
            palette=bitwise_palette(),
        )


def load_custom_dataset(root: str | os.PathLike, split: str = "all") -> CustomDataset:
    """Read and check a custom dataset folder.

    Layout::

        ROOT/images/<id>.<jpg|jpeg|png|bmp|tif|tiff|webp>
        ROOT/classes.txt                     foreground class names, one per line
        ROOT/labels.csv or ROOT/labels.json  image-level labels (fma.datasets.labels readers)
        ROOT/ground_truth/<id>.png           optional
        ROOT/splits/<split>.txt              optional; split "all" without it = every image

    Checks (all collected into one error): unknown class names, duplicate label rows, images of
    the split without labels, label entries without an image, split ids without an image, two
    images with the same id. Images are not decoded here.

    Args:
        root: dataset folder.
        split: ``all`` or the name of a ``splits/<split>.txt`` file.

    Returns:
        A :class:`CustomDataset`.

    Raises:
        FileNotFoundError: missing folder, ``images/``, ``classes.txt``, label file or split file.
        DatasetCheckError: the problems listed above, each naming the image, class or file.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    img_dir = root / "images"
    if not img_dir.is_dir():
        raise FileNotFoundError(
            f"{img_dir}: image folder not found; put the images in ROOT/images/"
        )
    class_names = read_class_names(root / "classes.txt")
    csv_path, json_path = root / "labels.csv", root / "labels.json"
    if csv_path.is_file() and json_path.is_file():
        raise DatasetCheckError(
            str(root), [f"both {csv_path.name} and {json_path.name} exist; keep one"]
        )
    label_path = csv_path if csv_path.is_file() else json_path
    if not label_path.is_file():
        raise FileNotFoundError(f"{root}: no labels.csv or labels.json (image-level labels)")
    try:
        labels, label_problems = read_image_labels_checked(label_path, class_names)
    except ImageLabelsError as exc:
        raise DatasetCheckError(str(root), [str(exc)]) from exc
    problems = [f"{label_path}: {p}" for p in label_problems]

    paths: dict[str, Path] = {}
    for p in sorted(img_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in paths:
                problems.append(f"{p}: same id as {paths[p.stem].name}; rename one")
            else:
                paths[p.stem] = p
    if not paths:
        problems.append(f"{img_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")

    split_file = root / "splits" / f"{split}.txt"
    if split_file.is_file():
        ids = list(dict.fromkeys(read_split_file(split_file)))
        problems += [f"{split_file}: {i} has no image in {img_dir}" for i in ids if i not in paths]
        ids = [i for i in ids if i in paths]
    elif split == "all":
        ids = list(paths)
    else:
        raise FileNotFoundError(f"{split_file}: split file not found (split {split!r})")
    problems += [
        f"{paths[i]}: no image-level labels in {label_path.name}" for i in ids if i not in labels
    ]
    problems += [
        f"{label_path}: labels for {i!r} but no image in {img_dir}"
        for i in labels
        if i not in paths
    ]
    if problems:
        raise DatasetCheckError(str(root), problems)
    ids = sorted(ids)
    gt_dir = root / "ground_truth"
    return CustomDataset(
        root=root,
        split=split,
        class_names=class_names,
        image_ids=ids,
        image_paths=[paths[i] for i in ids],
        labels={i: labels[i] for i in ids},
        gt_dir=gt_dir if gt_dir.is_dir() else None,
    )
