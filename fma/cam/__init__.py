"""CAM math on tensors (L1: torch only): Softmax-GradCAM, CAA refinement, post-processing."""

from fma.cam.caa import (
    attention_to_affinity,
    box_mask,
    caa_refine,
    component_boxes,
    propagate,
    quantize_threshold,
)
from fma.cam.gradcam import (
    GradCAMOutput,
    HeadFn,
    masked_softmax,
    positive_pairs,
    softmax_gradcam,
)
from fma.cam.postprocess import (
    align_size,
    bg_power_scores,
    cam_to_label,
    cam_to_score,
    fuse_cams,
    min_max_normalize,
    resize_cams,
    scaled_aligned_size,
)

__all__ = [
    "GradCAMOutput",
    "HeadFn",
    "align_size",
    "attention_to_affinity",
    "bg_power_scores",
    "box_mask",
    "caa_refine",
    "cam_to_label",
    "cam_to_score",
    "component_boxes",
    "fuse_cams",
    "masked_softmax",
    "min_max_normalize",
    "positive_pairs",
    "propagate",
    "quantize_threshold",
    "resize_cams",
    "scaled_aligned_size",
    "softmax_gradcam",
]
