"""The demo report: one self-contained HTML page that walks through the method on a few images.

Reads the artifacts of a demo pipeline run (``configs/pipelines/demo.py``) under ``--work-dir``:

=============================  ===========================================================
``stage1_cls/cams/train``      CAMs + CAA of the classification prompts (``<id>.npz``)
``stage1_seg/cams/train``      CAMs + CAA of the segmentation prompts
``masks/masks/train``          the SAM masks (or superpixels) with their levels
``seeds_coarse/seeds/train``   coarse SAMS seeds; ``seeds_fine/seeds/train`` the fine ones
``stage2/pred/val``            stage II predictions on val (``tools/test.py --out``)
``metrics/*.json``             CAM and seed metrics; ``stage2/metrics_val.json`` stage II's
``tiny_clip/metrics.json``     the tiny CLIP's pretraining numbers (absent with real weights)
=============================  ===========================================================

and writes ``<work_dir>/report/index.html`` (every picture embedded as a base64 PNG) with a
banner saying that the demo runs the machinery on synthetic data with tiny models and is not a
result, a table of the metrics per stage next to a chance baseline with a line under it that
says which stage improved on the one before (:func:`summary_line`), and per image strips: for
train images the image, the CAM heat maps per class of both prompt sets, the masks by level,
the coarse and fine seeds with their mIoU against the ground truth (:func:`image_miou`) and
the ground truth; for val images the stage II prediction and the
ground truth; every label strip with its colour legend. Missing artifacts are named in the page.

The chance baseline labels every pixel uniformly at random with one of background and the
image's ground-truth classes (it knows the image-level labels, as the CAMs do); its expected
confusion matrix is computed exactly, so the row needs no random numbers.

    python -m fma.demo.report --work-dir work_dirs/demo --data-root work_dirs/demo/data/VOC2012
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fma.cam import cam_to_score
from fma.datasets.layout import DatasetLayout
from fma.datasets.meta import VOC12
from fma.evaluation.confusion import metrics_from_confusion
from fma.io import read_label_map, write_text_atomic
from fma.io.cams import load_cam
from fma.io.masks.records import find_mask_file, load_sam_masks
from fma.sam.show import level_panel
from fma.visualization.panels import add_legend, colorize, overlay, panel_image, side_by_side

__all__ = ["NOT_A_RESULT", "chance_miou", "image_miou", "summary_line", "write_report"]

NOT_A_RESULT = (
    "This demo runs the machinery of the method on synthetic data with tiny models "
    "(a tiny CLIP pretrained for a minute, superpixels instead of SAM, a tiny stage II network). "
    "Its numbers show that the stages connect and learn something; they are not a result."
)
_ZOOM = 2  # the 96-pixel demo images are drawn twice as large


def chance_miou(data_root: str | Path, split: str) -> float | None:
    """Expected mIoU (percent) of labelling each pixel uniformly at random with one of
    background and the image's ground-truth classes; None without ground truth."""
    layout = DatasetLayout.of("voc12", data_root)
    c = VOC12.num_classes
    conf = np.zeros((c, c), dtype=np.float64)
    for image_id in layout.image_ids(split):
        path = layout.labels_dir(split) / f"{image_id}.png"
        if not path.is_file():
            return None
        gt = read_label_map(path)
        counts = np.bincount(gt[gt != 255].ravel(), minlength=c)[:c].astype(np.float64)
        cand = sorted({0} | {int(k) for k in np.nonzero(counts)[0]})
        for p in cand:
            conf[:, p] += counts / len(cand)
    miou = metrics_from_confusion(conf, VOC12.class_names)["mIoU"]
    return None if miou is None else float(miou)


