"""SAMS seeding (method-fma 9.1): hand-built cases and a per-mask-loop reference.

Every test runs on fma (runs, ``fma.seeding.sams``) and on the dense oracle
``oracle_seeding.sams_dense``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle_seeding import dense_scores, sams_dense, sams_record_dense

from fma.io.cams import CamRecord
from fma.io.masks.records import SamMasks
from fma.io.masks.runs import runs_from_dense
from fma.seeding import (
    SamsOptions,
    mask_fg_scores,
    paint_masks,
    painting_order,
    sams_seed,
    seeds_from_masks,
    top_mask,
    upsample_cam,
)
from fma.seeding import sams_seed as fma_sams_seed

EPS = 1e-7


def seeds(masks, cam, fg_cls, *, levels=None, **options):
    """fma's ``seeds_from_masks`` with the options as keywords."""
    return seeds_from_masks(masks, cam, fg_cls, SamsOptions(**options), levels=levels)


def scores(cam, masks, **options):
    """fma's steps 1-4 on (K, H, W) masks."""
    return mask_fg_scores(cam, runs_from_dense(masks), SamsOptions(gamma=1.0, **options))


def _oracle_seeds(masks, cam, fg_cls, *, levels=None, **options):
    return sams_dense(masks, cam, fg_cls, SamsOptions(**options), levels=levels)


def _oracle_scores(cam, masks, **options):
    return dense_scores(cam, masks, SamsOptions(gamma=1.0, **options))


@pytest.fixture(autouse=True, params=["runs", "oracle"])
def implementation(request, monkeypatch):
    """Every test runs on fma (runs) and on the dense oracle."""
    if request.param == "oracle":
        monkeypatch.setitem(globals(), "seeds", _oracle_seeds)
        monkeypatch.setitem(globals(), "scores", _oracle_scores)
        monkeypatch.setitem(globals(), "sams_seed", sams_record_dense)
    return request.param


# ---------------------------------------------------------------------------------------------
# Brute-force reference: one Python iteration per mask, written after the original code
# (gather per mask, Python's stable sorted() for the priority, a painting loop).
def reference_sams(
    masks,
    cam,
    fg_cls,
    levels,
    *,
    gamma=None,
    norm_first=True,
    bg_method="pow",
    bg_thresh=None,
    alpha=None,
    priority=("level_bigger", "conf_bigger"),
    gather="mean",
):
    K, H, W = masks.shape
    up = torch.as_tensor(np.asarray(cam, np.float32))
    if up.shape[1:] != (H, W):
        up = F.interpolate(up[None], size=(H, W), mode="bilinear", align_corners=False)[0]
    if norm_first:
        up = torch.clamp(up, min=0)
        lo = up.amin(dim=(1, 2), keepdim=True)
        hi = up.amax(dim=(1, 2), keepdim=True)
        up = (up - lo) / (hi - lo + EPS)
    f = up.numpy()
    P = f.shape[0]
    pooled = np.zeros((K, P))
    nonempty = [k for k in range(K) if masks[k].any()]
    for k in nonempty:
        vals = f[:, masks[k]].astype(np.float64)
        pooled[k] = vals.sum(axis=1) / (vals.shape[1] if gather == "mean" else 1)
    pooled = np.maximum(pooled, 0)
    score = np.zeros((K, P))
    if nonempty:
        lo = pooled[nonempty].min(axis=0)
        hi = pooled[nonempty].max(axis=0)
        for k in nonempty:
            score[k] = (pooled[k] - lo) / (hi - lo + EPS)
    labels_of = [0, *[int(c) for c in fg_cls]]
    labels, confs = [], []
    for k in range(K):
        s = list(score[k])
        if bg_method == "pow":
            s = [(1 - max(s, default=0.0)) ** gamma, *s]
        elif bg_method == "thresh":
            s = [bg_thresh, *s]
        elif bg_method == "alpha_bg":
            s[0] = s[0] ** alpha
        best = max(range(len(s)), key=lambda j: (s[j], -j))  # first maximum
        labels.append(labels_of[best] if k in nonempty else 0)
        confs.append(s[best])
    areas = masks.reshape(K, -1).sum(1)

    def key(k):
        out = []
        for p in priority:
            name, direction = p.split("_")
            v = {"level": levels[k], "conf": confs[k], "area": areas[k]}[name]
            out.append(v if direction == "bigger" else -v)
        return out

    seed = np.zeros((H, W), np.uint8)
    for k in sorted(range(K), key=key):
        seed[masks[k]] = labels[k]
    return seed, np.array(labels, np.uint8), np.array(confs)


