"""Import the official FMA-WSSS release (``experiment.tar``) into fma's formats.

:func:`import_official` finds the artifacts under a source folder (the unpacked release or any
folder below it) and converts each into fma's layout, so every fma stage can run on the
authors' inputs and its outputs can be compared with theirs (``tools/eval_labels.py
--compare``). The official formats are described, with their origin in the authors' code, in
:mod:`fma.io.official_release`. An artifact is found by its folder name:

=============  ==========================  ================================================
folder         holds                       written as (``<out>/<relative path>/<leaf>``)
=============  ==========================  ================================================
``anns``       ``<id>.pkl`` SAM masks      ``masks/<id>.npz`` (version 2, levels kept)
``cam``,       ``<id>.npz`` CAMs           ``cam/`` or ``cam_affed/<id>.npz`` (fma ``cams``,
``cam_affed``                              ``fg_cls`` as dataset ids)
``seed``       ``<id>.png`` seeds          ``seeds/<id>.png`` (palette PNGs, ``label_maps``)
``checkpoints``  ``<name>.pth`` prompts    ``checkpoints/<name>.pth`` (stage I checkpoint)
=============  ==========================  ================================================

A source folder with another name and no subfolders is taken by its content (``.pkl``,
``.npz``, ``.png`` or ``.pth`` files). Path components are made ASCII: the middle dot U+00B7 of
the authors' folder names (their decimal point) becomes ``.``, other characters outside
``[A-Za-z0-9._-]`` become ``_``. Every folder gets a ``manifest.json`` whose ``params`` say
``origin: "official release"`` and the source folder; ``<out>/import.json`` lists every
conversion. Folders of per-image files are stage runs (:func:`fma.stage.run_per_image`):
finished files are skipped on a rerun, and a folder imported from another source is refused.

Dataset and split: ``VOC`` / ``COCO`` path components give ``voc12`` / ``coco14``;
``split=<name>`` or a ``train`` / ``val`` / ``test`` / ``train_aug`` component (the folder or
one of its three parents) gives the split;
CAMs and seeds without one are on the training split the authors' seeding configs read
(``cfg.dt.ini.split``: ``'train_aug'`` at :17 of ``configs/VOC/seg/infer/final/<caa>/ann,affed/
cfg.py`` (68475119), ``'train'`` at :17 of ``configs/COCO/seg/infer/45k/ann/cfg.py``
(0669d36)). ``dataset`` / ``split`` arguments override all of this. The Mask2Former checkpoint
of the release (``others/mmseg/<config>/*.pth``) needs no conversion and is not touched.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fma.io.atomic import write_bytes_atomic, write_json_atomic
from fma.io.cams import FORMAT as CAMS_FORMAT
from fma.io.cams import VERSION as CAMS_VERSION
from fma.io.cams import load_cam, save_cam
from fma.io.label_maps import read_label_map, write_label_map
from fma.io.manifest import (
    Manifest,
    check_compatible,
    file_sha256,
    folder_lock,
    producer_info,
    read_manifest,
    write_manifest,
)
from fma.io.masks.records import FORMAT as SAM_FORMAT
from fma.io.masks.records import VERSION as SAM_VERSION
from fma.io.masks.records import save_sam_masks
from fma.io.official_release import official_mask_records
from fma.stage import StageReport, run_per_image

__all__ = ["KINDS", "ORIGIN", "Artifact", "convert_prompt_checkpoint", "find_official",
           "import_official"]  # fmt: skip

ORIGIN = "official release"
PRODUCER = "tools/import_official.py"
#: Artifact kinds and the source folder names that hold them.
KINDS = {"masks": ("anns",), "cams": ("cam", "cam_affed"), "seeds": ("seed",),
         "prompts": ("checkpoints",)}  # fmt: skip
_SUFFIX = {"masks": ".pkl", "cams": ".npz", "seeds": ".png", "prompts": ".pth"}
_OUT_SUFFIX = {"masks": ".npz", "cams": ".npz", "seeds": ".png", "prompts": ".pth"}
_OUT_LEAF = {"anns": "masks", "seed": "seeds"}
_DATASETS = {"voc": "voc12", "voc2012": "voc12", "coco": "coco14", "coco2014": "coco14"}
_SPLITS = ("train", "train_aug", "val", "test")
#: The training split of the authors' seeding runs, for CAMs and seeds whose path names none.
RELEASE_SPLIT = {"voc12": "train_aug", "coco14": "train"}
_SKIP_DIRS = {"viz", "stdout", "summary", "eval"}
#: Labels of the seed and label-map manifests of the import.
SEEDS_FORMAT, SEEDS_VERSION = "label_maps", 1


@dataclasses.dataclass
class Artifact:
    """One source folder to convert, and where it goes."""

    kind: str  # a key of KINDS
    src: Path
    out: Path
    ids: list[str]  # image ids (file stems); checkpoint names for "prompts"
    dataset: str | None = None
    split: str | None = None
    split_from: str | None = None  # "path", "argument" or "release layout"
    report: StageReport | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "kind": self.kind, "src": str(self.src), "out": str(self.out),
            "dataset": self.dataset, "split": self.split, "split_from": self.split_from,
            "files": len(self.ids), "written": len(r.done) if r else 0,
            "skipped": len(r.skipped) if r else 0, "failed": dict(list(r.failed.items())[:20])
            if r else {}, "n_failed": len(r.failed) if r else 0,
        }  # fmt: skip


def _ascii_name(part: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", part.replace("\u00b7", "."))
    return re.sub(r"_+", "_", text).strip("_") or "_"


def _files(folder: Path, suffix: str) -> list[str]:
    return sorted(
        e.name[: -len(suffix)]
        for e in os.scandir(folder)
        if e.is_file() and e.name.endswith(suffix) and not e.name.startswith(".")
    )


def _kind_of(folder: Path, by_content: bool) -> str | None:
    for kind, names in KINDS.items():
        if folder.name in names and _files(folder, _SUFFIX[kind]):
            return kind
    if by_content:
        for kind, suffix in _SUFFIX.items():
            if _files(folder, suffix):
                return kind
    return None


def _dataset_of(path: Path) -> str | None:
    for part in reversed(path.resolve().parts):
        if part.lower() in _DATASETS:
            return _DATASETS[part.lower()]
    return None


def _split_of(path: Path) -> str | None:
    """``split=<name>`` or a split name among the folder and its three parents (the release
    puts it there: ``sams/split=train_aug/anns``, ``sams/train/anns``)."""
    for part in reversed(path.resolve().parts[-4:]):
        if part.startswith("split="):
            return part[len("split=") :]
        if part in _SPLITS:
            return part
    return None


def find_official(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    kinds: Sequence[str] = tuple(KINDS),
    dataset: str | None = None,
    split: str | None = None,
) -> list[Artifact]:
    """The artifact folders under ``src`` and their output folders (see the module docstring).

    Raises:
        FileNotFoundError: ``src`` is not a folder.
        ValueError: an unknown kind or dataset, or two sources that map to one output folder.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: source folder not found (the unpacked experiment.tar)")
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        raise ValueError(f"unknown kinds {bad}; choose from {sorted(KINDS)}")
    if dataset is not None and dataset not in RELEASE_SPLIT:
        raise ValueError(f"dataset must be one of {sorted(RELEASE_SPLIT)}, got {dataset!r}")
    found: list[Artifact] = []
    for root, dirs, _ in os.walk(src):
        folder = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        kind = _kind_of(folder, by_content=folder == src and not dirs)
        if kind is None:
            continue
        dirs[:] = []  # an artifact folder holds files, not further artifacts
        if kind not in kinds:
            continue
        rel = folder.relative_to(src).parts or (folder.name,)
        leaf = _OUT_LEAF.get(rel[-1], rel[-1])
        target = out.joinpath(*(_ascii_name(p) for p in (*rel[:-1], leaf)))
        ds = dataset or _dataset_of(folder)
        sp, sp_from = (split, "argument") if split else (_split_of(folder), "path")
        if sp is None and kind in ("cams", "seeds") and ds in RELEASE_SPLIT:
            sp, sp_from = RELEASE_SPLIT[ds], "release layout"
        art = Artifact(kind, folder, target, _files(folder, _SUFFIX[kind]), ds, sp,
                       sp_from if sp else None)  # fmt: skip
        found.append(art)
    targets: dict[Path, Path] = {}
    for a in found:
        if a.out in targets:
            raise ValueError(f"{targets[a.out]} and {a.src} would both be written to {a.out}")
        targets[a.out] = a.src
    return found