def image_miou(pred: np.ndarray, gt: np.ndarray, ignore: int = 255) -> float | None:
    """mIoU (percent) of one label map: the mean IoU over the classes that occur in ``gt`` or
    ``pred`` (pixels where ``gt`` is ``ignore`` left out); None when every pixel is ignored.

    Args:
        pred: (H, W) integer label map (``ignore`` counts as no class).
        gt: (H, W) integer ground truth of the same shape.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and ground truth {gt.shape} differ in shape")
    keep = gt != ignore
    if not keep.any():
        return None
    p, g = pred[keep].astype(np.int64), gt[keep].astype(np.int64)
    n = int(max(p.max(), g.max())) + 1
    conf = np.bincount(g * n + p, minlength=n * n).reshape(n, n)
    if ignore < n:  # a pixel the prediction leaves as ignore counts as no class
        conf[:, ignore] = 0
        conf[ignore, :] = 0
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    present = (conf.sum(1) > 0) | (conf.sum(0) > 0)
    return float(100 * np.mean(inter[present] / union[present]))


def _seed_iou(seed: Path, gt: Path) -> str:
    if not seed.is_file():
        return "missing"
    value = image_miou(read_label_map(seed), read_label_map(gt))
    return "n/a" if value is None else f"{value:.1f}"


def summary_line(
    cam: float | None, coarse: float | None, fine: float | None, stage2: float | None
) -> str:
    """One sentence saying in words what each stage improved and what it did not."""
    said = []
    for a_name, a, b_name, b in (
        ("the CAMs", cam, "the coarse seeds", coarse),
        ("the coarse seeds", coarse, "the fine seeds", fine),
    ):
        if a is None or b is None:
            continue
        if b > a:
            said.append(f"{b_name} improve on {a_name} by {b - a:.1f} mIoU")
        else:
            said.append(f"{b_name} do not improve on {a_name} ({b - a:+.1f} mIoU)")
    if stage2 is not None and fine is not None:
        rel = "above" if stage2 >= fine else "below"
        said.append(
            f"stage II on unseen val images scores {stage2:.1f}, {rel} the "
            f"{fine:.1f} of its training labels on train"
        )
    if not said:
        return "Metrics missing: nothing to compare."
    return "; ".join(said)[:1].upper() + "; ".join(said)[1:] + "."


def _png(rgb: np.ndarray, zoom: int = _ZOOM) -> str:
    img = Image.fromarray(rgb)
    if zoom > 1:
        img = img.resize((img.width * zoom, img.height * zoom), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _cam_strip(image: np.ndarray, cam_file: Path, what: str) -> np.ndarray | None:
    """Heat overlays (ReLU, min-max, as scored) of every class of one CAM file."""
    if not cam_file.is_file():
        return None
    rec = load_cam(cam_file)
    score = cam_to_score(torch.from_numpy(rec.cam.astype(np.float32)), size=image.shape[:2])
    panels = [overlay(image, s) for s in score.numpy()]
    titles = [f"{what}: {VOC12.class_names[int(k)]}" for k in rec.fg_cls]
    return side_by_side(panels, titles) if panels else None


def _label_strip(named: list[tuple[str, Path]], size: tuple[int, int]) -> np.ndarray | None:
    """Label maps side by side, with one legend naming every colour shown."""
    maps, titles = [], []
    for title, path in named:
        if path.is_file():
            maps.append(read_label_map(path))
        else:
            maps.append(np.full(size, 255, dtype=np.uint8))
            title += " (missing)"
        titles.append(title)
    strip = side_by_side([colorize(m, VOC12.palette) for m in maps], titles)
    return add_legend(strip, maps, VOC12.class_names, VOC12.palette)


def _train_row(work: Path, layout: DatasetLayout, image_id: str) -> list[tuple[str, np.ndarray]]:
    gt_path = layout.labels_dir("train") / f"{image_id}.png"
    size = read_label_map(gt_path).shape
    image = panel_image(layout.image_path("train", image_id), size)
    mask_file = find_mask_file(work / "masks/masks/train", image_id)
    masks = level_panel(image, load_sam_masks(mask_file)) if mask_file else None
    coarse = work / "seeds_coarse/seeds/train" / f"{image_id}.png"
    fine = work / "seeds_fine/seeds/train" / f"{image_id}.png"
    iou_c, iou_f = _seed_iou(coarse, gt_path), _seed_iou(fine, gt_path)
    parts = [
        ("1. image (training sees only its image-level labels)", side_by_side([image], [image_id])),
        (
            "2. CAMs + CAA, classification prompts",
            _cam_strip(image, work / "stage1_cls/cams/train" / f"{image_id}.npz", "cls"),
        ),
        ("3. masks by level (superpixels stand in for SAM)", masks),
        (
            f"4. coarse seeds (SAMS on the classification CAMs; mIoU {iou_c}), ground truth",
            _label_strip([("coarse seed", coarse), ("ground truth", gt_path)], size),
        ),
        (
            "5. CAMs + CAA, segmentation prompts (trained on the coarse seeds)",
            _cam_strip(image, work / "stage1_seg/cams/train" / f"{image_id}.npz", "seg"),
        ),
        (
            f"6. fine seeds (SAMS on the segmentation CAMs; mIoU {iou_f}): stage II's labels",
            _label_strip([("fine seed", fine), ("ground truth", gt_path)], size),
        ),
    ]
    blank = np.full((8, 8, 3), 255, np.uint8)
    return [(t, p) if p is not None else (f"{t}: missing", blank) for t, p in parts]


def _val_row(work: Path, layout: DatasetLayout, image_id: str) -> list[tuple[str, np.ndarray]]:
    gt_path = layout.labels_dir("val") / f"{image_id}.png"
    size = read_label_map(gt_path).shape
    image = panel_image(layout.image_path("val", image_id), size)
    labels = _label_strip(
        [("stage II prediction", work / "stage2/pred/val" / f"{image_id}.png"),
         ("ground truth", gt_path)], size)  # fmt: skip
    return [("image", side_by_side([image], [image_id])),
            ("7. stage II prediction (never saw val), ground truth", labels)]  # fmt: skip


_METRIC_FILES = (
    "metrics/eval_cams.json", "metrics/eval_seeds_coarse.json",
    "metrics/eval_seeds_fine.json", "stage2/metrics_val.json",
)  # fmt: skip


def _metric_rows(work: Path, data_root: Path) -> list[tuple[str, str, str, str]]:
    """(stage, split, mIoU, note) rows of the metrics table."""
    rows = []
    spec = [
        ("CAMs + CAA (classification prompts), argmax", "train", work / "metrics/eval_cams.json"),
        ("coarse seeds (SAMS)", "train", work / "metrics/eval_seeds_coarse.json"),
        ("fine seeds (SAMS)", "train", work / "metrics/eval_seeds_fine.json"),
        ("stage II network", "val", work / "stage2/metrics_val.json"),
    ]
    for name, split, path in spec:
        m = _read_json(path)
        value = f"{m['mIoU']:.2f}" if m and m.get("mIoU") is not None else "missing"
        rows.append((name, split, value, str(path.relative_to(work))))
    for split in ("train", "val"):
        chance = chance_miou(data_root, split)
        value = "n/a" if chance is None else f"{chance:.2f}"
        rows.append(("chance: each pixel random among background + the image's classes", split,
                     value, "expected value, computed exactly"))  # fmt: skip
    return rows


def write_report(
    work_dir: str | Path, data_root: str | Path, num_train: int = 4, num_val: int = 4
) -> Path:
    """Write ``<work_dir>/report/index.html`` (see the module docstring); return its path."""
    work, root = Path(work_dir), Path(data_root)
    layout = DatasetLayout.of("voc12", root)
    e = html.escape
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>fma demo report</title>",
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:1400px}"
        ".banner{background:#fff3cd;border:2px solid #e0a800;padding:.8em;font-size:1.1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.25em .6em}"
        "td.n{text-align:right}.row{margin:1em 0;border-top:1px solid #ccc}"
        ".part{display:inline-block;vertical-align:top;margin:.3em 1em .3em 0}"
        ".part p{margin:.1em 0;font-size:.85em;color:#333}</style></head><body>",
        "<h1>fma demo: FMA-WSSS end to end</h1>",
        f"<p class='banner'><b>Not a result.</b> {e(NOT_A_RESULT)}</p>",
        "<h2>The method, as run here</h2><ol>"
        "<li>A frozen CLIP (here a tiny one, pretrained on synthetic captions) with learnable "
        "prompt contexts is trained with the multi-label contrastive loss on image-level "
        "labels (classification prompts).</li>"
        "<li>Softmax-GradCAM of each labelled class, refined by class-aware attention affinity "
        "(CAA), gives CAMs on the train images.</li>"
        "<li>SAM masks (here superpixels) at three levels are scored with the CAMs (SAMS): "
        "the coarse seeds.</li>"
        "<li>Segmentation prompts are trained with the CAM activation loss against the coarse "
        "seeds; their CAMs, scored again with the masks, give the fine seeds.</li>"
        "<li>A segmentation network (here a tiny DeepLabV3+) is trained on the fine seeds and "
        "evaluated on val against the ground truth.</li></ol>",
        "<h2>Metrics per stage</h2><table><tr><th>stage</th><th>split</th><th>mIoU</th>"
        "<th>source</th></tr>",
    ]
    for name, split, value, note in _metric_rows(work, root):
        out.append(f"<tr><td>{e(name)}</td><td>{split}</td><td class='n'>{value}</td>"
                   f"<td>{e(note)}</td></tr>")  # fmt: skip
    out.append("</table>")
    got = [_read_json(work / f) for f in _METRIC_FILES]
    vals = [m["mIoU"] if m and m.get("mIoU") is not None else None for m in got]
    out.append(f"<p><b>{e(summary_line(*vals))}</b></p>")
    clip = _read_json(work / "tiny_clip/metrics.json")
    if clip:
        out.append(
            f"<p>Tiny CLIP pretraining: contrastive loss {clip['loss_first']:.2f} &rarr; "
            f"{clip['loss_last']:.2f}; zero-shot top-1 on 128 held-out synthetic images "
            f"{100 * clip['zero_shot_top1']:.1f}% (random weights "
            f"{100 * clip['zero_shot_top1_before']:.1f}%, chance "
            f"{100 * clip['zero_shot_top1_chance']:.1f}%)"
            + (
                f"; zero-shot segmentation of the same images (patch-text alignment) "
                f"{clip['zero_shot_seg_miou']:.1f} mIoU"
                if "zero_shot_seg_miou" in clip
                else ""
            )
            + (
                f"; their zero-shot Softmax-GradCAMs (hand prompts, what stage I starts from) "
                f"{clip['zero_shot_gradcam_miou']:.1f} mIoU"
                if "zero_shot_gradcam_miou" in clip
                else ""
            )
            + ".</p>"
        )
    for split, n, row in (("train", num_train, _train_row), ("val", num_val, _val_row)):
        out.append(f"<h2>{split} images</h2>")
        for image_id in layout.image_ids(split)[:n]:
            out.append(f"<div class='row'><h3>{e(image_id)}</h3>")
            for title, rgb in row(work, layout, image_id):
                out.append(f"<div class='part'><p>{e(title)}</p><img src='{_png(rgb)}'></div>")
            out.append("</div>")
    out.append("</body></html>")
    path = work / "report" / "index.html"
    write_text_atomic(path, "\n".join(out) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the demo's HTML report.")
    p.add_argument("--work-dir", required=True, type=Path)
    p.add_argument("--data-root", type=Path, help="default: <work-dir>/data/VOC2012")
    p.add_argument("--num-train", type=int, default=4)
    p.add_argument("--num-val", type=int, default=4)
    args = p.parse_args(argv)
    root = args.data_root or args.work_dir / "data" / "VOC2012"
    path = write_report(args.work_dir, root, args.num_train, args.num_val)
    print(f"report: {path}")
    print(f"NOTE: {NOT_A_RESULT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
