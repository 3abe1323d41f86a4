"""A weight-free mask source: classical superpixels at three scales, as levels 0 / 1 / 2.

For CPU-only use, ablations and the demo, :class:`SuperpixelGenerator` segments an image with
scikit-image's Felzenszwalb graph segmentation (``scale`` per level) or SLIC (``n_segments``
per level), fine to coarse, and returns every segment as a mask record in the
``fma.io.masks.records`` format: level 0 = finest scale (sub-part), 1 = middle (part), 2 = coarsest
(whole). Within a level the segments partition the image; across levels they overlap, like SAM
masks do. Records carry ``predicted_iou = stability_score = 1``, no point prompt and the full
image as crop box; boxes follow segment-anything's convention (XYWH with ``w = x_max - x_min``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fma.io.masks.records import make_record
from fma.sam.presets import SuperpixelPreset, get_superpixel_preset

__all__ = ["SuperpixelGenerator", "segments_to_records"]


def _segment_boxes(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel counts (n,) and XYXY boxes (n, 4) (inclusive max) of labels 0..n-1, vectorised."""
    w = labels.shape[1]
    flat = labels.reshape(-1)
    areas = np.bincount(flat, minlength=n)
    order = np.argsort(flat, kind="stable")
    starts = np.concatenate([[0], np.cumsum(areas)[:-1]])
    present = areas > 0
    ys = order // w
    xs = order % w
    boxes = np.zeros((n, 4), dtype=np.int64)
    s = starts[present]
    boxes[present, 0] = np.minimum.reduceat(xs, s)
    boxes[present, 1] = np.minimum.reduceat(ys, s)
    boxes[present, 2] = np.maximum.reduceat(xs, s)
    boxes[present, 3] = np.maximum.reduceat(ys, s)
    return areas, boxes


def _segment_rles(labels: np.ndarray, ids: np.ndarray) -> list[dict[str, Any]]:
    """COCO compressed RLE of every segment in ``ids``, built from its runs (no mask stack).

    COCO RLE runs over the pixels in column-major order, zeros first. Sorting the column-major
    positions by segment id (stable, so positions stay ascending) lists each segment's pixels;
    a run of ones starts wherever the position is not the previous one plus one. Memory: a few
    (H * W,) int64 arrays whatever the segment count; the result equals :func:`encode_rle` on
    the dense masks (tested).
    """
    from pycocotools import mask as mask_utils

    h, w = labels.shape
    flat = labels.T.reshape(-1)  # column-major, as COCO RLE counts
    order = np.argsort(flat, kind="stable")
    seg = flat[order]
    starts = np.ones(order.size, dtype=bool)
    starts[1:] = (seg[1:] != seg[:-1]) | (order[1:] != order[:-1] + 1)
    first = np.flatnonzero(starts)
    run_pos = order[first]
    run_len = np.diff(np.append(first, order.size))
    run_seg = seg[first]
    del flat, order, seg, starts, first
    lo = np.searchsorted(run_seg, ids, side="left")
    hi = np.searchsorted(run_seg, ids, side="right")
    n = h * w
    rles = []
    for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
        pos, length = run_pos[a:b], run_len[a:b]
        ends = pos + length
        counts = np.empty(2 * (b - a) + 1, dtype=np.int64)
        counts[0:-1:2] = pos - np.concatenate([[0], ends[:-1]])  # zeros before each run
        counts[1::2] = length
        counts[-1] = n - ends[-1]  # trailing zeros (COCO omits an empty last run)
        if counts[-1] == 0:
            counts = counts[:-1]
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)
        rles.append({"size": [h, w], "counts": rle["counts"].decode("ascii")})
    return rles