# ------------------------------------------------------------------------------ per file
def _mask_one(image_id: str, src: str, out: str) -> None:
    path = Path(src) / f"{image_id}.pkl"
    records, h, w = official_mask_records(path)
    save_sam_masks(Path(out) / f"{image_id}.npz", image_id, h, w, records)


def _cam_one(image_id: str, src: str, out: str, num_classes: int | None) -> None:
    path = Path(src) / f"{image_id}.npz"
    rec = load_cam(path, with_att=True)  # the official 0-based fg_cls become dataset ids
    if num_classes is not None and rec.fg_cls.size and int(rec.fg_cls.max()) >= num_classes:
        raise ValueError(
            f"{path}: class ids {rec.fg_cls.tolist()} exceed the dataset's {num_classes} "
            "classes; pass the right --dataset"
        )
    save_cam(Path(out) / f"{image_id}.npz", rec)


def _seed_one(image_id: str, src: str, out: str, num_classes: int | None, palette: Any) -> None:
    label = read_label_map(Path(src) / f"{image_id}.png", num_classes=num_classes)
    write_label_map(Path(out) / f"{image_id}.png", label, palette)


def convert_prompt_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> dict[str, Any]:
    """Write an official prompt checkpoint as an fma stage I checkpoint, atomically.

    The source holds ``{"prompt_learner.ctx": tensor}`` (what the official ``get_state``
    keeps, see :mod:`fma.io.official_release`); it is read with ``weights_only=True``. The
    output is what ``tools/test.py`` loads (``weights_only=True`` as well):
    ``{"meta": {"fma_import": info}, "state_dict": {"prompt_learner.ctx": float32 tensor}}``.

    Returns:
        ``info``: origin, source path and sha256, ``ctx_shape``, ``n_ctx``, ``csc`` and
        ``num_prompts`` (G for class-specific contexts, else None); a model built with the
        same ``n_ctx``, ``csc`` and number of prompts loads it.

    Raises:
        ValueError: not a prompt checkpoint (the message lists its keys) or a context that is
            not (M, D) or (G, M, D).
    """
    import torch

    src, dst = Path(src), Path(dst)
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for bad files
        raise ValueError(f"{src}: not a readable torch checkpoint ({exc})") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    keys = sorted(obj) if isinstance(obj, Mapping) else []
    ctx_keys = [k for k in keys if str(k).endswith("prompt_learner.ctx")]
    if len(ctx_keys) != 1 or len(keys) != 1:
        raise ValueError(
            f"{src}: not a prompt checkpoint of the official CoOp learner (expected the single "
            f"key 'prompt_learner.ctx', found {keys[:10] or type(obj).__name__})"
        )
    ctx = obj[ctx_keys[0]]
    if not isinstance(ctx, torch.Tensor) or ctx.ndim not in (2, 3) or not ctx.is_floating_point():
        raise ValueError(f"{src}: prompt_learner.ctx must be a float (M, D) or (G, M, D) tensor")
    ctx = ctx.detach().to("cpu", torch.float32).contiguous().clone()
    info = {
        "origin": ORIGIN, "source": str(src), "source_sha256": file_sha256(src),
        "ctx_shape": list(ctx.shape), "n_ctx": int(ctx.shape[-2]), "csc": ctx.ndim == 3,
        "num_prompts": int(ctx.shape[0]) if ctx.ndim == 3 else None,
    }  # fmt: skip
    buf = io.BytesIO()
    torch.save({"meta": {"fma_import": info}, "state_dict": {"prompt_learner.ctx": ctx}}, buf)
    write_bytes_atomic(dst, buf.getvalue())
    return info


