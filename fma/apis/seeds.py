"""SAMS over a whole split: a CAM folder and a SAM mask folder in, a seed folder out.

:func:`run_seeding` is the library function behind ``tools/make_seeds.py``. It reads
``<cam_dir>/<id>.npz`` (format ``cams``) and ``<mask_dir>/<id>.npz`` (or ``.json.gz``, ``.json``)
(format ``sam_masks``, located with :func:`fma.io.masks.records.find_mask_file`), checks both
folders' manifests, and writes ``<out_dir>/<id>.png`` (mode ``P``, dataset palette,
0 = background, no 255) plus a ``manifest.json`` of format ``label_maps``. Images whose seed
already exists are skipped, so an interrupted run resumes where it stopped; a folder made with
other settings is refused rather than mixed. Production seeding never reads ground truth.

:func:`fma.apis.sweeps.sweep_gamma` is a separate analysis function: it scores a grid of
background exponents against ground truth and returns the table. Nothing here calls it.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fma.datasets.layout import DatasetLayout
from fma.io import cams as cam_io
from fma.io.label_maps import write_label_map
from fma.io.manifest import (
    Manifest,
    ManifestError,
    check_compatible,
    folder_lock,
    producer_info,
    read_manifest,
    write_manifest,
)
from fma.io.masks import records as mask_io
from fma.io.masks.runs import MaskRuns, load_mask_runs
from fma.seeding.sams import sams_seed, top_mask, upsample_cam
from fma.seeding.sams_options import SamsOptions
from fma.stage import StageReport, run_per_image
from fma.visualization.masks import distinct_colors

__all__ = [
    "SEEDS_FORMAT",
    "SEEDS_VERSION",
    "list_cam_ids",
    "run_seeding",
    "seeding_kwargs",
    "write_seed_panels",
]

#: Format name and version written into the seed folder's manifest.
SEEDS_FORMAT = "label_maps"
SEEDS_VERSION = 1
MAX_LISTED_MISSING = 20
_HINT = "delete the folder or choose another out_dir/--work-dir"


def _label_space(dataset: str, data_root: str | os.PathLike | None) -> tuple[list[str], np.ndarray]:
    from fma.datasets.checks import dataset_label_space

    if DatasetLayout.of(dataset, data_root or ".").dataset == "custom" and data_root is None:
        raise ValueError("dataset='custom' needs data_root (its classes.txt names the classes)")
    return dataset_label_space(dataset, data_root or ".")


def list_cam_ids(cam_dir: str | os.PathLike) -> list[str]:
    """Sorted ids of the ``<id>.npz`` files of a CAM folder."""
    cam_dir = Path(cam_dir)
    if not cam_dir.is_dir():
        raise FileNotFoundError(f"{cam_dir}: CAM folder not found; run tools/test.py with --out")
    return sorted(p.stem for p in cam_dir.glob("*.npz") if not p.name.startswith("."))


def _check_inputs(
    cam_dir: Path,
    mask_dir: Path,
    dataset: str,
    split: str | None,
    class_names: list[str],
    image_ids: Sequence[str] | None,
) -> tuple[str | None, list[str]]:
    """Check both manifests and that every id has a CAM and a mask file; returns (split, ids)."""
    cams_m = read_manifest(
        cam_dir, format=cam_io.FORMAT, version=cam_io.VERSION, dataset=dataset, split=split
    )
    split = split if split is not None else cams_m.split
    read_manifest(
        mask_dir, format=mask_io.FORMAT, version=mask_io.VERSION, dataset=dataset, split=split
    )
    if cams_m.class_names is not None and list(cams_m.class_names) != class_names:
        raise ManifestError(
            f"{cam_dir}: CAMs name other classes than dataset {dataset!r}; point to the right "
            "folder or set the matching dataset"
        )
    ids = list(image_ids) if image_ids is not None else list_cam_ids(cam_dir)
    checks: list[tuple[Path, str, Callable[[str], bool], str]] = [
        (cam_dir, ".npz", lambda i: (cam_dir / f"{i}.npz").is_file(),
         "run tools/test.py with --out for them"),
        (mask_dir, f"mask ({', '.join(mask_io.MASK_SUFFIXES[:-1])} or {mask_io.MASK_SUFFIXES[-1]})",
         lambda i: mask_io.find_mask_file(mask_dir, i) is not None,
         "run tools/gen_sam_masks.py for them"),
    ]  # fmt: skip
    for folder, suffix, exists, hint in checks:
        missing = [i for i in ids if not exists(i)]
        if missing:
            shown = ", ".join(missing[:MAX_LISTED_MISSING])
            more = f" and {len(missing) - MAX_LISTED_MISSING} more" if len(missing) > 20 else ""
            raise FileNotFoundError(
                f"{folder}: no {suffix} file for {len(missing)} of {len(ids)} images "
                f"({shown}{more}); {hint}"
            )
    return split, ids


def _load_pair(
    image_id: str, cam_dir: str, mask_dir: str, num_classes: int
) -> tuple[cam_io.CamRecord, MaskRuns, str]:
    cam_path = Path(cam_dir) / f"{image_id}.npz"
    mask_path = mask_io.find_mask_file(mask_dir, image_id)
    if mask_path is None:
        raise FileNotFoundError(
            f"{mask_dir}: no mask file "
            f"{' or '.join(image_id + suffix for suffix in mask_io.MASK_SUFFIXES)}; "
            "run tools/gen_sam_masks.py for it"
        )
    cam = cam_io.load_cam(cam_path)  # refuses a CAM that does not fit its own ori_size
    masks = load_mask_runs(mask_path)
    if cam.ori_size is not None and tuple(cam.ori_size) != tuple(masks.shape):
        raise ValueError(
            f"{cam_path}: CAM is for an image of size {tuple(cam.ori_size)}, masks {mask_path} "
            f"are {tuple(masks.shape)}; the CAM and mask folders belong to different images or "
            "resizings"
        )
    # Files without ori_size (the authors' layout) are checked against the masks' size.
    cam_io.check_cam_size(cam, masks.shape, path=cam_path, source=f"the size of {mask_path}")
    if cam.fg_cls.size and int(cam.fg_cls.max()) >= num_classes:
        raise ValueError(
            f"{cam_path}: class ids {cam.fg_cls.tolist()} exceed the dataset's {num_classes} "
            "classes; wrong dataset?"
        )
    return cam, masks, f"{cam_path} + {mask_path}"


def _set_threads(threads: int) -> None:
    """Limit torch's intra-op threads in a worker, if torch is loaded (seeding itself never
    imports it: the CAM resize is numpy)."""
    torch = sys.modules.get("torch")
    if threads > 0 and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _seed_one(
    image_id: str,
    cam_dir: str,
    mask_dir: str,
    out_dir: str,
    options: SamsOptions,
    palette: np.ndarray,
    num_classes: int,
    threads: int,
) -> None:
    """Per-image work of :func:`run_seeding` (module level, so worker processes can run it)."""
    _set_threads(threads)
    cam, masks, names = _load_pair(image_id, cam_dir, mask_dir, num_classes)
    try:
        result = sams_seed(cam, masks, options)
    except ValueError as exc:
        raise ValueError(f"{names}: {exc}") from exc
    write_label_map(Path(out_dir) / f"{image_id}.png", result.seed, palette)


def run_seeding(
    cam_dir: str | os.PathLike,
    mask_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    dataset: str,
    options: SamsOptions,
    split: str | None = None,
    data_root: str | os.PathLike | None = None,
    image_ids: Sequence[str] | None = None,
    workers: int = 0,
    progress: bool = True,
    show_dir: str | os.PathLike | None = None,
    num_show: int = 8,
    config: str | os.PathLike | None = None,
    tool: str = "tools/make_seeds.py",
) -> StageReport:
    """Write the SAMS seed of every image of a CAM folder.

    Args:
        cam_dir: folder of ``<id>.npz`` CAMs with a ``cams`` manifest.
        mask_dir: folder of ``<id>.npz`` (or ``.json.gz``, ``.json``) SAM masks with a ``sam_masks``
            manifest.
        out_dir: seed folder (created); existing seeds are kept and skipped.
        dataset: ``voc12``, ``coco14`` or ``custom`` (class names and palette).
        options: the SAMS settings. ``no_bg``/``alpha_bg`` need CAMs with a background
            channel, which fma's CAM files do not have, so they are refused here.
        split: expected split of both inputs (default: the CAM manifest's).
        data_root: dataset root; needed for ``custom`` and for the images of ``show_dir``.
        image_ids: ids to seed (default: every CAM file).
        workers: 0 runs in this process; N > 0 uses N worker processes (one torch thread each).
        progress: show a progress bar.
        show_dir: when set, write image | CAM | masks | seed panels of ``num_show`` images.
        num_show: number of panels (evenly spaced over the ids).
        config: config file recorded in the manifest.
        tool: tool name recorded in the manifest.

    Returns:
        :class:`fma.stage.StageReport`; images that failed are listed there by id with the
        error, the others are written.

    Raises:
        ValueError: invalid settings, or ``out_dir`` holds seeds made with other settings.
        ManifestError: a missing or mismatching input manifest.
        FileNotFoundError: a missing input folder, or ids without a CAM or mask file.
    """
    if options.has_bg_channel:
        raise ValueError(
            f"bg_method={options.bg_method!r} needs CAMs with a background channel; fma CAM "
            "files hold foreground channels only. Use 'pow' or 'thresh'."
        )
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    cam_dir, mask_dir, out_dir = Path(cam_dir), Path(mask_dir), Path(out_dir)
    for folder, what in ((cam_dir, "CAM"), (mask_dir, "SAM mask")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: {what} folder not found")
    class_names, palette = _label_space(dataset, data_root)
    ds_key = DatasetLayout.of(dataset, data_root or ".").dataset
    split, ids = _check_inputs(cam_dir, mask_dir, ds_key, split, class_names, image_ids)
    params: dict[str, Any] = {
        "method": "sams",
        "options": options.to_dict(),
        "cam_dir": str(cam_dir),
        "mask_dir": str(mask_dir),
        "complete": False,
    }
    with folder_lock(out_dir):
        check_compatible(
            out_dir, params, format=SEEDS_FORMAT, what="seeds", keys=("options", "cam_dir",
            "mask_dir"), paths=("cam_dir", "mask_dir"), hint=_HINT,
        )  # fmt: skip
        manifest = Manifest(
            format=SEEDS_FORMAT, version=SEEDS_VERSION, count=0, dataset=ds_key, split=split,
            class_names=class_names, producer=producer_info(tool, config), params=params,
        )  # fmt: skip
        write_manifest(out_dir, manifest)
        report = run_per_image(
            ids,
            _seed_one,
            (str(cam_dir), str(mask_dir), str(out_dir), options, palette, len(class_names),
             1 if workers > 0 else 0),
            output_path=lambda i: out_dir / f"{i}.png",
            workers=workers,
            desc=f"seeds {split or ''}".strip(),
            progress=progress,
        )  # fmt: skip
        manifest.count = sum(1 for i in ids if (out_dir / f"{i}.png").is_file())
        params.update(complete=report.ok and manifest.count == len(ids), images=len(ids))
        write_manifest(out_dir, manifest)
        if show_dir is not None and num_show > 0:
            image_path = None
            if data_root is not None:
                layout = DatasetLayout.of(dataset, data_root)
                image_path = lambda i: layout.image_path(split or "", i)  # noqa: E731
            done = [i for i in ids if i not in report.failed]
            step = max(1, len(done) // num_show)
            write_seed_panels(
                done[::step][:num_show], cam_dir, mask_dir, show_dir, options, palette,
                image_path=image_path, num_classes=len(class_names), class_names=class_names,
            )  # fmt: skip
        return report


def seeding_kwargs(**section: Any) -> dict[str, Any]:
    """:func:`run_seeding`'s keyword arguments from the entries of a config's ``seeding`` section.

    The section lists the :class:`~fma.seeding.sams_options.SamsOptions` fields flat
    (``gamma=0.6, priority=(...)``) beside run_seeding's other arguments; they become one
    ``options``. The function's signature names every valid section key (the config checks of
    :func:`fma.engine.config.load_section` read it).

    Raises:
        ValueError: invalid SAMS settings.
    """
    options, rest = SamsOptions.from_section(section)
    return {**rest, "options": options}


def _section_signature() -> inspect.Signature:
    """run_seeding's parameters with the SamsOptions fields in place of ``options``."""
    params = [p for n, p in inspect.signature(run_seeding).parameters.items() if n != "options"]
    names = sorted([p.name for p in params] + list(SamsOptions.field_names()))
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature([inspect.Parameter(n, kind, default=None) for n in names])


