"""FmaMaskGenerator: equality with segment-anything's generator, and each FMA modification."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamAutomaticMaskGenerator

from fma.io.masks.records import decode_rle, load_sam_masks, save_sam_masks
from fma.sam.level_masks import FmaMaskGenerator, containment_filter
from fma.sam.presets import get_preset

KEYS = (
    "segmentation",
    "area",
    "bbox",
    "predicted_iou",
    "stability_score",
    "point_coords",
    "crop_box",
)


def _assert_same(stock: list[dict], ours: list[dict]) -> None:
    assert len(ours) == len(stock)
    for a, b in zip(stock, ours, strict=True):
        for key in KEYS:
            assert a[key] == b[key], key


# ----------------------------------------------------------------------------------------
# equality with segment-anything (all FMA switches off)
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "settings"),
    [
        ((48, 64), dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)),
        # crops, crop-border removal, cross-crop NMS and small-region cleanup
        ((96, 128), get_preset("sam_heavy", points_per_side=16, pred_iou_thresh=0.0,
                               stability_score_thresh=0.5, min_mask_region_area=30)),
    ],
)  # fmt: skip
def test_equals_segment_anything(tiny_sam, synthetic_image, shape, settings):
    if not isinstance(settings, dict):
        settings = settings.generator_kwargs()
        for key in ("level_iou_offsets", "level_nms_offsets", "level_stability_offsets"):
            settings.pop(key)
        settings.pop("containment_thresh")
    image = synthetic_image(*shape)
    stock = SamAutomaticMaskGenerator(tiny_sam, output_mode="coco_rle", **settings).generate(image)
    ours = FmaMaskGenerator(tiny_sam, **settings).generate(image)
    assert len(stock) > 10
    _assert_same(stock, ours)
    if settings.get("crop_n_layers"):
        full = [0, 0, shape[1], shape[0]]
        assert any(r["crop_box"] != full for r in ours)  # masks from layer-1 crops survive


def test_equals_segment_anything_random_weights(random_sam, synthetic_image):
    # Purely random weights give near-identical masks per prompt; without NMS (IoU > 1 never
    # holds) all 192 distinct masks are compared.
    settings = dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                    box_nms_thresh=1.0)  # fmt: skip
    image = synthetic_image(48, 64, seed=3)
    stock = SamAutomaticMaskGenerator(random_sam, output_mode="coco_rle", **settings).generate(
        image
    )
    ours = FmaMaskGenerator(random_sam, **settings).generate(image)
    assert len(stock) == 192
    assert len({r["segmentation"]["counts"] for r in stock}) > 10
    _assert_same(stock, ours)


def test_default_preset_equals_stock_defaults(tiny_sam, synthetic_image):
    image = synthetic_image(48, 64, seed=1)
    stock = SamAutomaticMaskGenerator(tiny_sam, points_per_side=8, output_mode="coco_rle")
    ours = FmaMaskGenerator.from_preset(tiny_sam, "sam_default", points_per_side=8)
    a, b = stock.generate(image), ours.generate(image)
    assert len(a) > 5
    _assert_same(a, b)


# ----------------------------------------------------------------------------------------
# records
# ----------------------------------------------------------------------------------------
def test_records_roundtrip_and_levels(tiny_sam, synthetic_image, tmp_path):
    image = synthetic_image(48, 64, seed=2)
    gen = FmaMaskGenerator(tiny_sam, points_per_side=6, pred_iou_thresh=0, stability_score_thresh=0)
    records = gen.generate(image)
    assert {r["level"] for r in records} == {0, 1, 2}
    save_sam_masks(tmp_path / "a.json", "a", 48, 64, records)
    loaded = load_sam_masks(tmp_path / "a.json")
    assert loaded.masks.shape == (len(records), 48, 64)
    assert loaded.areas.tolist() == [r["area"] for r in records]
    assert loaded.levels.tolist() == [r["level"] for r in records]
    for m, r in zip(loaded.masks, records, strict=True):
        ys, xs = np.nonzero(m)
        # segment-anything's box convention: XYWH with w = x_max - x_min
        assert r["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]


def test_input_and_setting_validation(tiny_sam):
    with pytest.raises(ValueError, match="exactly one"):
        FmaMaskGenerator(tiny_sam, points_per_side=4, point_grids=[np.zeros((1, 2))])
    with pytest.raises(ValueError, match="one value per level"):
        FmaMaskGenerator(tiny_sam, level_iou_offsets=(0.0, 0.1))
    with pytest.raises(ValueError, match="containment_thresh"):
        FmaMaskGenerator(tiny_sam, containment_thresh=0.0)
    with pytest.raises(ValueError, match="uint8"):
        FmaMaskGenerator(tiny_sam, points_per_side=2).generate(np.zeros((8, 8, 3), np.float32))


# ----------------------------------------------------------------------------------------
# FMA modifications on constructed decoder outputs (image 96x128; low-res cells are 4x4 px)
# ----------------------------------------------------------------------------------------
def _blob(rows: tuple[int, int], cols: tuple[int, int], inside: float = 10.0) -> torch.Tensor:
    out = torch.full((32, 32), -10.0)
    out[rows[0] : rows[1], cols[0] : cols[1]] = inside
    return out


def _gen(model, **kw):
    base = dict(points_per_side=1, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    base.update(kw)
    return FmaMaskGenerator(model, **base)


@pytest.fixture()
def image96(synthetic_image) -> np.ndarray:
    return synthetic_image(96, 128, seed=5)


def test_levels_are_multimask_indices(fake_sam, image96):
    low = torch.stack([_blob((2, 6), (2, 6)), _blob((10, 14), (10, 14)), _blob((16, 22), (20, 30))])
    recs = _gen(fake_sam(low, torch.tensor([0.9, 0.8, 0.7]))).generate(image96)
    by_level = {r["level"]: r for r in recs}
    assert sorted(by_level) == [0, 1, 2]
    assert by_level[0]["bbox"][:2] == pytest.approx([7, 7], abs=2)  # cell 2 starts at 8 px
    assert by_level[2]["predicted_iou"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("offsets", "kept"),
    [
        ((0.0, 0.0, 0.0), []),
        ((0.0, 0.0, 0.1), [2]),
        ((0.1, 0.0, 0.0), [0]),
        ((0.0, 0.02, 0.05), [1]),
    ],
)
def test_level_iou_offsets(fake_sam, image96, offsets, kept):
    # pred IoU 0.80 / 0.85 / 0.80 against 0.86: only an offset lets a level pass (strict >).
    low = torch.stack([_blob((2, 6), (2, 6)), _blob((10, 14), (10, 14)), _blob((16, 22), (20, 30))])
    gen = _gen(fake_sam(low, torch.tensor([0.80, 0.85, 0.80])), pred_iou_thresh=0.86,
               level_iou_offsets=offsets)  # fmt: skip
    recs = gen.generate(image96)
    assert sorted(r["level"] for r in recs) == kept
    raw = {0: 0.80, 1: 0.85, 2: 0.80}
    for r in recs:  # the stored score is the raw prediction
        assert r["predicted_iou"] == pytest.approx(raw[r["level"]])


@pytest.mark.parametrize(("offsets", "winner"), [((0.0, 0.0, 0.0), 0), ((0.0, 0.0, 1.0), 2)])
def test_level_nms_priority(fake_sam, image96, offsets, winner):
    # Three near-identical boxes (IoU > 0.7): NMS keeps one; the whole-level bonus decides.
    low = torch.stack([_blob((4, 16), (4, 16)), _blob((4, 16), (4, 17)), _blob((4, 17), (4, 17))])
    gen = _gen(fake_sam(low, torch.tensor([0.95, 0.93, 0.90])), level_nms_offsets=offsets)
    recs = gen.generate(image96)
    assert [r["level"] for r in recs] == [winner]


def test_level_stability_offsets(fake_sam, image96):
    # Level 1 has logits +-0.5: no pixel above +1, so its stability score is 0.
    low = torch.stack(
        [_blob((2, 6), (2, 6)), _blob((10, 14), (10, 14), 0.5), _blob((16, 22), (20, 30))]
    )
    low[1][low[1] < 0] = -0.5
    iou = torch.tensor([0.9, 0.9, 0.9])
    plain = _gen(fake_sam(low, iou), stability_score_thresh=0.5).generate(image96)
    assert sorted(r["level"] for r in plain) == [0, 2]
    boosted = _gen(fake_sam(low, iou), stability_score_thresh=0.5,
                   level_stability_offsets=(0.0, 1.0, 0.0)).generate(image96)  # fmt: skip
    assert sorted(r["level"] for r in boosted) == [0, 1, 2]
    assert next(r for r in boosted if r["level"] == 1)["stability_score"] == 0.0


def test_small_region_cleanup_matches_stock(fake_sam, image96):
    # Level 0: a blob with a one-cell hole (16 px) and a separate 2x2-cell island (64 px).
    blob = _blob((2, 12), (2, 12))
    blob[6, 6] = -10.0
    blob[18:20, 20:22] = 10.0
    low = torch.stack([blob, _blob((14, 16), (2, 4)), _blob((2, 22), (14, 30))])
    model = fake_sam(low, torch.tensor([0.9, 0.9, 0.9]))
    settings = dict(points_per_side=1, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                    min_mask_region_area=100)  # fmt: skip
    stock = SamAutomaticMaskGenerator(model, output_mode="coco_rle", **settings).generate(image96)
    ours = FmaMaskGenerator(model, **settings).generate(image96)
    _assert_same(stock, ours)
    masks = decode_rle([r["segmentation"] for r in ours], 96, 128)
    m0 = masks[[r["level"] for r in ours].index(0)]
    assert not m0[72:80, 80:88].any()  # island removed
    assert m0[24:28, 24:28].all()  # hole filled
    raw = _gen(model).generate(image96)
    raw0 = decode_rle([next(r for r in raw if r["level"] == 0)["segmentation"]], 96, 128)[0]
    assert raw0[72:80, 80:88].any() and not raw0[25:27, 25:27].any()
    assert [r["area"] for r in ours] == masks.reshape(len(ours), -1).sum(1).tolist()


# ----------------------------------------------------------------------------------------
# the containment ("rock-sand-water") filter
# ----------------------------------------------------------------------------------------
def _rect(rows: tuple[int, int], cols: tuple[int, int], shape=(10, 10)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = True
    return m


def _rsw_reference(masks: np.ndarray, levels: np.ndarray, thr: float) -> np.ndarray:
    """Plain-Python spec 8.3: whole -> part -> sub-part, max_k |m & k| / |m| < thr keeps."""
    keep = np.zeros(len(masks), dtype=bool)
    kept: list[int] = []
    for level in (2, 1, 0):
        idx = [i for i in range(len(masks)) if levels[i] == level]
        for i in idx:
            if not kept:
                keep[i] = True
                continue
            area = max(int(masks[i].sum()), 1)
            cover = max(int((masks[i] & masks[k]).sum()) for k in kept) / area
            keep[i] = cover < thr
        kept += [i for i in idx if keep[i]]
    keep[~np.isin(levels, (0, 1, 2))] = True
    return keep


def test_containment_filter_hand_built():
    s3 = _rect((4, 4), (5, 7)) | _rect((9, 9), (0, 6))  # 10 px, 3 inside W: 0.30 -> drop
    s4 = _rect((4, 4), (5, 6)) | _rect((9, 9), (0, 4))  # 7 px, 2 inside W: 0.2857 -> keep
    masks = np.stack([
        _rect((0, 4), (0, 9)),  # W  whole                         keep
        _rect((0, 1), (0, 4)),  # P1 part, inside W (1.0)          drop
        _rect((4, 7), (0, 4)),  # P2 part, 5/20 in W (0.25)        keep
        _rect((3, 6), (8, 9)),  # P5 part, 4/8 in W (0.5)          drop
        _rect((6, 9), (0, 1)),  # S1 sub-part, 4/8 in P2           drop
        _rect((8, 9), (5, 9)),  # S2 sub-part, uncovered           keep
        s3,
        s4,
        _rect((5, 6), (8, 9)),  # S6 inside dropped P5 only        keep
    ])  # fmt: skip
    levels = np.array([2, 1, 1, 1, 0, 0, 0, 0, 0])
    expected = [True, False, True, False, False, True, False, True, True]
    assert containment_filter(masks, levels, 0.3).tolist() == expected
    assert containment_filter(torch.from_numpy(masks), torch.from_numpy(levels), 0.3,
                              chunk_pixels=7).tolist() == expected  # fmt: skip
    assert _rsw_reference(masks, levels, 0.3).tolist() == expected


def test_containment_filter_missing_levels():
    parts = np.stack([_rect((0, 4), (0, 4)), _rect((0, 4), (0, 4)), _rect((2, 3), (2, 3))])
    # no whole masks: both parts become containers unfiltered; the sub-part is inside them
    assert containment_filter(parts, np.array([1, 1, 0])).tolist() == [True, True, False]
    # only sub-parts: all kept; unknown level -1 is always kept
    assert containment_filter(parts, np.array([0, 0, 0])).tolist() == [True, True, True]
    assert containment_filter(parts, np.array([2, -1, 1])).tolist() == [True, True, False]
    assert containment_filter(np.zeros((0, 4, 4), bool), np.zeros(0, int)).tolist() == []
    with pytest.raises(ValueError):
        containment_filter(parts, np.array([1, 1, 0]), 0.0)


def test_containment_filter_random_against_reference():
    rng = np.random.default_rng(0)
    for trial in range(5):
        masks = np.zeros((40, 24, 30), dtype=bool)
        for m in masks:
            y0, x0 = rng.integers(0, 20), rng.integers(0, 26)
            m[y0 : y0 + rng.integers(1, 14), x0 : x0 + rng.integers(1, 16)] = True
        levels = rng.integers(0, 3, size=40)
        thr = [0.3, 0.5, 0.1, 1.0, 0.3][trial]
        want = _rsw_reference(masks, levels, thr)
        assert containment_filter(masks, levels, thr).tolist() == want.tolist()
        assert containment_filter(masks, levels, thr, chunk_pixels=37).tolist() == want.tolist()


def test_rsw_in_generator_filters_the_unfiltered_output(tiny_sam, synthetic_image):
    image = synthetic_image(96, 128, seed=4)
    settings = dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    off = FmaMaskGenerator(tiny_sam, **settings).generate_mask_data(image)
    on = FmaMaskGenerator(tiny_sam, containment_thresh=0.3, **settings).generate_mask_data(image)
    masks = decode_rle(off["rles"], 96, 128)
    keep = _rsw_reference(masks, off["levels"], 0.3)
    assert 0 < keep.sum() < len(keep)
    assert on["rles"] == [r for r, k in zip(off["rles"], keep, strict=True) if k]
    assert on["levels"].tolist() == off["levels"][keep].tolist()