def _prompt_one(name: str, src: str, out: str) -> None:
    convert_prompt_checkpoint(Path(src) / f"{name}.pth", Path(out) / f"{name}.pth")


# ------------------------------------------------------------------------------ per folder
def _label_space(dataset: str | None) -> tuple[list[str] | None, Any]:
    from fma.datasets.meta import get_dataset_meta
    from fma.io.label_maps import bitwise_palette

    if dataset is None:
        return None, bitwise_palette()
    meta = get_dataset_meta(dataset)
    return list(meta.class_names), meta.palette


def _manifest(a: Artifact, params: dict[str, Any], count: int) -> Manifest:
    names, _ = _label_space(a.dataset)
    fmt, version = {"masks": (SAM_FORMAT, SAM_VERSION), "cams": (CAMS_FORMAT, CAMS_VERSION),
                    "seeds": (SEEDS_FORMAT, SEEDS_VERSION)}[a.kind]  # fmt: skip
    return Manifest(
        format=fmt, version=version, count=count, dataset=a.dataset, split=a.split,
        class_names=names if a.kind != "masks" else None, producer=producer_info(PRODUCER),
        params=params,
    )  # fmt: skip


def _run(a: Artifact, ids: list[str], workers: int, progress: bool) -> StageReport:
    names, palette = _label_space(a.dataset)
    n = len(names) if names is not None else None
    jobs = {"masks": (_mask_one, ()), "cams": (_cam_one, (n,)),
            "seeds": (_seed_one, (n, palette)), "prompts": (_prompt_one, ())}  # fmt: skip
    fn, extra = jobs[a.kind]
    suffix = _OUT_SUFFIX[a.kind]
    return run_per_image(
        ids, fn, (str(a.src), str(a.out), *extra),
        output_path=lambda i: a.out / f"{i}{suffix}", workers=workers if a.kind != "prompts"
        else 0, desc=f"import {a.kind} {a.out.name}", progress=progress,
    )  # fmt: skip


