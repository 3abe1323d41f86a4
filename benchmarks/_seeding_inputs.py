"""Inputs of the seeding benchmark: images, pseudo labels, CAMs and masks in every layout.

With the mini VOC set (``--voc-mini``): the first ``n`` train images, their TransCAM pseudo
labels, CAMs derived from those labels (each present class's region average-pooled onto the
16-pixel patch grid, plus noise; ``fg_cls`` = the ground-truth classes) and SLIC superpixels of
the real images at three levels, generated with ``tools/gen_sam_masks.py``'s library function
in ``workers`` processes, with about ``k`` masks per image (about 60 / 30 / 10 % per level).
Without it: 375x500 synthetic images (ellipse labels, SAM-like ellipse masks, random CAMs).
The masks are written as fma mask files of both versions (``masks/<id>.npz``, version 2, and
``masks_v1/<id>.json.gz``, version 1, the same records) and as amg.py folders (one PNG per mask)
for the reference merge.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _sepl_bench
from oracle_masks import cam_from_label

from fma.io import Manifest, read_label_map, write_label_map, write_manifest
from fma.io.cams import CamRecord, save_cam
from fma.io.masks.amg import write_amg_folder
from fma.io.masks.records import (
    encode_rle,
    load_sam_masks,
    make_record,
    read_sam_records,
    save_sam_masks,
)


@dataclasses.dataclass
class Inputs:
    ids: list[str]
    labels: Path  # <id>.png pseudo labels
    cams: Path  # <id>.npz CAMs
    masks: Path  # fma <id>.npz masks (version 2)
    masks_v1: Path  # the same as <id>.json.gz (version 1)
    amg: Path  # amg.py <id>/<k>.png folders
    ids_file: Path
    source: str  # what the images are
    masks_per_image: float
    seconds: dict[str, float]


def _real(voc_mini: Path, work: Path, n: int, k: int, workers: int) -> tuple[list[str], str]:
    from fma.apis.sam_masks import run_sam_masks
    from fma.datasets.layout import DatasetLayout

    layout = DatasetLayout.of("voc12", voc_mini / "VOC2012")
    ids = layout.image_ids("train")[:n]
    rng = np.random.default_rng(0)
    for image_id in ids:
        gt = read_label_map(layout.labels_dir("train") / f"{image_id}.png")
        pseudo = read_label_map(voc_mini / "pseudo_labels" / "transcam" / f"{image_id}.png")
        write_label_map(work / "labels" / f"{image_id}.png", pseudo)
        fg = [c for c in np.unique(gt).tolist() if c not in (0, 255)]
        cam = cam_from_label(pseudo, fg, rng)
        save_cam(work / "cams" / f"{image_id}.npz", CamRecord(cam, np.array(fg), gt.shape))
    # SLIC returns about 3/4 of the segments asked for on these images.
    scales = (round(0.8 * k), round(0.4 * k), max(1, round(0.13 * k)))
    res = run_sam_masks(
        work / "gen", dataset="voc12", data_root=voc_mini / "VOC2012", split="train",
        image_ids=ids, source="superpixels", preset="slic",
        preset_overrides=dict(scales=scales), workers=workers, progress=False,
    )  # fmt: skip
    assert res.report.ok, res.report.summary()
    res.out_dir.rename(work / "masks")
    return ids, f"{len(ids)} real mini-VOC train images, SLIC superpixels"


def _synthetic(work: Path, n: int, k: int) -> tuple[list[str], str]:
    ids = [f"syn_{i:04d}" for i in range(n)]
    rng = np.random.default_rng(0)
    for s, image_id in enumerate(ids):
        label, masks = _sepl_bench.synthetic_image(k, seed=s)
        write_label_map(work / "labels" / f"{image_id}.png", label)
        fg = [c for c in np.unique(label).tolist() if c] or [1]
        cam = cam_from_label(label, fg, rng)
        save_cam(work / "cams" / f"{image_id}.npz", CamRecord(cam, np.array(fg), label.shape))
        recs = [make_record(r, area=int(m.sum()), bbox=[0, 0, 1, 1], level=int(rng.integers(0, 3)))
                for r, m in zip(encode_rle(masks), masks, strict=True)]  # fmt: skip
        save_sam_masks(work / "masks" / f"{image_id}.npz", image_id, *label.shape, recs)
    write_manifest(work / "masks", Manifest("sam_masks", 1, n, "voc12", "train"))
    return ids, f"{n} synthetic 375x500 images, SAM-like ellipse masks"


def write_v1_copy(src: Path, dst: Path, ids: list[str]) -> None:
    """``dst/<id>.json.gz`` (version 1) with the records of every ``src/<id>.npz``."""
    for image_id in ids:
        doc = read_sam_records(src / f"{image_id}.npz")
        save_sam_masks(dst / f"{image_id}.json.gz", image_id, doc["height"], doc["width"],
                       doc["masks"])  # fmt: skip
    write_manifest(dst, Manifest("sam_masks", 1, len(ids), "voc12", "train"))


def build(work: Path, voc_mini: Path | None, n: int, k: int, workers: int, n_amg: int) -> Inputs:
    """Write every input under ``work``; amg.py folders for the first ``n_amg`` images."""
    seconds = {}
    t0 = time.perf_counter()
    if voc_mini is not None and (voc_mini / "VOC2012").is_dir():
        ids, source = _real(voc_mini, work, n, k, workers)
    else:
        ids, source = _synthetic(work, n, k)
    seconds["labels, CAMs and fma masks"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_v1_copy(work / "masks", work / "masks_v1", ids)
    seconds["version-1 copies"] = time.perf_counter() - t0
    write_manifest(work / "cams", Manifest("cams", 1, len(ids), "voc12", "train"))
    ids_file = work / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    t0 = time.perf_counter()
    counts = []
    for image_id in ids[:n_amg]:
        sam = load_sam_masks(work / "masks" / f"{image_id}.npz")
        counts.append(len(sam))
        write_amg_folder(work / "amg" / image_id, sam.masks)
    seconds["amg PNG folders"] = time.perf_counter() - t0
    mean_k = float(np.mean(counts)) if counts else 0.0
    return Inputs(ids, work / "labels", work / "cams", work / "masks", work / "masks_v1",
                  work / "amg", ids_file, source, mean_k, seconds)  # fmt: skip