def segments_to_records(labels: np.ndarray, level: int) -> list[dict[str, Any]]:
    """Mask records of every segment of a label map.

    Args:
        labels: (H, W) int segment ids 0..n-1.
        level: level stored in every record.

    Returns:
        one record per non-empty segment, by segment id. Memory is a few H x W arrays whatever
        the number of segments (the RLE is built from runs, see :func:`_segment_rles`).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    labels = labels.astype(np.int64, copy=False)
    if labels.size and labels.min() < 0:
        raise ValueError("segment ids must be >= 0")
    h, w = labels.shape
    n = int(labels.max()) + 1 if labels.size else 0
    areas, boxes = _segment_boxes(labels, n)
    ids = np.nonzero(areas)[0]
    records: list[dict[str, Any]] = []
    for seg, rle in zip(ids.tolist(), _segment_rles(labels, ids), strict=True):
        x0, y0, x1, y1 = boxes[seg].tolist()
        records.append(
            make_record(
                rle,
                area=int(areas[seg]),
                bbox=[x0, y0, x1 - x0, y1 - y0],
                crop_box=[0, 0, w, h],
                level=level,
            )
        )
    return records


class SuperpixelGenerator:
    """Three-scale classical superpixels in the SAM mask format.

    Args:
        method: ``"felzenszwalb"`` or ``"slic"``.
        scales: per level 0/1/2; Felzenszwalb ``scale`` (fine -> coarse: increasing) or SLIC
            ``n_segments`` (fine -> coarse: decreasing).
        sigma: Gaussian pre-smoothing.
        min_size_ratio: Felzenszwalb ``min_size = round(ratio * scale)`` pixels.
        compactness: SLIC compactness.
    """

    def __init__(
        self,
        method: str = "felzenszwalb",
        scales: tuple[float, float, float] = (100.0, 400.0, 1600.0),
        sigma: float = 0.8,
        min_size_ratio: float = 0.5,
        compactness: float = 10.0,
    ) -> None:
        if method not in ("felzenszwalb", "slic"):
            raise ValueError(f"unknown superpixel method {method!r}; use 'felzenszwalb' or 'slic'")
        if len(scales) != 3:
            raise ValueError(f"scales needs one value per level (3), got {scales!r}")
        try:
            import skimage.segmentation  # noqa: F401
        except ImportError as exc:
            raise ImportError("superpixels need scikit-image: pip install 'fma[sam]'") from exc
        self.method = method
        self.scales = tuple(float(s) for s in scales)
        self.sigma = float(sigma)
        self.min_size_ratio = float(min_size_ratio)
        self.compactness = float(compactness)

    @classmethod
    def from_preset(
        cls, preset: str | SuperpixelPreset = "felzenszwalb", **overrides: Any
    ) -> SuperpixelGenerator:
        """Build from a named preset (:data:`fma.sam.presets.SUPERPIXEL_PRESETS`)."""
        p = get_superpixel_preset(preset, **overrides)
        return cls(p.method, p.scales, p.sigma, p.min_size_ratio, p.compactness)

    def label_maps(self, image: np.ndarray) -> np.ndarray:
        """(3, H, W) int64 segment ids, one segmentation per level (fine to coarse)."""
        from skimage.segmentation import felzenszwalb, slic

        image = _check_image(image)
        out = np.empty((3, *image.shape[:2]), dtype=np.int64)
        for level, scale in enumerate(self.scales):
            if self.method == "felzenszwalb":
                seg = felzenszwalb(
                    image,
                    scale=scale,
                    sigma=self.sigma,
                    min_size=max(1, round(self.min_size_ratio * scale)),
                )
            else:
                seg = slic(
                    image,
                    n_segments=max(1, round(scale)),
                    compactness=self.compactness,
                    sigma=self.sigma,
                    start_label=0,
                )
            out[level] = seg
        return out

    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Mask records of one (H, W, 3) uint8 RGB image: level 0 segments, then 1, then 2."""
        records: list[dict[str, Any]] = []
        for level, labels in enumerate(self.label_maps(image)):
            records.extend(segments_to_records(labels, level))
        return records


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} {image.dtype}"
        )
    return image
