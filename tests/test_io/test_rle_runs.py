"""Mask runs: the numpy COCO-RLE decoder against pycocotools, and the run operations."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fma.io.masks.records import SamMaskError, encode_rle, make_record, save_sam_masks
from fma.io.masks.runs import (
    decode_counts,
    load_mask_runs,
    mask_sums,
    runs_from_counts,
    runs_from_dense,
)
from fma.seeding import runs as run_ops


def _random_masks(rng, k, h, w):
    """Masks of several kinds: noise, rectangles, full, empty (varied run lengths)."""
    masks = rng.random((k, h, w)) < rng.random((k, 1, 1))
    for i in range(0, k, 3):
        masks[i] = False
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        masks[i, y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = True
    if k > 2:
        masks[1] = True
        masks[2] = False
    return masks


def _pycocotools_counts(rle):
    """Run lengths as pycocotools decodes them (through its uncompressed form)."""
    dense = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    flat = np.asarray(dense, dtype=np.int8).reshape(-1, order="F")
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return np.diff(np.concatenate([[0], edges]))


def test_decode_counts_hand_case():
    # 2x3 image, column-major pixels 0..5, foreground {1, 2, 5}: counts 1, 2, 2, 1.
    m = np.zeros((1, 2, 3), bool)
    m[0, 1, 0] = m[0, 0, 1] = m[0, 1, 2] = True
    (rle,) = encode_rle(m)
    values, offsets = decode_counts([rle["counts"]])
    assert values.tolist() == [1, 2, 2, 1] and offsets.tolist() == [0, 4]
    starts, ends, run_offsets = runs_from_counts(values, offsets, (2, 3))
    assert starts.tolist() == [1, 5] and ends.tolist() == [3, 6]
    assert run_offsets.tolist() == [0, 2]


def test_decode_counts_matches_pycocotools_on_random_masks():
    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        k = int(rng.integers(1, 9))
        masks = _random_masks(rng, k, h, w)
        rles = encode_rle(masks)
        values, offsets = decode_counts([r["counts"] for r in rles])
        for i, rle in enumerate(rles):
            got = values[offsets[i] : offsets[i + 1]]
            want = _pycocotools_counts(rle)
            # pycocotools may end with a zero-length run the dense form cannot show.
            assert np.array_equal(got[: want.size], want), (trial, i)
            assert not got[want.size :].any()


def test_large_counts_and_negative_deltas():
    # Long runs need several characters; a short run after a long one gives a negative delta.
    h, w = 1000, 1300
    m = np.zeros((2, h, w), bool)
    m[0, 10:990, 5:1200] = True
    m[0, 500, 1250] = True
    m[1, :, 600:] = True
    rles = encode_rle(m)
    values, offsets = decode_counts([r["counts"] for r in rles])
    assert values[offsets[1] :].tolist() == [600 * h, 700 * h]
    starts, ends, run_offsets = runs_from_counts(values, offsets, (h, w))
    runs = runs_from_dense(m)
    assert np.array_equal(starts, runs.starts) and np.array_equal(ends, runs.ends)
    assert np.array_equal(run_offsets, runs.offsets)
    assert runs.areas.tolist() == [980 * 1195 + 1, 700 * h]


def test_runs_round_trip_and_areas():
    rng = np.random.default_rng(1)
    masks = _random_masks(rng, 7, 13, 17)
    runs = runs_from_dense(masks, levels=np.arange(7) % 3)
    assert np.array_equal(runs.dense(), masks)
    assert runs.areas.tolist() == masks.sum((1, 2)).tolist()
    assert runs.levels.tolist() == (np.arange(7) % 3).tolist()
    assert (runs.ends > runs.starts).all()
    empty = runs_from_dense(np.zeros((0, 4, 5), bool))
    assert len(empty) == 0 and empty.dense().shape == (0, 4, 5)


@pytest.mark.parametrize("suffix", [".json.gz", ".json"])
def test_load_mask_runs_equals_dense_decode(tmp_path, suffix):
    rng = np.random.default_rng(2)
    masks = _random_masks(rng, 9, 21, 34)
    recs = [
        make_record(
            r, area=int(m.sum()), bbox=[0, 0, 1, 1], predicted_iou=0.5 + i / 100, level=i % 3
        )
        for i, (r, m) in enumerate(zip(encode_rle(masks), masks, strict=True))
    ]
    path = tmp_path / f"a{suffix}"
    save_sam_masks(path, "a", 21, 34, recs)
    runs = load_mask_runs(path)
    assert runs.shape == (21, 34) and runs.image_id == "a"
    assert np.array_equal(runs.dense(), masks)
    assert runs.levels.tolist() == [i % 3 for i in range(9)]
    np.testing.assert_allclose(runs.predicted_iou, [0.5 + i / 100 for i in range(9)], rtol=1e-6)


def _write_doc(path, masks_json, h=2, w=3):
    doc = {"format": "sam_masks", "version": 1, "image_id": "x", "height": h, "width": w,
           "masks": masks_json}  # fmt: skip
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ("1", "covers 1 pixels"),  # counts add up to 1, not 6
        ("12" + chr(ord("0") + 0x20), "ends inside a value"),
        ("1~", "outside"),
        ("0" + chr(48 + 0x10 + 0x0F), "negative run length"),  # a count of -1
    ],
)
def test_corrupt_counts_name_the_file(tmp_path, counts, match):
    path = tmp_path / "x.json.gz"
    _write_doc(path, [{"segmentation": {"size": [2, 3], "counts": counts}}])
    with pytest.raises(SamMaskError, match=match) as err:
        load_mask_runs(path)
    assert str(path) in str(err.value) and "re-run" in str(err.value)


def test_size_mismatch_and_uncompressed_counts_refused(tmp_path):
    path = tmp_path / "x.json.gz"
    _write_doc(path, [{"segmentation": {"size": [3, 2], "counts": "6"}}])
    with pytest.raises(SamMaskError, match="mask 0 has size"):
        load_mask_runs(path)
    _write_doc(path, [{"segmentation": {"size": [2, 3], "counts": [6]}}])
    with pytest.raises(SamMaskError, match="uncompressed"):
        load_mask_runs(path)


# ---------------------------------------------------------------------------------------------
# run operations against dense brute force
# ---------------------------------------------------------------------------------------------
def test_cover_count_and_sums_match_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        k = int(rng.integers(0, 10))
        masks = _random_masks(rng, k, h, w) if k else np.zeros((0, h, w), bool)
        runs = runs_from_dense(masks)
        select = rng.random(k) < 0.5
        want = masks[select].any(axis=0) if k else np.zeros((h, w), bool)
        got = run_ops.row_major(run_ops.cover(runs, select), (h, w))
        assert np.array_equal(got, want)
        inside = rng.random((h, w)) < 0.4
        counts = run_ops.count_in(runs, run_ops.column_major(inside))
        assert counts.tolist() == (masks & inside).sum((1, 2)).tolist()
        image = rng.normal(size=(h, w)).astype(np.float32)
        sums = run_ops.float_sums(runs, image)
        ref = [float(image[m].astype(np.float64).sum()) for m in masks]
        np.testing.assert_allclose(sums, ref, rtol=1e-12, atol=1e-12)
        both = run_ops.float_sums(runs, np.stack([image, 2 * image]))
        assert both.shape == (k, 2)
        np.testing.assert_allclose(both[:, 1], 2 * np.asarray(ref), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("direct_cover", [0, 10**9, run_ops.DIRECT_COVER])
def test_max_rank_matches_painting_loop(direct_cover, monkeypatch):
    """Both range-maximum methods (the sparse table, the scatter of all run-segment pairs)
    and the default choice between them paint like the loop."""
    monkeypatch.setattr(run_ops, "DIRECT_COVER", direct_cover)
    rng = np.random.default_rng(4)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        k = int(rng.integers(0, 12))
        masks = _random_masks(rng, k, h, w) if k else np.zeros((0, h, w), bool)
        rank = rng.permutation(k + 1)[:k].astype(np.int64)  # one mask may get rank 0
        want = np.zeros((h, w), np.int64)
        for i in np.argsort(rank):
            if rank[i] > 0:
                want[masks[i]] = rank[i]
        got = run_ops.row_major(run_ops.max_rank(runs_from_dense(masks), rank), (h, w))
        assert np.array_equal(got, want)


def test_float_sums_stay_exact_for_column_runs():
    # A run inside one column only sees that column's prefix sums: big values elsewhere in
    # the image do not cost it precision.
    image = np.full((4, 3), 1e12, np.float32)
    image[:, 1] = [0.1, 0.2, 0.3, 0.4]
    m = np.zeros((1, 4, 3), bool)
    m[0, 1:3, 1] = True
    sums = run_ops.float_sums(runs_from_dense(m), image)
    assert sums[0] == np.float64(np.float32(0.2)) + np.float64(np.float32(0.3))


def test_mask_sums_of_empty_masks_are_zero():
    m = np.zeros((3, 2, 2), bool)
    m[1] = True
    runs = runs_from_dense(m)
    assert mask_sums(runs, runs.ends - runs.starts).tolist() == [0, 4, 0]
    assert mask_sums(runs, np.ones(len(runs.starts))).tolist() == [0.0, 1.0, 0.0]