seeding_kwargs.__signature__ = _section_signature()  # type: ignore[attr-defined]


def write_seed_panels(
    image_ids: Sequence[str],
    cam_dir: str | os.PathLike,
    mask_dir: str | os.PathLike,
    show_dir: str | os.PathLike,
    options: SamsOptions,
    palette: np.ndarray,
    *,
    image_path: Callable[[str], Path] | None = None,
    num_classes: int = 256,
    class_names: Sequence[str] | None = None,
) -> list[Path]:
    """Write ``<show_dir>/<id>.png``: image | CAM (max over classes) | masks | seed.

    A legend under the panel names the colour of every label in the seed (``class_names``;
    None shows the ids).

    The CAM panel overlays the max over classes of the upsampled, ReLU'd and per-class min-max
    normalised CAM; the masks panel colours each pixel by its top mask in painting order
    (uncovered pixels keep the image); the seed panel colours the labels with ``palette``.
    Without ``image_path`` (or an unreadable image) the image is mid-grey.

    Returns:
        Paths written.
    """
    from fma.visualization.panels import (
        add_legend,
        colorize,
        overlay,
        panel_image,
        save_png,
        side_by_side,
    )

    written = []
    for image_id in image_ids:
        cam, masks, _ = _load_pair(image_id, str(cam_dir), str(mask_dir), num_classes)
        result = sams_seed(cam, masks, options)
        H, W = masks.shape
        img = panel_image(Path(image_path(image_id)) if image_path else None, (H, W))
        up = np.maximum(upsample_cam(cam.cam, (H, W)), 0.0)
        if up.shape[0]:
            lo = up.min(axis=(1, 2), keepdims=True)
            hi = up.max(axis=(1, 2), keepdims=True)
            heat = ((up - lo) / (hi - lo + 1e-7)).max(axis=0)
        else:
            heat = np.zeros((H, W), np.float32)
        top = top_mask(masks, result.order)
        colours = distinct_colors(len(masks))[top + 1]
        mask_rgb = np.round(0.5 * img + 0.5 * colours).astype(np.uint8)
        mask_rgb[top < 0] = img[top < 0]
        panel = side_by_side(
            [img, overlay(img, heat.astype(np.float32)), mask_rgb, colorize(result.seed, palette)],
            titles=[image_id, "CAM (max over classes)", f"{len(masks)} masks", "seed"],
        )
        panel = add_legend(panel, [result.seed], class_names, palette)
        path = Path(show_dir) / f"{image_id}.png"
        save_png(path, panel)
        written.append(path)
    return written
