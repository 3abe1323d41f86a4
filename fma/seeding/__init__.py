"""Seeds from CAMs and SAM masks: SAMS (FMA-WSSS) and SEPL refinement of pseudo labels.

Both compute on the masks' runs (:class:`fma.io.masks.runs.MaskRuns`): :mod:`fma.seeding.sams`
(with its settings in :mod:`fma.seeding.sams_options`), :mod:`fma.seeding.sepl`, and the run
operations they share in :mod:`fma.seeding.runs`.
"""

from fma.seeding.sams import (
    SamsResult,
    add_background,
    label_masks,
    mask_fg_scores,
    paint_masks,
    painting_order,
    sams_seed,
    seed_from_scores,
    seeds_from_masks,
    top_mask,
    upsample_cam,
)
from fma.seeding.sams_options import (
    BG_METHODS,
    DEFAULT_PRIORITY,
    EPS,
    GATHER_METHODS,
    PRIORITIES,
    BgMethod,
    GatherMethod,
    Priority,
    SamsOptions,
)
from fma.seeding.sepl import refine_pseudo_label

__all__ = [
    "BG_METHODS",
    "DEFAULT_PRIORITY",
    "EPS",
    "GATHER_METHODS",
    "PRIORITIES",
    "BgMethod",
    "GatherMethod",
    "Priority",
    "SamsOptions",
    "SamsResult",
    "add_background",
    "label_masks",
    "mask_fg_scores",
    "paint_masks",
    "painting_order",
    "refine_pseudo_label",
    "sams_seed",
    "seed_from_scores",
    "seeds_from_masks",
    "top_mask",
    "upsample_cam",
]