def _import_folder(a: Artifact, ids: list[str], workers: int, progress: bool) -> StageReport:
    if a.kind == "prompts":
        a.out.mkdir(parents=True, exist_ok=True)
        return _run(a, ids, 0, progress)
    params: dict[str, Any] = {"origin": ORIGIN, "src_dir": str(a.src), "split_from": a.split_from,
                              "source_files": len(a.ids)}  # fmt: skip
    if a.kind == "masks":
        params.update(mask_source="official_release", file_suffix=".npz")
    elif a.kind == "seeds":
        params.update(method="official_release")
    what = {"masks": "SAM masks", "cams": "CAMs", "seeds": "seeds"}[a.kind]
    fmt = _manifest(a, {}, 0).format
    with folder_lock(a.out):
        check_compatible(a.out, params, format=fmt, what=what, keys=("origin", "src_dir"),
                         paths=("src_dir",), only_recorded=False,
                         hint="import into another folder")  # fmt: skip
        old = read_manifest(a.out, required=False)
        if old is not None and (old.dataset, old.split) != (a.dataset, a.split):
            raise ValueError(
                f"{a.out}: holds {what} of dataset {old.dataset!r} split {old.split!r}, this "
                f"import is {a.dataset!r} {a.split!r}; import into another folder"
            )
        write_manifest(a.out, _manifest(a, {**params, "complete": False}, 0))
        report = _run(a, ids, workers, progress)
        suffix = _OUT_SUFFIX[a.kind]
        count = sum(1 for i in a.ids if (a.out / f"{i}{suffix}").is_file())
        complete = report.ok and count == len(a.ids)
        write_manifest(a.out, _manifest(a, {**params, "complete": complete}, count))
    return report


def import_official(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    kinds: Sequence[str] = tuple(KINDS),
    dataset: str | None = None,
    split: str | None = None,
    image_ids: Sequence[str] | None = None,
    workers: int = 0,
    progress: bool = True,
) -> list[Artifact]:
    """Convert every artifact folder under ``src`` into fma's layout under ``out``.

    Args:
        src: the unpacked release, or a folder below it.
        out: destination root (created).
        kinds: which of :data:`KINDS` to convert.
        dataset: ``voc12`` or ``coco14`` for every folder (default: from the path).
        split: split name for every folder (default: from the path, see the module docstring).
        image_ids: convert only these images (checkpoints are always converted).
        workers: worker processes per folder (0: this process).
        progress: show progress bars.

    Returns:
        The :class:`Artifact` list with each folder's :class:`fma.stage.StageReport`; failed
        files (a hostile pickle, a corrupt file) are listed there by id with the error, the
        rest are written. ``<out>/import.json`` records the same.

    Raises:
        FileNotFoundError: ``src`` is not a folder, or it holds no artifact of ``kinds``.
        fma.io.ManifestError / ValueError: an output folder made from another source.
    """
    found = find_official(src, out, kinds=kinds, dataset=dataset, split=split)
    if not found:
        raise FileNotFoundError(
            f"{src}: no official artifacts found (folders anns/ with .pkl, cam/ or cam_affed/ "
            "with .npz, seed/ with .png, checkpoints/ with .pth)"
        )
    wanted = None if image_ids is None else set(image_ids)
    for a in found:
        ids = a.ids if wanted is None or a.kind == "prompts" else [i for i in a.ids if i in wanted]
        a.report = _import_folder(a, ids, workers, progress)
    summary_path = Path(out) / "import.json"
    items: dict[str, Any] = {}
    if summary_path.is_file():
        try:
            items = {i["out"]: i for i in json.loads(summary_path.read_text())["items"]}
        except (OSError, ValueError, KeyError, TypeError):
            items = {}
    items.update({str(a.out): a.to_dict() for a in found})
    write_json_atomic(summary_path, {"format": "official_import", "version": 1,
                                     "origin": ORIGIN, "items": list(items.values())})  # fmt: skip
    return found
