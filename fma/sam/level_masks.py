"""Multi-level SAM masks (sub-part, part, whole): segment-anything's AMG plus the FMA-WSSS changes.

Size (~600 lines): one class, segment-anything's AMG steps kept in their upstream order.

:class:`FmaMaskGenerator` subclasses ``segment_anything.SamAutomaticMaskGenerator``
(``segment_anything/automatic_mask_generator.py``) and keeps its algorithm step for step: point
grid per crop, one image-encoder pass per crop, batched point prompts with three multimask
outputs each, predicted-IoU and stability filtering, removal of masks touching crop borders,
box NMS within each crop, NMS across crops preferring smaller crops, then optional small-region
cleanup followed by NMS that prefers unchanged masks. With every FMA switch off it returns the
masks segment-anything returns (same RLE, area, box, scores, order).

FMA-WSSS additions (spec: FMA-WSSS ``sam_auto.py``, pattern ``l2_nmsf_s1_rsw3``), each
switchable:

* ``level``: every mask keeps its multimask index 0, 1, 2 (read as sub-part, part, whole);
* ``level_iou_offsets``: added to the predicted IoU *for the pred-IoU test only*; (0, 0, 0.1)
  lowers the whole-level threshold by 0.1;
* ``level_nms_offsets``: added to the score of the within-crop box NMS; (0, 0, 1.0) makes whole
  masks win against part/sub-part masks;
* ``level_stability_offsets``: added to the stability score for the stability test (unused by
  the final FMA setting);
* ``containment_thresh``: the "rock-sand-water" containment filter (:func:`containment_filter`), run
  after small-region cleanup.

Stored scores stay the model's raw predicted IoU and stability score. A test with a zero
threshold is skipped, as in segment-anything, unless a level offset for that test is non-zero.

Performance changes that do not change the result: the pred-IoU test runs on the low-resolution
logits before upsampling (only kept masks are upsampled), the float masks are indexed once per
filter stage, masks go straight to COCO compressed RLE (no uncompressed-RLE round trip), RLE
lists are concatenated without deep copies, small-region cleanup decodes all masks at once and
re-encodes only the changed ones that survive, and the containment filter is a few matrix
products (one per level).

Throughput (:mod:`fma.sam.throughput`): ``precision="bf16"``/``"fp16"`` runs the encoder and
the decoder under autocast (fp32 masks, thresholds and scores); ``crop_batch > 1`` encodes
several crops of an image in one call. The defaults (fp32, one crop per call) are
segment-anything's computation.

Stopping: the whole-image steps (decoding all masks, their boxes and areas) run in chunks of at
most :data:`CHUNK_BYTES` of masks, and every crop, point batch, chunk and small-region mask
starts with :func:`fma.stage_workers.check_stop`, so SIGINT/SIGTERM of a run in the main process
stops it within about one point batch, however large the image. The chunks give the same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import fma
from fma.io.masks.records import decode_rle, encode_rle, make_record
from fma.sam.presets import AmgPreset, get_preset
from fma.sam.throughput import autocast, check_precision, encode_images, set_features
from fma.stage_workers import check_stop

fma.setup()  # the torchvision repair before segment_anything imports torchvision

try:
    from segment_anything import SamAutomaticMaskGenerator
    from segment_anything.utils.amg import (
        MaskData,
        batch_iterator,
        batched_mask_to_box,
        calculate_stability_score,
        generate_crop_boxes,
        is_box_near_crop_edge,
        remove_small_regions,
        uncrop_boxes_xyxy,
        uncrop_masks,
        uncrop_points,
    )
    from torchvision.ops.boxes import batched_nms, box_area
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "fma.sam.level_masks needs segment-anything and torchvision: pip install 'fma[sam]'"
    ) from exc

__all__ = ["CHUNK_BYTES", "FmaMaskGenerator", "containment_filter", "mask_data_to_records"]

_NUM_LEVELS = 3
#: Bytes of (K, H, W) bool masks handled in one native call by the whole-image steps.
CHUNK_BYTES = 1 << 28


def _mask_chunks(k: int, h: int, w: int) -> range:
    """Start indices of chunks of at most :data:`CHUNK_BYTES` of (k, h, w) bool masks (at
    least one mask each)."""
    return range(0, k, max(1, CHUNK_BYTES // max(1, h * w)))


def _decode_chunked(rles: list[dict[str, Any]], h: int, w: int) -> np.ndarray:
    """:func:`fma.io.masks.records.decode_rle` chunk by chunk into one (K, H, W) bool array."""
    out = np.empty((len(rles), h, w), dtype=bool)
    starts = _mask_chunks(len(rles), h, w)
    for s in starts:
        check_stop()
        out[s : s + starts.step] = decode_rle(rles[s : s + starts.step], h, w)
    return out


class _MaskData(MaskData):
    """``MaskData`` whose ``cat`` concatenates lists without deep-copying their items."""

    def cat(self, new_stats: MaskData) -> None:
        for k, v in new_stats.items():
            cur = self._stats.get(k)
            if cur is None:
                self._stats[k] = list(v) if isinstance(v, list) else v
            elif isinstance(v, torch.Tensor):
                self._stats[k] = torch.cat([cur, v], dim=0)
            elif isinstance(v, np.ndarray):
                self._stats[k] = np.concatenate([cur, v], axis=0)
            elif isinstance(v, list):
                self._stats[k] = cur + v
            else:
                raise TypeError(f"MaskData key {k} has an unsupported type {type(v)}.")


def containment_filter(
    masks: np.ndarray | torch.Tensor,
    levels: np.ndarray | torch.Tensor,
    thresh: float = 0.3,
    *,
    order: Sequence[int] = (2, 1, 0),
    chunk_pixels: int = 1 << 22,
) -> np.ndarray:
    """The "rock-sand-water" filter: drop masks mostly covered by masks of higher levels.

    Levels are visited in ``order`` (whole, part, sub-part). Every mask of the first visited
    level that has masks is kept. A mask ``m`` of a later level is kept when
    ``max_k |m & k| / |m| < thresh`` over the masks ``k`` kept so far (all earlier levels);
    masks of the same level are not compared with each other. When no mask has been kept yet
    (no mask of any earlier level), the level's masks are all kept. Masks of levels not in
    ``order`` are kept. An empty mask (area 0) has ratio 0 and is kept.

    Intersections are exact integer counts from matrix products of the flattened masks,
    accumulated in float64 over chunks of at most ``chunk_pixels`` pixels (float32 products
    of 0/1 values are exact below 2**24 pixels per chunk).

    Args:
        masks: (K, H, W) bool masks (numpy or torch; torch stays on its device).
        levels: (K,) int levels.
        thresh: covered fraction at which a mask is dropped, in (0, 1].
        order: levels from container to contained.
        chunk_pixels: pixels per matrix-product chunk (memory bound: K * chunk * 4 bytes).

    Returns:
        (K,) bool numpy array, True = keep.
    """
    if not 0.0 < thresh <= 1.0:
        raise ValueError(f"containment threshold must lie in (0, 1], got {thresh}")
    chunk_pixels = min(int(chunk_pixels), 1 << 24)
    m = torch.as_tensor(masks)
    lv = torch.as_tensor(levels).to(m.device).long().reshape(-1)
    k = m.shape[0]
    if lv.shape[0] != k:
        raise ValueError(f"{k} masks but {lv.shape[0]} levels")
    flat = m.reshape(k, int(np.prod(m.shape[1:])))
    keep = torch.ones(k, dtype=torch.bool, device=m.device)
    in_order = torch.zeros(k, dtype=torch.bool, device=m.device)
    for level in order:
        in_order |= lv == level
    keep[in_order] = False
    rows = _mask_chunks(k, 1, flat.shape[1])
    areas = torch.zeros(k, dtype=torch.float64, device=m.device)
    for r in rows:  # per-mask sums, chunk by chunk (the same numbers as one call)
        check_stop()
        areas[r : r + rows.step] = flat[r : r + rows.step].sum(1, dtype=torch.float64)
    kept = torch.zeros(0, dtype=torch.long, device=m.device)
    for level in order:
        idx = torch.nonzero(lv == level).reshape(-1)
        if idx.numel() == 0:
            continue
        if kept.numel() == 0:
            keep[idx] = True
        else:
            inter = torch.zeros(idx.numel(), kept.numel(), dtype=torch.float64, device=m.device)
            for s in range(0, flat.shape[1], chunk_pixels):
                check_stop()
                a = flat[idx, s : s + chunk_pixels].float()
                b = flat[kept, s : s + chunk_pixels].float()
                inter += (a @ b.T).double()
            ratio = inter.max(1).values / areas[idx].clamp(min=1.0)
            keep[idx[ratio < thresh]] = True
        kept = torch.nonzero(keep & in_order).reshape(-1)
    return keep.cpu().numpy()


def mask_data_to_records(data: MaskData) -> list[dict[str, Any]]:
    """Turn generator output (numpy ``MaskData``) into ``fma.io.masks.records`` records."""
    n = len(data["rles"])
    if n == 0:
        return []
    boxes = np.asarray(data["boxes"]).copy()
    boxes[:, 2:] -= boxes[:, :2]
    crops = np.asarray(data["crop_boxes"]).copy()
    crops[:, 2:] -= crops[:, :2]
    areas, ious = data["areas"].tolist(), data["iou_preds"].tolist()
    stab, levels, points = data["stability_score"].tolist(), data["levels"].tolist(), data["points"]
    return [
        make_record(
            data["rles"][i],
            area=areas[i],
            bbox=boxes[i].tolist(),
            predicted_iou=ious[i],
            stability_score=stab[i],
            point_coords=[points[i].tolist()],
            crop_box=crops[i].tolist(),
            level=levels[i],
        )
        for i in range(n)
    ]


def _offsets(name: str, values: Sequence[float]) -> tuple[float, float, float]:
    vals = tuple(float(v) for v in values)
    if len(vals) != _NUM_LEVELS:
        raise ValueError(f"{name} needs one value per level (3), got {values!r}")
    return vals  # type: ignore[return-value]


class FmaMaskGenerator(SamAutomaticMaskGenerator):
    """segment-anything's automatic mask generator with the switchable FMA-WSSS modifications.

    Args:
        model: ``segment_anything.modeling.Sam``.
        points_per_side ... min_mask_region_area: as ``SamAutomaticMaskGenerator`` (see
            :class:`fma.sam.presets.AmgPreset` for one line each).
        level_iou_offsets: (3,) added to the predicted IoU of levels 0/1/2 for the pred-IoU test.
        level_nms_offsets: (3,) added to the score of the within-crop box NMS per level.
        level_stability_offsets: (3,) added to the stability score for the stability test.
        containment_thresh: containment-filter threshold (FMA: 0.3); None switches it off.
        rsw_chunk_pixels: pixel chunk of the containment filter's matrix products.
        precision: ``"fp32"`` (as segment-anything), ``"bf16"`` or ``"fp16"`` (CUDA only):
            autocast of the image encoder and the mask decoder (see :mod:`fma.sam.throughput`).
        crop_batch: crops encoded in one image-encoder call (1: one call per crop, as
            segment-anything). Larger values may round differently from batch 1.

    Raises:
        ValueError: inconsistent settings (both or neither of points_per_side/point_grids, an
            offset tuple without three values, a threshold out of range).
    """

    def __init__(
        self,
        model: Any,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        level_iou_offsets: Sequence[float] = (0.0, 0.0, 0.0),
        level_nms_offsets: Sequence[float] = (0.0, 0.0, 0.0),
        level_stability_offsets: Sequence[float] = (0.0, 0.0, 0.0),
        containment_thresh: float | None = None,
        rsw_chunk_pixels: int = 1 << 22,
        precision: str = "fp32",
        crop_batch: int = 1,
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        if points_per_side is not None and points_per_side < 1:
            raise ValueError(f"points_per_side must be >= 1, got {points_per_side}")
        if points_per_batch < 1:
            raise ValueError(f"points_per_batch must be >= 1, got {points_per_batch}")
        if crop_n_layers < 0 or crop_n_points_downscale_factor < 1:
            raise ValueError("crop_n_layers must be >= 0 and crop_n_points_downscale_factor >= 1")
        if containment_thresh is not None and not 0.0 < containment_thresh <= 1.0:
            raise ValueError(
                f"containment_thresh must lie in (0, 1] or be None, got {containment_thresh}"
            )
        if crop_batch < 1:
            raise ValueError(f"crop_batch must be >= 1, got {crop_batch}")
        check_precision(precision, next(model.parameters()).device)
        super().__init__(
            model,
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            point_grids=point_grids,
            min_mask_region_area=min_mask_region_area,
            output_mode="coco_rle",
        )
        self.level_iou_offsets = _offsets("level_iou_offsets", level_iou_offsets)
        self.level_nms_offsets = _offsets("level_nms_offsets", level_nms_offsets)
        self.level_stability_offsets = _offsets("level_stability_offsets", level_stability_offsets)
        self.containment_thresh = containment_thresh
        self.rsw_chunk_pixels = rsw_chunk_pixels
        self.precision = precision
        self.crop_batch = crop_batch

    @classmethod
    def from_preset(
        cls, model: Any, preset: str | AmgPreset = "fma", **overrides: Any
    ) -> FmaMaskGenerator:
        """Build from a named preset (see :mod:`fma.sam.presets`), with field overrides."""
        return cls(model, **get_preset(preset, **overrides).generator_kwargs())

    # ------------------------------------------------------------------------------------
    # public entry points
    # ------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Masks of one image as ``fma.io.masks.records`` records.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            list of records: ``segmentation`` (COCO compressed RLE, str counts), ``area``,
            ``bbox`` (XYWH), ``predicted_iou``, ``stability_score``, ``point_coords``,
            ``crop_box`` (XYWH), ``level`` (0/1/2).
        """
        return mask_data_to_records(self.generate_mask_data(image))

    @torch.no_grad()
    def generate_mask_data(self, image: np.ndarray) -> MaskData:
        """All steps up to the records: numpy ``MaskData`` with keys ``rles`` (compressed),
        ``areas``, ``boxes`` (XYXY), ``iou_preds``, ``stability_score``, ``points``,
        ``crop_boxes`` (XYXY) and ``levels``."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} {image.dtype}"
            )
        data = self._generate_masks(image)
        masks = None
        if self.min_mask_region_area > 0 and len(data["rles"]) > 0:
            data, masks = self._postprocess_small_regions(
                data, self.min_mask_region_area, max(self.box_nms_thresh, self.crop_nms_thresh)
            )
        if self.containment_thresh is not None and len(data["rles"]) > 0:
            if masks is None:
                h, w = data["rles"][0]["size"]
                masks = _decode_chunked(data["rles"], h, w)
            keep = containment_filter(
                masks, data["levels"], self.containment_thresh, chunk_pixels=self.rsw_chunk_pixels
            )
            data.filter(torch.as_tensor(keep))
        return data

    # ------------------------------------------------------------------------------------
    # segment-anything steps, overridden
    # ------------------------------------------------------------------------------------
    def _generate_masks(self, image: np.ndarray) -> MaskData:
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(
            orig_size, self.crop_n_layers, self.crop_overlap_ratio
        )
        data = _MaskData()
        for start in range(0, len(crop_boxes), self.crop_batch):
            check_stop()
            group = list(range(start, min(start + self.crop_batch, len(crop_boxes))))
            encoded = self._encode_crops(image, [crop_boxes[i] for i in group])
            for j, i in enumerate(group):
                check_stop()
                crop = self._process_crop(
                    image,
                    crop_boxes[i],
                    layer_idxs[i],
                    orig_size,
                    None if encoded is None else encoded[j],
                )
                data.cat(crop)
        if len(crop_boxes) > 1:
            # Remove duplicates between crops, preferring masks from smaller crops.
            scores = (1 / box_area(data["crop_boxes"])).to(data["boxes"].device)
            keep = batched_nms(
                data["boxes"].float(),
                scores,
                torch.zeros(len(data["boxes"])),
                iou_threshold=self.crop_nms_thresh,
            )
            data.filter(keep)
        data.to_numpy()
        return data

    def _encode_crops(
        self, image: np.ndarray, crop_boxes: list[list[int]]
    ) -> list[tuple[torch.Tensor, tuple[int, int]]] | None:
        """(1, C, h, w) embeddings and input sizes of several crops from one encoder call;
        None for a single crop (encoded by :meth:`_process_crop` as segment-anything does)."""
        if len(crop_boxes) < 2:
            return None
        crops = [image[y0:y1, x0:x1, :] for x0, y0, x1, y1 in crop_boxes]
        features, sizes = encode_images(self.predictor, crops, self.precision)
        return [(features[i : i + 1], sizes[i]) for i in range(len(crops))]

    def _process_crop(
        self,
        image: np.ndarray,
        crop_box: list[int],
        crop_layer_idx: int,
        orig_size: tuple[int, ...],
        encoded: tuple[torch.Tensor, tuple[int, int]] | None = None,
    ) -> MaskData:
        x0, y0, x1, y1 = crop_box
        cropped_im = image[y0:y1, x0:x1, :]
        cropped_im_size = cropped_im.shape[:2]
        if encoded is not None:
            set_features(self.predictor, encoded[0], cropped_im_size, encoded[1])
        elif self.precision == "fp32":
            self.predictor.set_image(cropped_im)  # one encoder pass per crop
        else:
            with autocast(self.precision, self.predictor.device):
                self.predictor.set_image(cropped_im)
            self.predictor.features = self.predictor.features.float()

        points_scale = np.array(cropped_im_size)[None, ::-1]
        points_for_image = self.point_grids[crop_layer_idx] * points_scale
        data = _MaskData()
        for (points,) in batch_iterator(self.points_per_batch, points_for_image):
            check_stop()
            data.cat(self._process_batch(points, cropped_im_size, crop_box, orig_size))
        self.predictor.reset_image()

        # Remove duplicates within this crop; level offsets give whole masks priority.
        scores = data["iou_preds"]
        if any(self.level_nms_offsets):
            off = torch.tensor(self.level_nms_offsets, dtype=scores.dtype, device=scores.device)
            scores = scores + off[data["levels"]]
        keep = batched_nms(
            data["boxes"].float(),
            scores,
            torch.zeros(len(data["boxes"])),
            iou_threshold=self.box_nms_thresh,
        )
        data.filter(keep)

        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor(crop_box, dtype=torch.int64).repeat(len(data["rles"]), 1)
        return data

    def _process_batch(
        self,
        points: np.ndarray,
        im_size: tuple[int, ...],
        crop_box: list[int],
        orig_size: tuple[int, ...],
    ) -> MaskData:
        orig_h, orig_w = orig_size
        predictor = self.predictor
        model = predictor.model

        # Decode all prompts of the batch at low resolution (as SamPredictor.predict_torch).
        transformed = predictor.transform.apply_coords(points, im_size)
        in_points = torch.as_tensor(transformed, device=predictor.device)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        with autocast(self.precision, predictor.device):
            sparse, dense = model.prompt_encoder(
                points=(in_points[:, None, :], in_labels[:, None]), boxes=None, masks=None
            )
            low_res, iou_preds = model.mask_decoder(
                image_embeddings=predictor.features,
                image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
            )
        if self.precision != "fp32":
            low_res, iou_preds = low_res.float(), iou_preds.float()
        n_out = low_res.shape[1]
        low_res = low_res.flatten(0, 1)
        iou_preds = iou_preds.flatten(0, 1)
        levels = torch.arange(n_out, device=iou_preds.device).repeat(len(points))
        pts = torch.as_tensor(points.repeat(n_out, axis=0))

        # Filter by predicted IoU (+ level offset) before upsampling.
        if self.pred_iou_thresh > 0.0 or any(self.level_iou_offsets):
            off = torch.tensor(self.level_iou_offsets, dtype=iou_preds.dtype, device=levels.device)
            idx = torch.nonzero(iou_preds + off[levels] > self.pred_iou_thresh).reshape(-1)
            low_res, iou_preds, levels, pts = (
                low_res[idx],
                iou_preds[idx],
                levels[idx],
                pts[idx.cpu()],
            )
        if low_res.shape[0] == 0:
            return self._empty_batch(iou_preds, levels, pts)
        masks = model.postprocess_masks(
            low_res[:, None], predictor.input_size, predictor.original_size
        )
        masks = masks[:, 0]

        # Stability score (+ level offset).
        stability = calculate_stability_score(
            masks, model.mask_threshold, self.stability_score_offset
        )
        if self.stability_score_thresh > 0.0 or any(self.level_stability_offsets):
            off = torch.tensor(
                self.level_stability_offsets, dtype=stability.dtype, device=levels.device
            )
            idx = torch.nonzero(stability + off[levels] >= self.stability_score_thresh).reshape(-1)
            masks, iou_preds, levels = masks[idx], iou_preds[idx], levels[idx]
            stability, pts = stability[idx], pts[idx.cpu()]

        # Threshold, boxes, drop masks touching the crop border (not the image border).
        masks = masks > model.mask_threshold
        boxes = batched_mask_to_box(masks)
        keep = ~is_box_near_crop_edge(boxes, crop_box, [0, 0, orig_w, orig_h])
        if not torch.all(keep):
            idx = torch.nonzero(keep).reshape(-1)
            masks, iou_preds, levels = masks[idx], iou_preds[idx], levels[idx]
            stability, pts, boxes = stability[idx], pts[idx.cpu()], boxes[idx]

        # To the full image frame, then COCO compressed RLE.
        masks = uncrop_masks(masks, crop_box, orig_h, orig_w)
        areas = masks.flatten(1).sum(1)
        rles = encode_rle(masks.cpu().numpy())
        return _MaskData(
            iou_preds=iou_preds,
            points=pts,
            levels=levels,
            stability_score=stability,
            boxes=boxes,
            areas=areas,
            rles=rles,
        )

    @staticmethod
    def _empty_batch(iou_preds: torch.Tensor, levels: torch.Tensor, pts: torch.Tensor) -> MaskData:
        dev = iou_preds.device
        return _MaskData(
            iou_preds=iou_preds,
            points=pts,
            levels=levels,
            stability_score=torch.zeros(0, dtype=iou_preds.dtype, device=dev),
            boxes=torch.zeros(0, 4, dtype=torch.int64, device=dev),
            areas=torch.zeros(0, dtype=torch.int64, device=dev),
            rles=[],
        )

    def _postprocess_small_regions(
        self, mask_data: MaskData, min_area: int, nms_thresh: float
    ) -> tuple[MaskData, np.ndarray]:
        """segment-anything's ``postprocess_small_regions`` on decoded masks.

        Holes, then islands, smaller than ``min_area`` are removed from every mask (OpenCV
        connected components, one call per mask and mode, through segment-anything's
        ``remove_small_regions``); boxes are recomputed; NMS with score 1 for unchanged and 0
        for changed masks removes new duplicates; changed survivors get new RLE, box and area.
        Edits ``mask_data`` in place.

        Returns:
            (mask_data, masks): the filtered data and its (K, H, W) bool masks.
        """
        h, w = mask_data["rles"][0]["size"]
        masks = _decode_chunked(mask_data["rles"], h, w)
        unchanged = np.ones(len(masks), dtype=bool)
        for i in range(len(masks)):
            check_stop()
            m, changed_holes = remove_small_regions(masks[i], min_area, mode="holes")
            m, changed_islands = remove_small_regions(m, min_area, mode="islands")
            if changed_holes or changed_islands:
                masks[i] = m
                unchanged[i] = False
        chunks = _mask_chunks(len(masks), h, w)
        parts = []
        for s in chunks:
            check_stop()
            parts.append(batched_mask_to_box(torch.from_numpy(masks[s : s + chunks.step])))
        boxes = torch.cat(parts)
        keep = batched_nms(
            boxes.float(),
            torch.as_tensor(unchanged.tolist(), dtype=torch.float32),
            torch.zeros(len(boxes)),
            iou_threshold=nms_thresh,
        )
        keep_np = keep.numpy()
        redo = keep_np[~unchanged[keep_np]]
        if redo.size:
            new_rles = encode_rle(masks[redo])
            rles = mask_data["rles"]
            for j, i in enumerate(redo.tolist()):
                rles[i] = new_rles[j]
            mask_data["boxes"][redo] = boxes[redo].numpy()
            mask_data["areas"][redo] = masks[redo].reshape(len(redo), -1).sum(1)
        mask_data.filter(keep)
        kept = np.empty((len(keep_np), h, w), dtype=bool)
        sel = _mask_chunks(len(keep_np), h, w)
        for s in sel:
            check_stop()
            kept[s : s + sel.step] = masks[keep_np[s : s + sel.step]]
        return mask_data, kept