def random_case(rng, k, h, w, p, *, bg_channel=False, grid=(6, 8)):
    """Random masks (rectangles, duplicates, one empty), levels and a low-resolution CAM."""
    masks = np.zeros((k, h, w), bool)
    for i in range(k):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = y0 + rng.integers(1, h), x0 + rng.integers(1, w)
        masks[i, y0:y1, x0:x1] = True
    if k > 3:
        masks[2] = masks[1]  # an exact duplicate: equal keys, file order decides
        masks[3] = False  # an empty mask
    levels = rng.integers(0, 3, k)
    cam = rng.normal(size=(p + int(bg_channel), *grid)).astype(np.float32)
    fg_cls = rng.choice(np.arange(1, 21), size=p, replace=False)
    return masks, cam, fg_cls, levels


# ---------------------------------------------------------------------------------------------
# Hand-built cases
def hand_case():
    """7 columns x 2 rows; classes 3 and 7; five masks (see the expectations below)."""
    c3 = np.array([5, 5, 5, 0, 0, -3, 5], np.float32)
    c7 = np.array([0, 0, 0, 2, 2, -1, 0], np.float32)
    cam = np.stack([np.tile(c3, (2, 1)), np.tile(c7, (2, 1))])  # (2, 2, 7), image size
    cols = {"A": [0, 1, 2], "B": [3, 4], "C": [5], "D": [1, 2, 3], "E": [4]}
    masks = np.zeros((5, 2, 7), bool)
    for k, name in enumerate("ABCDE"):
        masks[k][:, cols[name]] = True
    levels = np.array([2, 2, 2, 1, 0])
    return masks, cam, np.array([3, 7]), levels


def test_hand_case_levels_win_over_confidence():
    masks, cam, fg, levels = hand_case()
    res = seeds(masks, cam, fg, levels=levels, gamma=1.0)
    # Normalised scores (c3, c7): A (1, 0), B (0, 1), C (0, 0), D (2/3, 1/3), E (0, 1).
    np.testing.assert_allclose(
        res.fg_score, [[1, 0], [0, 1], [0, 0], [2 / 3, 1 / 3], [0, 1]], atol=1e-6
    )
    # Background (1 - max)^1: A 0, B 0, C 1, D 1/3, E 0.
    assert res.labels.tolist() == [3, 7, 0, 3, 7]
    np.testing.assert_allclose(res.conf, [1, 1, 1, 2 / 3, 1], atol=1e-6)
    # Paint order: E (level 0), D (level 1), then the level-2 masks by confidence. D (label 3,
    # level 1) covers column 3, but B (level 2) wins there; column 6 is covered by no mask.
    assert res.order[:2].tolist() == [4, 3]
    assert res.seed.dtype == np.uint8
    assert res.seed.tolist() == [[3, 3, 3, 7, 7, 0, 0]] * 2


def test_hand_case_thresh_background():
    masks, cam, fg, levels = hand_case()
    lo = seeds(masks, cam, fg, levels=levels, bg_method="thresh", bg_thresh=0.6)
    hi = seeds(masks, cam, fg, levels=levels, bg_method="thresh", bg_thresh=0.7)
    assert lo.labels.tolist() == [3, 7, 0, 3, 7]  # D: 2/3 > 0.6
    assert hi.labels.tolist() == [3, 7, 0, 0, 7]  # D: 2/3 < 0.7
    # D (bg for 0.7) is overwritten everywhere by level-2 masks: the seeds agree.
    assert hi.seed.tolist() == lo.seed.tolist() == [[3, 3, 3, 7, 7, 0, 0]] * 2


