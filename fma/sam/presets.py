"""Named mask-generator settings, as data.

:data:`AMG_PRESETS` holds the SAM automatic-mask-generator settings (keyword arguments of
:class:`fma.sam.level_masks.FmaMaskGenerator`); :data:`SUPERPIXEL_PRESETS` holds the settings of
the weight-free classical-superpixel source (:class:`fma.sam.superpixels.SuperpixelGenerator`).

AMG presets:

``sam_default``
    segment-anything's ``SamAutomaticMaskGenerator`` defaults (tuned by its authors for ViT-H).
``sam_heavy``
    the segment-anything README's "heavier" example: 32 points per side, pred-IoU 0.86,
    stability 0.92, one crop layer with 2x point downscale, small-region cleanup below 100 px.
``fma``
    the FMA-WSSS final setting (pattern ``l2_nmsf_s1_rsw3``): ``sam_heavy`` plus the per-level
    pred-IoU offsets (0, 0, +0.1), the per-level NMS priority (0, 0, +1.0) and the
    "rock-sand-water" containment filter at 0.3.
``fast``
    CPU smoke runs: 8 points per side, no crops, otherwise ``fma``.

``points_per_batch`` only trades memory for speed (results agree up to the rounding of batched
matrix products; the FMA-WSSS runs used 256 on a GPU, 64 here bounds CPU memory). This module
imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = [
    "AMG_PRESETS",
    "SUPERPIXEL_PRESETS",
    "AmgPreset",
    "SuperpixelPreset",
    "get_preset",
    "get_superpixel_preset",
    "list_presets",
]


@dataclasses.dataclass(frozen=True)
class AmgPreset:
    """Settings of the automatic mask generator (field names = generator keywords)."""

    name: str  # preset key
    points_per_side: int = 32  # grid of points_per_side**2 point prompts on the full image
    points_per_batch: int = 64  # prompts decoded together (memory/speed only)
    pred_iou_thresh: float = 0.88  # keep masks whose predicted IoU (+ level offset) exceeds this
    stability_score_thresh: float = 0.95  # keep masks whose stability score reaches this
    stability_score_offset: float = 1.0  # logit offset of the stability score
    box_nms_thresh: float = 0.7  # box IoU of the within-crop NMS
    crop_n_layers: int = 0  # extra crop layers (layer i has (2**i)**2 crops)
    crop_nms_thresh: float = 0.7  # box IoU of the NMS across crops
    crop_overlap_ratio: float = 512 / 1500  # overlap of neighbouring crops (fraction of side)
    crop_n_points_downscale_factor: int = 1  # points per side in layer i: pps / factor**i
    min_mask_region_area: int = 0  # remove holes/islands smaller than this (px); 0 = off
    level_iou_offsets: tuple[float, float, float] = (0.0, 0.0, 0.0)  # added to pred IoU per level
    level_nms_offsets: tuple[float, float, float] = (0.0, 0.0, 0.0)  # added to the NMS score
    level_stability_offsets: tuple[float, float, float] = (0.0, 0.0, 0.0)  # added to stability
    # Drop a mask when this fraction of it lies inside the kept masks of a higher level (the
    # authors' "rock-sand-water" filter, rsw); None = off. Mask manifests record it as
    # "rsw_thresh" (MANIFEST_NAMES), the name their folders have carried since format version 1.
    containment_thresh: float | None = None
    description: str = ""  # one line for listings

    def generator_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`fma.sam.level_masks.FmaMaskGenerator`."""
        out = dataclasses.asdict(self)
        del out["name"], out["description"]
        return out

    def manifest_settings(self) -> dict[str, Any]:
        """The fields as a mask manifest records them (``preset_settings``; old field names)."""
        out = dataclasses.asdict(self)
        return {MANIFEST_NAMES.get(k, k): v for k, v in out.items()}

    def replace(self, **changes: Any) -> AmgPreset:
        """A copy with some fields changed (unknown names raise TypeError; the manifest names of
        :data:`MANIFEST_NAMES`, e.g. ``rsw_thresh``, are accepted for their fields)."""
        renamed = {v: k for k, v in MANIFEST_NAMES.items()}
        changes = {renamed.get(k, k): v for k, v in changes.items()}
        for key in ("level_iou_offsets", "level_nms_offsets", "level_stability_offsets"):
            if key in changes:
                changes[key] = tuple(float(v) for v in changes[key])
        return dataclasses.replace(self, **changes)


