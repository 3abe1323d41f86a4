"""Presets as data: values from segment-anything's defaults, its README and method-fma 8.1/8.3."""

from __future__ import annotations

import dataclasses
import inspect
import sys

import pytest

from fma.sam.presets import (
    AMG_PRESETS,
    SUPERPIXEL_PRESETS,
    AmgPreset,
    get_preset,
    get_superpixel_preset,
    list_presets,
)


def test_names():
    assert list_presets() == ["sam_default", "sam_heavy", "fma", "fast"]
    assert set(SUPERPIXEL_PRESETS) == {"felzenszwalb", "slic"}


def test_sam_default_matches_segment_anything_signature():
    from segment_anything import SamAutomaticMaskGenerator

    params = inspect.signature(SamAutomaticMaskGenerator.__init__).parameters
    kwargs = AMG_PRESETS["sam_default"].generator_kwargs()
    shared = [k for k in kwargs if k in params]
    assert len(shared) == 11  # all but model, point_grids and output_mode
    for key in shared:
        assert kwargs[key] == params[key].default, key
    assert kwargs["level_iou_offsets"] == kwargs["level_nms_offsets"] == (0.0, 0.0, 0.0)
    assert kwargs["containment_thresh"] is None


def _diff(a: AmgPreset, b: AmgPreset) -> dict:
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    return {k: db[k] for k in da if da[k] != db[k] and k not in ("name", "description")}


def test_heavy_is_the_readme_example():
    assert _diff(AMG_PRESETS["sam_default"], AMG_PRESETS["sam_heavy"]) == {
        "pred_iou_thresh": 0.86,
        "stability_score_thresh": 0.92,
        "crop_n_layers": 1,
        "crop_n_points_downscale_factor": 2,
        "min_mask_region_area": 100,
    }
    assert AMG_PRESETS["sam_heavy"].points_per_side == 32


def test_fma_is_heavy_plus_the_three_modifications():
    assert _diff(AMG_PRESETS["sam_heavy"], AMG_PRESETS["fma"]) == {
        "level_iou_offsets": (0.0, 0.0, 0.1),
        "level_nms_offsets": (0.0, 0.0, 1.0),
        "containment_thresh": 0.3,
    }
    fma = AMG_PRESETS["fma"]
    assert (fma.box_nms_thresh, fma.crop_nms_thresh, fma.stability_score_offset) == (0.7, 0.7, 1.0)
    assert fma.crop_overlap_ratio == 512 / 1500


def test_fast_is_small():
    assert _diff(AMG_PRESETS["fma"], AMG_PRESETS["fast"]) == {
        "points_per_side": 8,
        "crop_n_layers": 0,
        "crop_n_points_downscale_factor": 1,
    }


def test_lookup_overrides_and_errors():
    p = get_preset("fma", points_per_batch=16, level_iou_offsets=[0, 0, 0.2])
    assert p.points_per_batch == 16 and p.level_iou_offsets == (0.0, 0.0, 0.2)
    assert AMG_PRESETS["fma"].points_per_batch == 64  # the table is unchanged
    assert get_preset(p) is p
    with pytest.raises(KeyError, match="available: sam_default, sam_heavy, fma, fast"):
        get_preset("heavy")
    with pytest.raises(TypeError):
        get_preset("fma", point_per_side=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        AMG_PRESETS["fma"].containment_thresh = 0.5  # type: ignore[misc]
    assert get_superpixel_preset("slic", scales=[10, 5, 2]).scales == (10.0, 5.0, 2.0)
    with pytest.raises(KeyError, match="felzenszwalb"):
        get_superpixel_preset("quickshift")


def test_generator_accepts_every_preset_field():
    from fma.sam.level_masks import FmaMaskGenerator

    params = inspect.signature(FmaMaskGenerator.__init__).parameters
    for preset in AMG_PRESETS.values():
        assert set(preset.generator_kwargs()) <= set(params)


def test_importing_presets_is_cheap():
    import subprocess

    code = "import fma.sam, sys; print('torch' in sys.modules, 'segment_anything' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_containment_threshold_keeps_its_manifest_name():
    from fma.sam.presets import get_preset

    fma = get_preset("fma")
    assert fma.containment_thresh == 0.3
    settings = fma.manifest_settings()
    assert settings["rsw_thresh"] == 0.3 and "containment_thresh" not in settings
    assert get_preset("fma", rsw_thresh=0.5).containment_thresh == 0.5  # the older name
    assert get_preset("fma", containment_thresh=0.4).containment_thresh == 0.4