def test_hand_case_level_smaller_lets_small_parts_win():
    masks, cam, fg, levels = hand_case()
    res = seeds(masks, cam, fg, levels=levels, gamma=1.0, priority=("level_smaller", "conf_bigger"))
    # Now D (level 1, label 3) is painted after the wholes, E (level 0, label 7) last.
    assert res.seed.tolist() == [[3, 3, 3, 3, 7, 0, 0]] * 2


def test_equal_keys_later_mask_in_file_order_wins():
    # Class 3 is hot on column 0 only, class 7 on column 3 only. Mask A = columns 0-2 and
    # B = columns 1-3 get bit-identical confidences and the same level.
    cam = np.zeros((2, 1, 4), np.float32)
    cam[0, 0, 0] = 1.0
    cam[1, 0, 3] = 1.0
    a = np.array([[1, 1, 1, 0]], bool)
    b = np.array([[0, 1, 1, 1]], bool)
    res_ab = seeds(np.stack([a, b]), cam, [3, 7], levels=[2, 2], gamma=1.0)
    assert res_ab.conf[0] == res_ab.conf[1]
    assert res_ab.labels.tolist() == [3, 7]
    assert res_ab.seed.tolist() == [[3, 7, 7, 7]]  # B is later in the file
    res_ba = seeds(np.stack([b, a]), cam, [3, 7], levels=[2, 2], gamma=1.0)
    assert res_ba.seed.tolist() == [[3, 3, 3, 7]]  # now A is later


def test_higher_confidence_wins_at_equal_level():
    cam = np.zeros((2, 1, 5), np.float32)
    cam[0, 0, :2] = 1.0  # class 5 on columns 0-1
    cam[1, 0, 2:4] = 1.0  # class 7 on columns 2-3
    cols = {"X": [0, 1], "Y": [1, 2, 3, 4], "Z": [4], "W": [2, 3]}
    masks = np.zeros((4, 1, 5), bool)
    for k, name in enumerate("XYZW"):
        masks[k, 0, cols[name]] = True
    res = seeds(masks, cam, [5, 7], levels=[1, 1, 1, 1], gamma=2.0)
    # Scores (c5, c7): X (1, 0), Y (1/4, 1/2), Z (0, 0), W (0, 1); Y's background is 1/4.
    assert res.labels.tolist() == [5, 7, 0, 7]
    np.testing.assert_allclose(res.conf, [1, 0.5, 1, 1], atol=1e-6)
    # Y has the lowest confidence, so it is painted first although it comes after X in the
    # file: X wins column 1 and Z (background, confidence 1) wins column 4.
    assert res.order[0] == 1
    assert res.seed.tolist() == [[5, 5, 7, 7, 0]]


def test_no_masks_gives_background():
    res = seeds(np.zeros((0, 5, 6), bool), np.ones((1, 2, 2), np.float32), [4], gamma=1)
    assert res.seed.shape == (5, 6) and res.seed.dtype == np.uint8
    assert not res.seed.any()
    assert res.labels.shape == (0,) and res.order.shape == (0,)


def test_single_mask_is_background():
    # K = 1: every normalised score is 0, so the background (score 1) wins (method-fma 9.3).
    cam = np.full((2, 3, 3), 9.0, np.float32)
    masks = np.zeros((1, 3, 3), bool)
    masks[0, :2] = True
    res = seeds(masks, cam, [1, 2], levels=[2], gamma=0.7)
    assert res.labels.tolist() == [0]
    assert not res.seed.any()


def test_class_without_positive_score_never_wins():
    rng = np.random.default_rng(3)
    masks, cam, _, levels = random_case(rng, 12, 20, 30, 2)
    cam[1] = -np.abs(cam[1]) - 0.1  # class 9: no positive CAM anywhere
    res = seeds(masks, cam, [4, 9], levels=levels, gamma=0.5)
    assert np.all(res.fg_score[:, 1] == 0)
    assert 9 not in res.labels and 9 not in np.unique(res.seed)
    assert 4 in res.labels


