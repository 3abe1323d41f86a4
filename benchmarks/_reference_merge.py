"""Reference merges with the I/O of the original code, as whole processes over a folder.

* ``sepl``: the official SEPL ``MaxIoU_IMP2.merge`` (cskyl/SAM_WSSS ``merge/max_iou_imp2.py``)
  as written: for every present class it scans the image's amg.py folder and decodes every
  mask PNG again (``np.array(Image.open(p)) == 255``), with the official expressions; the
  pseudo label is read with PIL and the result saved as a PNG.
* ``sams``: SAMS the way the original decodes its masks (HAL-42/FMA-WSSS ``anns_seed``): all
  masks of an image decoded with pycocotools into a dense stack, then one Python iteration per
  mask for the means, a sort by (level, confidence) and a painting loop. It reads fma's mask
  file (one JSON parse) and CAM file, and saves the seed as a PNG.

Run: ``python benchmarks/_reference_merge.py sepl --labels DIR --masks AMG_DIR --out DIR
--ids FILE`` or ``... sams --cams DIR --masks FMA_MASK_DIR --out DIR --ids FILE --gamma G``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def official_sepl(label: np.ndarray, sam_folder: str, num_cls: int) -> np.ndarray:
    """``MaxIoU_IMP2.merge``: every mask PNG decoded once per present class."""
    seen = []
    processed_mask = np.zeros_like(label)
    for i in range(1, num_cls):
        pre_cls = label == i
        if np.sum(pre_cls) == 0:
            continue
        candidates = []
        sam_mask = np.zeros_like(pre_cls)
        for filename in os.scandir(sam_folder):
            if filename.is_file() and filename.path.endswith("png") and filename.path not in seen:
                cur_sam = np.array(Image.open(filename.path)) == 255
                sam_mask = np.logical_or(sam_mask, cur_sam)
                improve_thresh = 2 * np.sum((pre_cls == cur_sam) * pre_cls) - np.sum(cur_sam)
                improve_pred_thresh = np.sum((pre_cls == cur_sam) * pre_cls) / np.sum(pre_cls)
                if improve_thresh > 0 or improve_pred_thresh >= 0.85:
                    candidates.append(cur_sam)
                    seen.append(filename.path)
        candidates.append(np.logical_and(sam_mask == 0, pre_cls == 1))
        processed_mask[np.sum(candidates, axis=0) > 0] = i
    return processed_mask


def loop_sams(masks: np.ndarray, cam: np.ndarray, fg_cls, levels, gamma: float) -> np.ndarray:
    """SAMS with per-mask loops (norm_first, mean, ``pow`` background, level then confidence)."""
    import torch
    import torch.nn.functional as F

    k, h, w = masks.shape
    up = torch.from_numpy(np.asarray(cam, np.float32))[None]
    up = F.interpolate(up, size=(h, w), mode="bilinear", align_corners=False)[0]
    up = torch.clamp(up, min=0)
    lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
    f = ((up - lo) / (hi - lo + 1e-7)).numpy()
    nonempty = [i for i in range(k) if masks[i].any()]
    pooled = np.zeros((k, f.shape[0]))
    for i in nonempty:
        pooled[i] = f[:, masks[i]].astype(np.float64).mean(axis=1)
    score = np.zeros_like(pooled)
    if nonempty:
        lo2, hi2 = pooled[nonempty].min(0), pooled[nonempty].max(0)
        score[nonempty] = (pooled[nonempty] - lo2) / (hi2 - lo2 + 1e-7)
    lut = [0, *[int(c) for c in fg_cls]]
    labels, conf = [], []
    for i in range(k):
        s = [(1 - max(score[i], default=0.0)) ** gamma, *score[i]]
        j = int(np.argmax(s))
        labels.append(lut[j] if i in nonempty else 0)
        conf.append(s[j])
    seed = np.zeros((h, w), np.uint8)
    for i in sorted(range(k), key=lambda i: (levels[i], conf[i])):
        seed[masks[i]] = labels[i]
    return seed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["sepl", "sams"])
    p.add_argument("--labels", type=Path, help="pseudo-label folder (sepl)")
    p.add_argument("--cams", type=Path, help="CAM folder (sams)")
    p.add_argument("--masks", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ids", type=Path, required=True, help="text file, one image id per line")
    p.add_argument("--gamma", type=float, default=0.7)
    p.add_argument("--num-classes", type=int, default=21)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ids = args.ids.read_text().split()
    for image_id in ids:
        if args.kind == "sepl":
            label = np.array(Image.open(args.labels / f"{image_id}.png"))
            out = official_sepl(label, str(args.masks / image_id), args.num_classes)
        else:
            from fma.io.cams import load_cam
            from fma.io.masks.records import find_mask_file, load_sam_masks

            cam = load_cam(args.cams / f"{image_id}.npz")
            sam = load_sam_masks(find_mask_file(args.masks, image_id))
            out = loop_sams(sam.masks, cam.cam, cam.fg_cls, sam.levels.tolist(), args.gamma)
        Image.fromarray(out.astype(np.uint8)).save(args.out / f"{image_id}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
