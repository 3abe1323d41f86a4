"""Mask files, format version 2 (.npz): known layout, exact round trip with version 1, errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from fma.io.masks.npz import MASK_TABLE_DTYPE, read_npz_arrays, save_mask_npz
from fma.io.masks.records import (
    SamMaskError,
    encode_rle,
    load_sam_masks,
    make_record,
    read_sam_records,
    save_sam_masks,
)
from fma.io.masks.runs import load_mask_runs

# 2 x 3 masks; column-major pixel order (x * H + y).
MASK_A = np.array([[0, 1, 1], [0, 0, 1]], bool)  # 0 0 | 1 0 | 1 1 -> counts 2 1 1 2
MASK_B = np.array([[1, 1, 1], [1, 1, 1]], bool)  # all foreground -> counts 0 6
MASK_C = np.zeros((2, 3), bool)  # empty -> counts 6


def _records(masks: np.ndarray) -> list[dict]:
    points = ([[0.5, 1.5]], [], [[1.0, 0.0], [2.0, 1.0]])
    return [
        make_record(r, area=int(m.sum()), bbox=[k, 1, 2.5, 1 / 3], predicted_iou=0.1 + k / 7,
                    stability_score=1 / 3 + k, point_coords=points[k % 3], level=k % 3 - 1)
        for k, (r, m) in enumerate(zip(encode_rle(masks), masks, strict=True))
    ]  # fmt: skip


def test_known_layout_of_the_members(tmp_path):
    path = tmp_path / "a.npz"
    save_mask_npz(path, "a", 2, 3, _records(np.stack([MASK_A, MASK_B, MASK_C])))
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["counts", "header", "masks", "points"]
        header = json.loads(str(z["header"][()]))
        counts, table, points = z["counts"], z["masks"], z["points"]
    assert header == {"format": "sam_masks", "version": 2, "image_id": "a", "height": 2,
                      "width": 3}  # fmt: skip
    assert counts.dtype == np.dtype("<u4") and counts.tolist() == [2, 1, 1, 2, 0, 6, 6]
    assert table.dtype == MASK_TABLE_DTYPE
    assert table["counts_end"].tolist() == [4, 6, 7]
    assert table["area"].tolist() == [3, 6, 0]
    assert table["level"].tolist() == [-1, 0, 1]
    assert table["points_end"].tolist() == [1, 1, 3]
    assert points.tolist() == [[0.5, 1.5], [1.0, 0.0], [2.0, 1.0]]
    assert table["bbox"][2].tolist() == [2.0, 1.0, 2.5, 1 / 3]


def test_round_trip_equals_version_1(tmp_path):
    """Every field of every record, the dense masks and the runs equal the JSON file's."""
    rng = np.random.default_rng(3)
    masks = rng.random((40, 37, 53)) < rng.random((40, 1, 1))
    masks[0] = True
    masks[1] = False
    recs = _records(masks)
    save_sam_masks(tmp_path / "x.json.gz", "x", 37, 53, recs)
    save_sam_masks(tmp_path / "x.npz", "x", 37, 53, recs)
    v1, v2 = read_sam_records(tmp_path / "x.json.gz"), read_sam_records(tmp_path / "x.npz")
    assert v2["masks"] == v1["masks"] == recs
    assert (v1["version"], v2["version"]) == (1, 2)
    assert {k: v for k, v in v2.items() if k not in ("masks", "version")} == {
        k: v for k, v in v1.items() if k not in ("masks", "version")
    }
    d1, d2 = load_sam_masks(tmp_path / "x.json.gz"), load_sam_masks(tmp_path / "x.npz")
    assert np.array_equal(d2.masks, masks) and np.array_equal(d1.masks, d2.masks)
    for name in ("levels", "predicted_iou", "stability_score", "areas"):
        assert np.array_equal(getattr(d1, name), getattr(d2, name)), name
    r1, r2 = load_mask_runs(tmp_path / "x.json.gz"), load_mask_runs(tmp_path / "x.npz")
    for name in ("starts", "ends", "offsets", "levels", "predicted_iou", "stability_score"):
        a, b = getattr(r1, name), getattr(r2, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert np.array_equal(r2.dense(), masks) and r2.shape == (37, 53) and r2.image_id == "x"


def test_uncompressed_counts_empty_sets_and_equal_bytes(tmp_path):
    recs = _records(np.stack([MASK_A, MASK_B]))
    plain = [dict(r, segmentation={"size": [2, 3], "counts": c})
             for r, c in zip(recs, ([2, 1, 1, 2], [0, 6]), strict=True)]  # fmt: skip
    save_mask_npz(tmp_path / "a.npz", "a", 2, 3, recs)
    save_mask_npz(tmp_path / "b.npz", "a", 2, 3, plain)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    save_mask_npz(tmp_path / "e.npz", "e", 4, 5, [])
    assert read_sam_records(tmp_path / "e.npz")["masks"] == []
    runs = load_mask_runs(tmp_path / "e.npz")
    assert len(runs) == 0 and runs.shape == (4, 5)
    assert load_sam_masks(tmp_path / "e.npz").masks.shape == (0, 4, 5)


def test_detected_by_content_not_name(tmp_path):
    save_mask_npz(tmp_path / "a.npz", "a", 2, 3, _records(MASK_A[None]))
    (tmp_path / "a.json.gz").write_bytes((tmp_path / "a.npz").read_bytes())
    assert read_sam_records(tmp_path / "a.json.gz")["masks"] == _records(MASK_A[None])
    assert np.array_equal(load_mask_runs(tmp_path / "a.json.gz").dense()[0], MASK_A)


def _write(path, **members) -> None:
    buf = io.BytesIO()
    np.savez(buf, **members)
    path.write_bytes(buf.getvalue())


def _members(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_bad_files_name_the_file(tmp_path):
    good = tmp_path / "a.npz"
    save_mask_npz(good, "a", 2, 3, _records(np.stack([MASK_A, MASK_B])))
    m = _members(good)
    cases = {
        "truncated": (good.read_bytes()[:200], "unreadable mask file"),
        "missing": (None, r"members \['points'\] missing"),
        "version": ({"header": np.array(json.dumps({**json.loads(str(m["header"])),
                                                    "version": 3}))}, "version 3"),
        "image": ({"header": np.array(json.dumps({**json.loads(str(m["header"])),
                                                  "image_id": "b"}))}, "masks of image 'b'"),
        "sum": ({"counts": np.array([2, 1, 1, 3, 0, 6], "<u4")}, "mask 0 covers 7 pixels"),
        "dtype": ({"counts": m["counts"].astype("<i8")}, "expected \\(V,\\) uint32"),
        "ends": ({"counts": m["counts"][:-1]}, "do not partition the counts"),
        "pickle": ({"masks": np.array([{"x": 1}], dtype=object)}, "unreadable mask file"),
    }  # fmt: skip
    for name, (change, message) in cases.items():
        path = tmp_path / name / "a.npz"
        path.parent.mkdir()
        if isinstance(change, bytes):
            path.write_bytes(change)
        elif change is None:
            _write(path, **{k: v for k, v in m.items() if k != "points"})
        else:
            _write(path, **{**m, **change})
        with pytest.raises(SamMaskError, match=message) as err:
            load_mask_runs(path)
        assert str(path) in str(err.value) and "re-run" in str(err.value), name
        with pytest.raises(SamMaskError):
            read_sam_records(path)
    with pytest.raises(FileNotFoundError, match="gen_sam_masks"):
        read_npz_arrays(tmp_path / "none.npz")


def test_writer_refuses_bad_records(tmp_path):
    recs = _records(MASK_A[None])
    with pytest.raises(SamMaskError, match="mask 0 has size"):
        save_sam_masks(tmp_path / "a.npz", "a", 3, 2, recs)
    bad = [dict(recs[0], segmentation={"size": [2, 3], "counts": [2, 1, 1]})]
    with pytest.raises(SamMaskError, match="mask 0 covers 4 pixels, not 6"):
        save_sam_masks(tmp_path / "a.npz", "a", 2, 3, bad)
    assert not (tmp_path / "a.npz").exists()


def test_arrays_equal_np_load_and_non_zip_files_refused(tmp_path):
    """read_npz_arrays gives np.load's arrays; a single .npy array or a pickle is no mask file
    (nothing is unpickled)."""
    path = tmp_path / "a.npz"
    save_mask_npz(path, "a", 2, 3, _records(np.stack([MASK_A, MASK_B, MASK_C])))
    header, counts, table, points = read_npz_arrays(path, points=True)
    want = _members(path)
    assert header == json.loads(str(want["header"]))
    for got, name in ((counts, "counts"), (table, "masks"), (points, "points")):
        assert got.dtype == want[name].dtype and np.array_equal(got, want[name]), name
    assert read_npz_arrays(path)[3] is None
    npy = tmp_path / "b.npz"
    with open(npy, "wb") as f:
        np.save(f, np.arange(3))
    with pytest.raises(SamMaskError, match="single .npy array"):
        read_npz_arrays(npy)
    pickled = tmp_path / "c.npz"
    pickled.write_bytes(b"\x80\x04K\x01.")  # pickle.dumps(1)
    with pytest.raises(SamMaskError, match="unreadable mask file"):
        read_npz_arrays(pickled)