def test_no_classes_gives_background():
    masks = np.ones((2, 4, 4), bool)
    res = seeds(masks, np.zeros((0, 2, 2), np.float32), [], levels=[0, 1], gamma=1)
    assert not res.seed.any() and res.labels.tolist() == [0, 0]


def test_patch_resolution_cam_is_upsampled_to_mask_size():
    # A 500x375 image: the CAM lives on the 32x24 grid of the 512x384 aligned image.
    H, W = 375, 500
    cam = np.zeros((2, 24, 32), np.float32)
    cam[0, :, :16] = 3.0  # class 3 on the left half of the grid
    cam[1, :, 16:] = 2.0  # class 9 on the right half
    masks = np.zeros((3, H, W), bool)
    masks[0, :, :250] = True
    masks[1, :, 250:] = True
    masks[2, 100:120, 240:260] = True  # a small part across the middle, level 1
    res = seeds(masks, cam, [3, 9], levels=[2, 2, 1], gamma=1.0)
    assert res.seed.shape == (H, W)
    assert res.labels[:2].tolist() == [3, 9]
    expected = np.zeros((H, W), np.uint8)
    expected[:, :250] = 3
    expected[:, 250:] = 9
    np.testing.assert_array_equal(res.seed, expected)
    ref, _, _ = reference_sams(masks, cam, [3, 9], [2, 2, 1], gamma=1.0)
    np.testing.assert_array_equal(res.seed, ref)


def test_upsample_matches_torch_and_keeps_same_size():
    cam = np.random.default_rng(0).normal(size=(3, 5, 7)).astype(np.float16)
    up = upsample_cam(cam, (37, 41))
    ref = F.interpolate(
        torch.from_numpy(cam.astype(np.float32))[None], size=(37, 41), mode="bilinear",
        align_corners=False,
    )[0].numpy()  # fmt: skip
    assert up.dtype == np.float32 and up.shape == (3, 37, 41)
    np.testing.assert_array_equal(up, ref)
    np.testing.assert_array_equal(upsample_cam(cam, (5, 7)), cam.astype(np.float32))
    assert upsample_cam(torch.from_numpy(cam), (37, 41)).shape == (3, 37, 41)


# ---------------------------------------------------------------------------------------------
# Against the per-mask-loop reference on random inputs
SETTINGS = [
    dict(gamma=1.0),
    dict(gamma=0.6, norm_first=False),
    dict(gamma=3.0, gather="sum"),
    dict(bg_method="thresh", bg_thresh=0.4),
    dict(gamma=0.7, priority=("conf_bigger",)),
    dict(gamma=0.7, priority=("area_smaller",)),
    dict(gamma=0.7, priority=("area_bigger", "level_smaller")),
    dict(gamma=0.7, priority=("level_bigger", "conf_smaller")),
]


@pytest.mark.parametrize(
    "setting", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items())
)
def test_matches_per_mask_loop_reference(setting):
    rng = np.random.default_rng(sum(map(ord, repr(setting))))
    for K, P in itertools.product((1, 5, 40), (1, 3)):
        masks, cam, fg, levels = random_case(rng, K, 31, 45, P)
        res = seeds(masks, cam, fg, levels=levels, **setting)
        ref_seed, ref_labels, ref_conf = reference_sams(masks, cam, fg, levels, **setting)
        np.testing.assert_array_equal(res.seed, ref_seed)
        np.testing.assert_array_equal(res.labels, ref_labels)
        nonempty = masks.reshape(K, -1).any(1)
        np.testing.assert_allclose(res.conf[nonempty], ref_conf[nonempty], rtol=1e-9, atol=1e-12)
        assert res.seed.max(initial=0) < 255