#: Field name -> the key mask manifests (and older configs) use for it.
MANIFEST_NAMES = {"containment_thresh": "rsw_thresh"}

_DEFAULT = AmgPreset(
    "sam_default", description="segment-anything SamAutomaticMaskGenerator defaults"
)
_HEAVY = _DEFAULT.replace(
    name="sam_heavy",
    pred_iou_thresh=0.86,
    stability_score_thresh=0.92,
    crop_n_layers=1,
    crop_n_points_downscale_factor=2,
    min_mask_region_area=100,
    description="segment-anything README heavy example (crops, small-region cleanup)",
)
_FMA = _HEAVY.replace(
    name="fma",
    level_iou_offsets=(0.0, 0.0, 0.1),
    level_nms_offsets=(0.0, 0.0, 1.0),
    containment_thresh=0.3,
    description="FMA-WSSS l2_nmsf_s1_rsw3: heavy + whole-level offsets + containment filter",
)
_FAST = _FMA.replace(
    name="fast",
    points_per_side=8,
    crop_n_layers=0,
    crop_n_points_downscale_factor=1,
    description="CPU smoke runs: fma with 8x8 points and no crops",
)

#: Named AMG presets.
AMG_PRESETS: dict[str, AmgPreset] = {p.name: p for p in (_DEFAULT, _HEAVY, _FMA, _FAST)}


@dataclasses.dataclass(frozen=True)
class SuperpixelPreset:
    """Settings of the classical-superpixel mask source (three scales -> levels 0, 1, 2)."""

    name: str  # preset key
    method: str = "felzenszwalb"  # "felzenszwalb" or "slic" (scikit-image)
    # felzenszwalb: `scale` per level (fine -> coarse); slic: `n_segments` per level
    scales: tuple[float, float, float] = (100.0, 400.0, 1600.0)
    sigma: float = 0.8  # Gaussian pre-smoothing (both methods)
    min_size_ratio: float = 0.5  # felzenszwalb min_size = ratio * scale (px)
    compactness: float = 10.0  # slic colour/space trade-off
    description: str = ""  # one line for listings

    def replace(self, **changes: Any) -> SuperpixelPreset:
        if "scales" in changes:
            changes["scales"] = tuple(float(v) for v in changes["scales"])
        return dataclasses.replace(self, **changes)


#: Named superpixel presets.
SUPERPIXEL_PRESETS: dict[str, SuperpixelPreset] = {
    p.name: p
    for p in (
        SuperpixelPreset(
            "felzenszwalb", description="Felzenszwalb graph segmentation, scales 100/400/1600"
        ),
        SuperpixelPreset(
            "slic",
            method="slic",
            scales=(400.0, 100.0, 25.0),
            sigma=1.0,
            description="SLIC with 400/100/25 segments",
        ),
    )
}


def list_presets() -> list[str]:
    """Names of the AMG presets."""
    return list(AMG_PRESETS)


def get_preset(name: str | AmgPreset, **overrides: Any) -> AmgPreset:
    """Look up an AMG preset by name (an :class:`AmgPreset` passes through), then apply overrides.

    Raises:
        KeyError: unknown name; the message lists the available presets.
        TypeError: an override that is not a preset field.
    """
    if isinstance(name, AmgPreset):
        preset = name
    else:
        try:
            preset = AMG_PRESETS[name]
        except KeyError:
            raise KeyError(
                f"unknown SAM preset {name!r}; available: {', '.join(AMG_PRESETS)}"
            ) from None
    return preset.replace(**overrides) if overrides else preset


def get_superpixel_preset(name: str | SuperpixelPreset, **overrides: Any) -> SuperpixelPreset:
    """Look up a superpixel preset by name, then apply overrides (see :func:`get_preset`)."""
    if isinstance(name, SuperpixelPreset):
        preset = name
    else:
        try:
            preset = SUPERPIXEL_PRESETS[name]
        except KeyError:
            raise KeyError(
                f"unknown superpixel preset {name!r}; available: {', '.join(SUPERPIXEL_PRESETS)}"
            ) from None
    return preset.replace(**overrides) if overrides else preset
