"""SEPL refinement: the behaviour vectors of method-sepl section 2.6 and brute-force checks.

Every test runs on fma's ``refine_pseudo_label`` (runs) and on the dense oracle
``oracle_seeding.sepl_dense``. The reference ``_official_merge`` is a line-by-line transcription
of the per-mask loop of the official mergers (``merge/max_iou*.py``), with masks held in memory
instead of PNG files.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from oracle_seeding import sepl_dense

from fma.io.masks.runs import runs_from_dense
from fma.seeding.sepl import METHODS, refine_pseudo_label

H = W = 20


@pytest.fixture(autouse=True, params=["runs", "oracle"])
def implementation(request, monkeypatch):
    """Every test runs on fma (runs) and on the dense oracle."""
    if request.param == "oracle":
        monkeypatch.setitem(globals(), "refine_pseudo_label", sepl_dense)
    return request.param


def _official_merge(predict: np.ndarray, masks: list[np.ndarray], num_cls: int, variant: str):
    seen: set[int] = set()
    processed = np.zeros_like(predict)
    for i in range(1, num_cls):
        pre_cls = predict == i
        if np.sum(pre_cls) == 0:
            continue
        candidates = []
        sam_mask = np.zeros_like(pre_cls)
        for k, cur in enumerate(masks):
            if k in seen:
                continue
            sam_mask = np.logical_or(sam_mask, cur)
            improve = 2 * np.sum((pre_cls == cur) * pre_cls) - np.sum(cur)
            cover = np.sum((pre_cls == cur) * pre_cls) / np.sum(pre_cls)
            if improve > 0 or (variant == "max_iou_imp2" and cover >= 0.85):
                candidates.append(cur)
                seen.add(k)
        if variant != "max_iou":
            candidates.append(np.logical_and(sam_mask == 0, pre_cls == 1))
        if candidates:
            processed[np.sum(candidates, axis=0) > 0] = i
    return processed


def _rect(y0: int, y1: int, x0: int, x1: int, shape=(H, W)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _count(out: np.ndarray, c: int) -> int:
    return int((out == c).sum())


# ---------------------------------------------------------------------------------------------
# method-sepl 2.6 behaviour vectors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "want"), [("max_iou", 0), ("max_iou_imp", 0), ("max_iou_imp2", 400)]
)
def test_case_a_flood(method, want):
    label = np.zeros((H, W), np.uint8)
    label[2:6, 3:7] = 3  # 16 px
    masks = np.ones((1, H, W), bool)  # whole image
    out = refine_pseudo_label(label, masks, 21, method)
    assert out.dtype == np.uint8 and out.shape == (H, W)
    assert _count(out, 3) == want
    assert _count(out, 0) == 400 - want


@pytest.mark.parametrize("method", ["max_iou", "max_iou_imp", "max_iou_imp2"])
def test_case_b_erase(method):
    label = np.zeros((H, W), np.uint8)
    label[8:12, 5:15] = 2  # 10x4 strip, 40 px
    masks = np.stack([_rect(0, 20, 0, 10), _rect(0, 20, 10, 20)])  # 200 px halves
    assert [int((m & (label == 2)).sum()) for m in masks] == [20, 20]
    out = refine_pseudo_label(label, masks, 21, method)
    assert _count(out, 2) == 0
    assert np.all(out == 0)


@pytest.mark.parametrize(
    ("method", "want"), [("max_iou", 0), ("max_iou_imp", 50), ("max_iou_imp2", 50)]
)
def test_case_c_fallback(method, want):
    label = np.zeros((H, W), np.uint8)
    label[5:15, 5:15] = 1  # 100 px
    masks = _rect(0, 20, 0, 10)[None]  # left half: 50 px of the class, inside ratio 0.25
    out = refine_pseudo_label(label, masks, 21, method)
    assert _count(out, 1) == want
    if want:
        # only the uncovered right half of the class survives
        assert np.array_equal(out == 1, _rect(5, 15, 10, 15))


def test_case_d_ignore():
    label = np.full((H, W), 255, np.uint8)
    label[:5, :5] = 0
    masks = _rect(9, 11, 9, 11)[None]
    out = refine_pseudo_label(label, masks, 21)
    assert np.all(out == 0)
    kept = refine_pseudo_label(label, masks, 21, keep_ignore=True)
    assert _count(kept, 255) == 375 and _count(kept, 0) == 25


def test_case_e_order():
    label = np.zeros((H, W), np.uint8)
    label[0:2, 0:5] = 1  # 10 px
    label[2:, :] = 5  # 360 px, 30 px of the top rows stay background
    masks = np.ones((1, H, W), bool)
    out = refine_pseudo_label(label, masks, 21)
    assert _count(out, 1) == 40
    assert _count(out, 5) == 360
    assert np.array_equal(out == 5, label == 5)


def _case_f():
    label = np.zeros((H, W), np.uint8)
    label[0:10, 0:10] = 1
    label[10:20, 10:20] = 2
    masks = np.stack([_rect(0, 12, 0, 12), _rect(8, 20, 8, 20)])  # 12x12, overlap 4x4
    return label, masks


def test_case_f_overlap_higher_index_wins():
    label, masks = _case_f()
    out = refine_pseudo_label(label, masks, 21)
    overlap = masks[0] & masks[1]
    assert int(overlap.sum()) == 16
    assert np.all(out[overlap] == 2)
    assert _count(out, 1) == 144 - 16 and _count(out, 2) == 144


@pytest.mark.parametrize("method", ["max_iou_imp", "max_iou_imp2"])
def test_boundary_half_inside_rejected(method):
    label = np.zeros((H, W), np.uint8)
    label[0:10, 0:10] = 1  # 100 px
    exact = _rect(0, 1, 0, 20)  # 10 px inside, 10 px outside: 2*10 - 20 == 0
    out = refine_pseudo_label(label, exact[None], 21, method)
    assert _count(out, 1) == 90  # rejected; its 10 covered class pixels become background
    more = _rect(0, 1, 0, 20) | _rect(1, 2, 0, 1)  # 11 inside, 10 outside
    out = refine_pseudo_label(label, more[None], 21, method)
    assert _count(out, 1) == 110


def test_boundary_cover_exactly_085_accepted():
    label = np.zeros((H, W), np.uint8)
    label[0:2, 0:10] = 4
    mask = np.zeros((H, W), bool)
    mask[0:2, 0:10] = True
    mask[1, 7:10] = False
    mask[5:20, :] = True  # 300 px outside: inside ratio far below 0.5
    assert int((mask & (label == 4)).sum()) / 20 == 0.85
    out = refine_pseudo_label(label, mask[None], 21, "max_iou_imp2")
    assert _count(out, 4) == 320  # 317 mask px + 3 uncovered class px (CAM fallback)
    mask[1, 6] = False  # 16 / 20 = 0.8: rejected, covered class px become background
    out = refine_pseudo_label(label, mask[None], 21, "max_iou_imp2")
    assert _count(out, 4) == 4


def test_no_masks_keeps_label_or_clears():
    label = np.zeros((7, 9), np.uint8)
    label[1:4, 2:6] = 7
    label[5, :] = 255
    empty = np.zeros((0, 7, 9), bool)
    imp2 = refine_pseudo_label(label, empty, 21)
    assert np.array_equal(imp2, np.where(label == 255, 0, label))
    assert np.all(refine_pseudo_label(label, empty, 21, "max_iou") == 0)
    kept = refine_pseudo_label(label, empty, 21, keep_ignore=True)
    assert np.array_equal(kept, label)


def test_output_never_ignore_by_default_and_keep_ignore_only_uncovered():
    label = np.zeros((H, W), np.uint8)
    label[0:10, 0:10] = 1
    label[10:12, 0:20] = 255  # 40 ignore px
    mask = _rect(0, 11, 0, 10)  # 100 class px + 10 ignore px: inside 100/110
    out = refine_pseudo_label(label, mask[None], 21)
    assert not np.any(out == 255)
    assert _count(out, 1) == 110
    kept = refine_pseudo_label(label, mask[None], 21, keep_ignore=True)
    assert _count(kept, 1) == 110 and _count(kept, 255) == 30


def test_area_cap_with_published_method():
    label = np.zeros((H, W), np.uint8)
    label[2:6, 3:7] = 3
    masks = np.ones((1, H, W), bool)
    out = refine_pseudo_label(label, masks, 21, max_area_ratio=3.0)
    assert _count(out, 3) == 0  # 400 > 3 * 16: not selectable, but it still covers the class
    assert _count(refine_pseudo_label(label, masks, 21, max_area_ratio=25.0), 3) == 400


# ---------------------------------------------------------------------------------------------
# majority (order-independent) extension
# ---------------------------------------------------------------------------------------------
def test_majority_flood_capped():
    label = np.zeros((H, W), np.uint8)
    label[2:6, 3:7] = 3
    masks = np.ones((1, H, W), bool)
    assert _count(refine_pseudo_label(label, masks, 21, "majority"), 3) == 0
    uncapped = refine_pseudo_label(label, masks, 21, "majority", max_area_ratio=math.inf)
    assert _count(uncapped, 3) == 400


def test_majority_case_e_goes_to_majority_class():
    label = np.zeros((H, W), np.uint8)
    label[0:2, 0:5] = 1
    label[2:, :] = 5
    masks = np.ones((1, H, W), bool)
    for ratio in (None, math.inf):
        out = refine_pseudo_label(label, masks, 21, "majority", max_area_ratio=ratio)
        assert _count(out, 5) == 400  # 360 / 400 > 0.5 for class 5; largest overlap wins


def test_majority_overlap_smallest_mask_wins():
    label, masks = _case_f()
    out = refine_pseudo_label(label, masks, 21, "majority")  # equal areas: higher class
    overlap = masks[0] & masks[1]
    assert np.all(out[overlap] == 2)
    big2 = _rect(7, 20, 7, 20)  # 169 px, 100 class-2 px: still majority class 2
    out = refine_pseudo_label(label, np.stack([masks[0], big2]), 21, "majority")
    assert np.all(out[masks[0]] == 1)
    assert _count(out, 1) == 144 and _count(out, 2) == 169 - int((masks[0] & big2).sum())


def test_majority_mask_order_independent():
    rng = np.random.default_rng(3)
    for _ in range(20):
        label, masks = _random_case(rng, 23, 37)
        perm = rng.permutation(masks.shape[0])
        a = refine_pseudo_label(label, masks, 6, "majority")
        b = refine_pseudo_label(label, masks[perm], 6, "majority")
        assert np.array_equal(a, b)


def test_majority_brute_force():
    rng = np.random.default_rng(11)
    for _ in range(30):
        label, masks = _random_case(rng, 16, 21)
        got = refine_pseudo_label(label, masks, 6, "majority", max_area_ratio=2.5)
        assert np.array_equal(got, _majority_reference(label, masks, 6, 2.5))


def _majority_reference(label, masks, num_cls, ratio):
    out = np.zeros_like(label)
    covered = masks.any(0) if len(masks) else np.zeros(label.shape, bool)
    for c in range(1, num_cls):
        out[(label == c) & ~covered] = c
    chosen = []
    for k, m in enumerate(masks):
        best, best_i = None, -1
        area = int(m.sum())
        for c in range(1, num_cls):
            p = label == c
            if not p.any():
                continue
            inter = int((m & p).sum())
            ok = 2 * inter > area or inter / int(p.sum()) >= 0.85
            if ok and area <= ratio * int(p.sum()) and inter > best_i:
                best, best_i = c, inter
        if best is not None:
            chosen.append((-area, best, k))
    for _, c, k in sorted(chosen):  # large first, equal area: lower class first
        out[masks[k]] = c
    return out


# ---------------------------------------------------------------------------------------------
# bit-exactness against the official per-mask loop on random cases
# ---------------------------------------------------------------------------------------------
def _random_case(rng: np.random.Generator, h: int, w: int, num_cls: int = 6):
    label = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(0, 5)):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        c = rng.integers(1, num_cls)
        label[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = c
    if rng.random() < 0.5:
        label[rng.random((h, w)) < 0.1] = 255
    k = int(rng.integers(0, 12))
    masks = np.zeros((k, h, w), bool)
    for i in range(k):
        kind = rng.random()
        if kind < 0.1:
            masks[i] = True
        elif kind < 0.2:
            masks[i] = rng.random((h, w)) < 0.5
        elif kind < 0.25 and i > 0:
            masks[i] = masks[i - 1]
        elif kind < 0.3:
            pass  # empty mask
        else:
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            masks[i, y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = True
    return label, masks


@pytest.mark.parametrize("method", ["max_iou", "max_iou_imp", "max_iou_imp2"])
def test_matches_official_loop_on_random_cases(method):
    rng = np.random.default_rng({"max_iou": 0, "max_iou_imp": 1, "max_iou_imp2": 2}[method])
    for i in range(150):
        h, w = (20, 20) if i % 3 else (int(rng.integers(1, 40)), int(rng.integers(1, 90)))
        label, masks = _random_case(rng, h, w)
        want = _official_merge(label, list(masks), 6, method)
        got = refine_pseudo_label(label, masks, 6, method)
        assert got.dtype == np.uint8
        assert np.array_equal(got, want), f"case {i}"
        perm = rng.permutation(masks.shape[0])
        assert np.array_equal(refine_pseudo_label(label, masks[perm], 6, method), want)


def test_uint8_masks_equal_bool_masks():
    rng = np.random.default_rng(5)
    label, masks = _random_case(rng, 20, 20)
    a = refine_pseudo_label(label, masks, 6)
    b = refine_pseudo_label(label.astype(np.int64), masks.astype(np.uint8) * 255, 6)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("method", METHODS)
def test_runs_equal_dense_oracle_with_every_option(method, implementation):
    if implementation == "oracle":
        pytest.skip("compares fma with the oracle")
    rng = np.random.default_rng(METHODS.index(method))
    for i in range(60):
        h, w = (int(rng.integers(1, 30)), int(rng.integers(1, 50)))
        label, masks = _random_case(rng, h, w)
        opts = dict(keep_ignore=bool(i % 2), max_area_ratio=[None, 1.5, 4.0][i % 3])
        want = sepl_dense(label, masks, 6, method, **opts)
        assert np.array_equal(refine_pseudo_label(label, masks, 6, method, **opts), want), i
        runs = runs_from_dense(masks)
        assert np.array_equal(refine_pseudo_label(label, runs, 6, method, **opts), want), i


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_errors(implementation):
    if implementation == "oracle":
        pytest.skip("the oracle does not check its inputs")
    label = np.zeros((4, 5), np.uint8)
    with pytest.raises(ValueError, match="4x5"):
        refine_pseudo_label(label, np.zeros((1, 5, 4), bool), 21)
    with pytest.raises(ValueError, match="unknown SEPL method"):
        refine_pseudo_label(label, np.zeros((0, 4, 5), bool), 21, "max_iou_imp3")
    bad = label.copy()
    bad[0, 0] = 30
    with pytest.raises(ValueError, match=r"\[30\]"):
        refine_pseudo_label(bad, np.zeros((0, 4, 5), bool), 21)
    with pytest.raises(ValueError, match="max_area_ratio"):
        refine_pseudo_label(label, np.zeros((0, 4, 5), bool), 21, max_area_ratio=0)
    assert set(METHODS) == {"max_iou", "max_iou_imp", "max_iou_imp2", "majority"}