@pytest.mark.parametrize("bg_method", ["no_bg", "alpha_bg"])
def test_background_channel_methods_match_reference(bg_method):
    rng = np.random.default_rng(7)
    masks, cam, fg, levels = random_case(rng, 30, 25, 33, 3, bg_channel=True)
    extra = {"alpha": 0.5} if bg_method == "alpha_bg" else {}
    res = seeds(masks, cam, fg, levels=levels, bg_method=bg_method, **extra)
    ref_seed, ref_labels, _ = reference_sams(masks, cam, fg, levels, bg_method=bg_method, **extra)
    np.testing.assert_array_equal(res.seed, ref_seed)
    np.testing.assert_array_equal(res.labels, ref_labels)
    with pytest.raises(ValueError, match="background channel first"):
        seeds(masks, cam[1:], fg, levels=levels, bg_method=bg_method, **extra)


def test_pixel_min_max_cancels_for_mean_but_not_for_sum():
    """Step 2's per-pixel min-max (kept from the original) is affine per class: with mean
    pooling the across-mask normalisation cancels it, leaving only the clip at 0; with sum
    pooling it cancels only when the class's smallest clipped pixel is 0."""
    rng = np.random.default_rng(3)
    masks = np.zeros((3, 6, 8), bool)
    masks[0, :, :2] = True  # areas 12, 18, 6: sum pooling weights the shift by the area
    masks[1, :3, 2:] = True
    masks[2, 3:4, 2:] = True
    positive = rng.uniform(0.2, 1.0, (2, 6, 8)).astype(np.float32)  # min > 0: no pixel <= 0
    signed = positive - 0.5
    for cam in (positive, signed):
        clip_only = _min_max_rows(_pool(masks, np.maximum(cam, 0), "mean"))
        got = scores(cam, masks, norm_first=True, gather="mean")
        np.testing.assert_allclose(got, clip_only, atol=1e-5)
    sums = [scores(c, masks, norm_first=True, gather="sum") for c in (positive, signed)]
    np.testing.assert_allclose(
        sums[1], _min_max_rows(_pool(masks, np.maximum(signed, 0), "sum")), atol=1e-5
    )
    assert np.abs(sums[0] - _min_max_rows(_pool(masks, positive, "sum"))).max() > 0.05


def _pool(masks, f, gather):
    out = np.stack([f[:, m].sum(axis=1) for m in masks]).astype(np.float64)
    return out / masks.reshape(len(masks), -1).sum(1)[:, None] if gather == "mean" else out


def _min_max_rows(x):
    return (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0) + EPS)


def test_record_api_matches_array_api():
    rng = np.random.default_rng(11)
    masks, cam, fg, levels = random_case(rng, 20, 24, 40, 2)
    rec = CamRecord(cam=cam.astype(np.float16), fg_cls=fg, ori_size=(24, 40))
    sam = SamMasks(
        masks=masks, levels=levels.astype(np.int8), predicted_iou=np.ones(20, np.float32),
        stability_score=np.ones(20, np.float32), areas=masks.reshape(20, -1).sum(1),
    )  # fmt: skip
    opts = SamsOptions(gamma=0.6)
    res = sams_seed(rec, sam, opts)
    ref = seeds(masks, cam.astype(np.float16), fg, levels=levels, gamma=0.6)
    np.testing.assert_array_equal(res.seed, ref.seed)
    runs = runs_from_dense(masks, levels=levels)
    np.testing.assert_array_equal(fma_sams_seed(rec, runs, opts).seed, ref.seed)
    bad = CamRecord(cam=cam, fg_cls=fg, ori_size=(40, 24))
    with pytest.raises(ValueError, match="different images"):
        sams_seed(bad, sam, opts)


# ---------------------------------------------------------------------------------------------
# Building blocks
def test_painting_order_is_stable_and_keyed():
    levels = np.array([1, 2, 1, 2, 0])
    conf = np.array([0.5, 0.9, 0.5, 0.9, 1.0])
    order = painting_order(("level_bigger", "conf_bigger"), levels=levels, conf=conf)
    assert order.tolist() == [4, 0, 2, 1, 3]  # ties keep file order
    order = painting_order("conf_smaller", conf=conf)
    assert order.tolist() == [4, 1, 3, 0, 2]
    with pytest.raises(ValueError, match="needs the mask areas"):
        painting_order("area_bigger", conf=conf)


