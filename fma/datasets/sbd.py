"""SBD (Semantic Boundaries Dataset) into VOC 2012 ``train_aug``: list and label maps.

:func:`convert_sbd` reads an unpacked SBD ``benchmark_RELEASE/dataset`` folder and writes, into
the ``VOC2012`` folder:

* ``ImageSets/Segmentation/train_aug.txt``: (VOC train + SBD train + SBD val) minus VOC val,
  deduplicated and sorted; the set of mmseg's ``voc_aug.py`` (10,582 ids on the full sets);
* ``SegmentationClassAug/<id>.png`` for every ``train_aug`` id: palette PNGs (VOC colours)
  whose indices are the class ids 0..20 (255 = ignore);
* ``SegmentationClassAug/manifest.json``: source folders, rule and counts.

Annotation rule (one per id): **VOC wins**. An id with a VOC ``SegmentationClass/<id>.png``
takes that map's indices (the finer VOC annotation, with its 255 object borders; mmseg's
``voc_aug`` configs also train the VOC train ids from ``SegmentationClass``); every other id
takes ``Segmentation`` of SBD's ``cls/<id>.mat`` (struct ``GTcls``). mmseg's converter writes
only SBD masks.

Every file read is checked; all problems of a run are returned together, each naming its file.
scipy (for ``.mat`` files) is imported only when a conversion runs.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fma.datasets.layout import DatasetLayout, read_split_file
from fma.datasets.meta import VOC12
from fma.io import LabelMapError, Manifest, encode_label_png, read_label_map, write_manifest
from fma.io.atomic import write_bytes_atomic, write_text_atomic
from fma.io.manifest import check_compatible, folder_lock, producer_info
from fma.stage import map_per_image

__all__ = [
    "SBD_EXPECTED_COUNTS",
    "SbdConvertResult",
    "SbdError",
    "convert_sbd",
    "find_sbd_dataset",
    "read_sbd_segmentation",
    "train_aug_ids",
]

#: Counts of the full public sets; other counts are reported as a note (partial sets).
SBD_EXPECTED_COUNTS = {
    "VOC train": 1464, "VOC val": 1449, "SBD train": 8498, "SBD val": 2857, "train_aug": 10582,
}  # fmt: skip
LABEL_FORMAT, LABEL_VERSION = "label_maps", 1
PRIORITY = "voc"  # which annotation an id in both VOC SegmentationClass and SBD takes


class SbdError(ValueError):
    """An SBD file or folder is not what SBD holds; the message names it."""


def _loadmat() -> Any:
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise ImportError(
            "reading SBD .mat files needs scipy: pip install scipy (it comes with fma[seg])"
        ) from exc
    return loadmat


def find_sbd_dataset(path: str | os.PathLike) -> Path:
    """The SBD ``dataset`` folder (holding ``cls/``, ``train.txt``, ``val.txt``) at ``path``
    or, for the unpacked ``benchmark_RELEASE`` folder, at ``path/dataset``.

    Raises:
        SbdError: neither holds ``cls/``; the message names what was looked for.
    """
    path = Path(path)
    for cand in (path, path / "dataset"):
        if (cand / "cls").is_dir():
            return cand
    raise SbdError(
        f"{path}: not an SBD folder (no cls/ in it or in {path / 'dataset'}); pass the "
        "benchmark_RELEASE/dataset folder unpacked from benchmark.tgz"
    )


def train_aug_ids(
    voc_train: list[str], voc_val: list[str], sbd_train: list[str], sbd_val: list[str]
) -> list[str]:
    """(VOC train + SBD train + SBD val) minus VOC val, deduplicated and sorted."""
    return sorted(set(voc_train).union(sbd_train, sbd_val) - set(voc_val))


def read_sbd_segmentation(path: str | os.PathLike, num_classes: int = 21) -> np.ndarray:
    """``GTcls.Segmentation`` of an SBD ``cls/<id>.mat`` file.

    The file holds a 1x1 MATLAB struct ``GTcls`` with fields ``Segmentation`` (uint8 (H, W)
    class ids 0..20), ``Boundaries`` and ``CategoriesPresent``; only ``Segmentation`` is read.

    Returns:
        (H, W) uint8 class ids, each < num_classes or 255.

    Raises:
        SbdError: unreadable file, no ``GTcls`` struct or ``Segmentation`` field, a non-integer
            dtype, a shape that is not 2-D, or class ids outside 0..num_classes-1 and 255.
    """
    loadmat = _loadmat()
    try:
        mat = loadmat(path)
    except Exception as exc:  # a corrupt file fails in many ways (IndexError, ValueError, ...)
        raise SbdError(
            f"{path}: not a readable MATLAB file ({exc}); extract benchmark.tgz again"
        ) from exc
    gt = mat.get("GTcls")
    if gt is None:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise SbdError(
            f"{path}: no GTcls struct (variables: {keys}); not an SBD cls/ file (inst/ files "
            "hold GTinst)"
        )
    fields = gt.dtype.names if isinstance(gt, np.ndarray) else None
    if not fields or "Segmentation" not in fields:
        raise SbdError(f"{path}: GTcls has no Segmentation field (fields: {fields})")
    if gt.size != 1:
        raise SbdError(f"{path}: GTcls is a {gt.shape} struct array, expected 1x1")
    seg = gt["Segmentation"].flat[0]
    if not isinstance(seg, np.ndarray) or seg.ndim != 2 or 0 in seg.shape:
        shape = getattr(seg, "shape", type(seg).__name__)
        raise SbdError(f"{path}: GTcls.Segmentation has shape {shape}, expected (H, W)")
    if seg.dtype.kind not in "ui":
        raise SbdError(
            f"{path}: GTcls.Segmentation has dtype {seg.dtype}, expected uint8 class ids"
        )
    bad = (seg < 0) | ((seg >= num_classes) & (seg != VOC12.ignore_index))
    if bad.any():
        values = np.unique(seg[bad]).tolist()[:10]
        raise SbdError(
            f"{path}: GTcls.Segmentation holds {values}, not classes 0..{num_classes - 1} "
            f"(nor ignore {VOC12.ignore_index})"
        )
    return seg.astype(np.uint8)


def _png_matches(path: Path, label: np.ndarray) -> bool:
    """True when ``path`` is a palette PNG with the 256 VOC colours and exactly ``label``'s
    pixels."""
    if not path.is_file():
        return False
    try:
        with Image.open(path) as img:
            if img.mode != "P" or img.size != (label.shape[1], label.shape[0]):
                return False
            pal = np.asarray(img.getpalette() or [], np.uint8).reshape(-1, 3)
            arr = np.asarray(img)
    except (OSError, SyntaxError, ValueError):
        return False
    same_palette = pal.shape == VOC12.palette.shape and (pal == VOC12.palette).all()
    return bool(same_palette and np.array_equal(arr, label))


def _convert_one(image_id: str, tasks: dict[str, tuple[str, str, str, str, str]]) -> tuple:
    """Check and write one id; return (source "voc"/"sbd" or None, "written"/"unchanged"/None,
    problems)."""
    jpg, voc_png, mat, out_png = (Path(p) for p in tasks[image_id][:4])
    listed = tasks[image_id][4]
    problems: list[str] = []
    size = None
    if not jpg.is_file():
        sbd_img = mat.parent.parent / "img" / jpg.name
        hint = f"; copy SBD's {sbd_img} to this path" if sbd_img.is_file() else ""
        problems.append(f"{jpg}: missing image ({listed}){hint}")
    else:
        try:
            with Image.open(jpg) as img:
                size = (img.height, img.width)
        except (OSError, SyntaxError, ValueError) as exc:
            problems.append(f"{jpg}: unreadable image ({exc})")
    source, label = None, None
    if voc_png.is_file():
        source = "voc"
        try:
            label = read_label_map(voc_png, num_classes=VOC12.num_classes)
        except LabelMapError as exc:
            problems.append(str(exc))
    elif mat.is_file():
        source = "sbd"
        try:
            label = read_sbd_segmentation(mat, VOC12.num_classes)
        except SbdError as exc:
            problems.append(str(exc))
    else:
        problems.append(f"{mat}: missing SBD annotation ({listed}), and no {voc_png} either")
    if label is not None and size is not None and label.shape != size:
        where = voc_png if source == "voc" else mat
        problems.append(
            f"{where}: label size {label.shape[1]}x{label.shape[0]} (WxH) differs from image "
            f"size {size[1]}x{size[0]} of {jpg}"
        )
    if problems or label is None:
        return source, None, problems
    if _png_matches(out_png, label):
        return source, "unchanged", []
    write_bytes_atomic(out_png, encode_label_png(label, VOC12.palette))
    return source, "written", []


@dataclasses.dataclass
class SbdConvertResult:
    """Outcome of :func:`convert_sbd`."""

    voc_root: Path
    sbd_root: Path | None  # the SBD dataset folder used, None when not found
    list_counts: dict[str, int]  # "VOC train", "VOC val", "SBD train", "SBD val", "train_aug"
    image_ids: list[str]  # the train_aug ids, sorted
    sources: dict[str, int]  # "voc"/"sbd" -> ids whose annotation came from there
    written: int  # PNGs written by this run
    unchanged: int  # PNGs already present with the same content, skipped
    problems: list[str]  # one line per bad file, naming it
    notes: list[str]  # counts that differ from the full sets
    paths: dict[str, Path]  # "labels_dir", "split_file", "manifest" (split_file only when ok)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = ["SBD -> train_aug"]
        lines += [f"  {k}: {v}" for k, v in self.list_counts.items()]
        lines.append(
            f"  annotations from VOC SegmentationClass: {self.sources.get('voc', 0)}, from "
            f"SBD cls/*.mat: {self.sources.get('sbd', 0)}"
        )
        lines.append(f"  PNGs written: {self.written}, unchanged (skipped): {self.unchanged}")
        lines += [f"  {k}: {v}" for k, v in self.paths.items()]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def convert_sbd(
    voc_root: str | os.PathLike,
    sbd_root: str | os.PathLike,
    *,
    workers: int = 1,
    progress: bool = False,
) -> SbdConvertResult:
    """Write ``train_aug.txt`` and ``SegmentationClassAug/`` into ``voc_root`` from SBD.

    See the module docstring for the rules. Resumable: a PNG that already holds the same
    pixels and palette is skipped; every write is atomic. Good PNGs are written even when other
    ids have problems; ``train_aug.txt`` and the complete manifest only when none has.

    Args:
        voc_root: the ``VOC2012`` folder (JPEGImages/, SegmentationClass/, ImageSets/).
        sbd_root: SBD's ``benchmark_RELEASE/dataset`` folder, or ``benchmark_RELEASE``.
        workers: processes for converting (0 or 1 = in this process).
        progress: show a tqdm bar over the ids.

    Returns:
        A :class:`SbdConvertResult`; ``result.ok`` is False when anything was wrong.

    Raises:
        ImportError: scipy is not installed.
        ManifestError: ``SegmentationClassAug`` holds another kind of fma artifact.
        OutputError: the VOC folder cannot be written.
    """
    voc_root = Path(voc_root)
    layout = DatasetLayout.of("voc12", voc_root)
    seg_dir = layout.labels_dir("train_aug")
    result = SbdConvertResult(voc_root, None, {}, [], {}, 0, 0, [], [], {"labels_dir": seg_dir})
    try:
        sbd = find_sbd_dataset(sbd_root)
    except SbdError as exc:
        result.problems.append(str(exc))
        sbd = None
    result.sbd_root = sbd
    lists: dict[str, list[str]] = {}
    wanted = [("VOC train", layout.split_file("train")), ("VOC val", layout.split_file("val"))]
    if sbd is not None:
        wanted += [("SBD train", sbd / "train.txt"), ("SBD val", sbd / "val.txt")]
    for name, path in wanted:
        if path.is_file():
            lists[name] = read_split_file(path)
        else:
            result.problems.append(f"{path}: missing {name} list")
    if result.problems:
        return result
    _loadmat()  # fail before writing anything when scipy is missing

    ids = train_aug_ids(lists["VOC train"], lists["VOC val"], lists["SBD train"], lists["SBD val"])
    result.image_ids = ids
    result.list_counts = {k: len(set(v)) for k, v in lists.items()} | {"train_aug": len(ids)}
    for key, want in SBD_EXPECTED_COUNTS.items():
        if result.list_counts[key] != want:
            result.notes.append(
                f"{key} has {result.list_counts[key]} ids, not the {want:,} of the full sets "
                "(fine for a partial set)"
            )
    member = {k: set(v) for k, v in lists.items() if k != "VOC val"}
    tasks = {}
    for i in ids:
        listed = "listed in " + ", ".join(k for k in member if i in member[k])
        tasks[i] = (str(layout.image_path("train_aug", i)),
                    str(layout.labels_dir("train") / f"{i}.png"), str(sbd / "cls" / f"{i}.mat"),
                    str(seg_dir / f"{i}.png"), listed)  # fmt: skip

    params: dict[str, Any] = {
        "sbd_root": str(sbd.resolve()), "voc_root": str(voc_root.resolve()),
        "priority": PRIORITY, "complete": False,
    }  # fmt: skip
    manifest = Manifest(
        format=LABEL_FORMAT, version=LABEL_VERSION, count=0, dataset=VOC12.name,
        split="train_aug", class_names=list(VOC12.class_names),
        producer=producer_info("tools/prepare_voc.py"), params=params,
    )  # fmt: skip
    with folder_lock(seg_dir):
        check_compatible(seg_dir, params, format=LABEL_FORMAT, what="train_aug label maps",
                         keys=())  # fmt: skip
        write_manifest(seg_dir, manifest)
        done = map_per_image(ids, _convert_one, (tasks,), workers=workers if workers > 1 else 0,
                             desc="SBD train_aug", progress=progress)  # fmt: skip
        good = 0
        for i in ids:
            source, status, probs = done[i]
            result.problems += probs
            if source is not None:
                result.sources[source] = result.sources.get(source, 0) + 1
            good += status is not None
            result.written += status == "written"
            result.unchanged += status == "unchanged"
        manifest.count = good
        params.update(complete=result.ok, counts=dict(result.list_counts),
                      sources=dict(result.sources))  # fmt: skip
        if result.ok:
            split_file = layout.root / "ImageSets" / "Segmentation" / "train_aug.txt"
            write_text_atomic(split_file, "".join(f"{i}\n" for i in ids))
            result.paths["split_file"] = split_file
        result.paths["manifest"] = write_manifest(seg_dir, manifest)
    return result