def test_top_mask_and_paint():
    masks = np.zeros((3, 2, 3), bool)
    masks[0, :, :2] = True
    masks[1, 0, :] = True
    masks[2, 1, 1] = True
    runs = runs_from_dense(masks)
    assert runs.areas.tolist() == [4, 3, 1]
    order = np.array([1, 0, 2])
    labels = np.array([4, 6, 8], np.uint8)
    assert top_mask(runs, order).tolist() == [[0, 0, 1], [0, 2, -1]]
    assert paint_masks(runs, labels, order).tolist() == [[4, 4, 6], [4, 8, 0]]
    with pytest.raises(ValueError, match="permutation"):
        paint_masks(runs, labels, np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="labels for"):
        paint_masks(runs, labels[:2], order)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(gamma=1, bg_method="softmax"), "unknown bg_method"),
        (dict(gamma=1, priority=("level_bigger", "iou_bigger")), "unknown priority"),
        (dict(gamma=1, priority=()), "at least one"),
        (dict(gamma=1, gather="max"), "unknown gather"),
        (dict(), "needs gamma"),
        (dict(gamma=0), "gamma must be a finite number > 0"),
        (dict(gamma=float("nan")), "finite"),
        (dict(gamma="0.6"), "must be a number"),
        (dict(bg_method="thresh"), "needs bg_thresh"),
        (dict(bg_method="alpha_bg"), "needs alpha"),
        (dict(gamma=1, norm_first="yes"), "norm_first must be True or False"),
    ],
)
def test_invalid_options_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamsOptions(**kwargs)


def test_invalid_inputs_raise_clear_errors():
    masks = np.ones((2, 4, 4), bool)
    cam = np.ones((2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="expected \\(2, h, w\\)"):
        seeds(masks, cam[:1], [1, 2], gamma=1)
    with pytest.raises(ValueError, match="dataset class ids 1..254"):
        seeds(masks, cam, [0, 2], gamma=1)
    with pytest.raises(ValueError, match="dataset class ids 1..254"):
        seeds(masks, cam, [1, 255], gamma=1)
    with pytest.raises(ValueError, match="masks must be"):
        seeds(masks[0], cam, [1, 2], gamma=1)
    with pytest.raises(ValueError, match="levels for"):
        seeds(masks, cam, [1, 2], levels=[1, 2, 3], gamma=1)
    opts = SamsOptions(gamma=1.0, priority="area_smaller")
    assert opts.priority == ("area_smaller",)
    assert opts.to_dict()["priority"] == ["area_smaller"]


def test_one_entry_point_for_arrays_and_one_for_records():
    rng = np.random.default_rng(3)
    masks = rng.random((5, 12, 10)) > 0.6
    cam = rng.random((2, 3, 3)).astype(np.float32)
    levels = np.array([0, 1, 2, 2, 1])
    opts = SamsOptions(gamma=0.7)
    by_arrays = seeds_from_masks(torch.from_numpy(masks), cam, [3, 9], opts, levels=levels)
    by_kw = seeds(masks, cam, [3, 9], levels=levels, gamma=0.7)
    np.testing.assert_array_equal(by_arrays.seed, by_kw.seed)
    record = CamRecord(cam=cam, fg_cls=np.array([3, 9]), ori_size=(12, 10))
    k = len(masks)
    dense = SamMasks(masks=masks, levels=levels.astype(np.int8),
                     predicted_iou=np.ones(k, np.float32), stability_score=np.ones(k, np.float32),
                     areas=masks.sum((1, 2)))  # fmt: skip
    runs = runs_from_dense(masks, levels=levels)
    np.testing.assert_array_equal(sams_seed(record, dense, opts).seed, by_arrays.seed)
    np.testing.assert_array_equal(fma_sams_seed(record, runs, opts).seed, by_arrays.seed)
