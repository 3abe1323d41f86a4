"""gzip'd SAM mask files: round trip, detection by content, lookup order, size on disk."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from rle_sizes import uncompressed_rle_pickle_size, uncompressed_rle_records

from fma.io.masks.records import (
    GZIP_LEVEL,
    MASK_SUFFIXES,
    SamMaskError,
    encode_rle,
    find_mask_file,
    load_sam_masks,
    make_record,
    mask_file_id,
    read_json_file,
    read_sam_records,
    save_sam_masks,
)


def _records(masks: np.ndarray) -> list[dict]:
    return [
        make_record(r, area=int(m.sum()), bbox=[1, 2, 3, 4], predicted_iou=0.8 + k / 100,
                    stability_score=0.95, point_coords=[[k + 0.5, 2.25]], level=k % 3)
        for k, (r, m) in enumerate(zip(encode_rle(masks), masks, strict=True))
    ]  # fmt: skip


def test_uncompressed_rle_helper_known_answer():
    # column-major [[0,1,1],[0,0,1]] -> 0,0 | 1,0 | 1,1 -> runs 2 zeros, 1 one, 1 zero, 2 ones
    m = np.array([[[0, 1, 1], [0, 0, 1]]], bool)
    rec = uncompressed_rle_records(_records(m))[0]
    assert rec["segmentation"]["counts"] == [2, 1, 1, 2]
    full = uncompressed_rle_records(_records(np.ones((1, 2, 2), bool)))[0]
    assert full["segmentation"]["counts"] == [0, 4]


def test_gzip_round_trip_equals_plain_record_for_record(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.random((7, 13, 17)) > 0.5
    recs = _records(masks)
    save_sam_masks(tmp_path / "a.json", "a", 13, 17, recs)
    save_sam_masks(tmp_path / "a.json.gz", "a", 13, 17, recs)
    plain = (tmp_path / "a.json").read_bytes()
    packed = (tmp_path / "a.json.gz").read_bytes()
    # the same JSON document, gzip'd; deterministic header (mtime 0) and bytes
    assert packed[:2] == b"\x1f\x8b" and packed[4:8] == b"\0\0\0\0"
    assert gzip.decompress(packed) == plain
    assert packed == gzip.compress(plain, compresslevel=GZIP_LEVEL, mtime=0)
    save_sam_masks(tmp_path / "b.json.gz", "a", 13, 17, recs)
    assert (tmp_path / "b.json.gz").read_bytes() == packed
    doc_plain = read_sam_records(tmp_path / "a.json")
    doc_gz = read_sam_records(tmp_path / "a.json.gz")
    assert doc_gz == doc_plain
    for a, b in zip(doc_gz["masks"], doc_plain["masks"], strict=True):
        assert a == b
    got = load_sam_masks(tmp_path / "a.json.gz")
    ref = load_sam_masks(tmp_path / "a.json")
    assert np.array_equal(got.masks, masks) and np.array_equal(ref.masks, masks)
    assert got.levels.tolist() == ref.levels.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert np.array_equal(got.predicted_iou, ref.predicted_iou)
    assert got.image_id == ref.image_id == "a"
    save_sam_masks(tmp_path / "e.json.gz", "e", 4, 5, [])
    assert load_sam_masks(tmp_path / "e.json.gz").masks.shape == (0, 4, 5)


def test_reader_detects_gzip_by_content_not_name(tmp_path):
    masks = np.eye(4, dtype=bool)[None].repeat(2, 0)
    masks[1] = ~masks[1]
    recs = _records(masks)
    for image_id, name, pack in (("gz_named_plain", "gz_named_plain.json", gzip.compress),
                                 ("plain_named_gz", "plain_named_gz.json.gz", bytes)):  # fmt: skip
        save_sam_masks(tmp_path / "src.json", image_id, 4, 4, recs)
        text = (tmp_path / "src.json").read_bytes()
        (tmp_path / name).write_bytes(pack(text))
        assert np.array_equal(load_sam_masks(tmp_path / name).masks, masks), name
        assert read_json_file(tmp_path / name) == json.loads(text)
    # a truncated gzip stream and gzip'd non-JSON are reported with the file name
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(text)[:-12])
    with pytest.raises(SamMaskError, match="cut.json.gz"):
        load_sam_masks(tmp_path / "cut.json.gz")
    (tmp_path / "junk.json.gz").write_bytes(gzip.compress(b"{not json"))
    with pytest.raises(SamMaskError, match="junk.json.gz: unreadable"):
        read_sam_records(tmp_path / "junk.json.gz")
    (tmp_path / "list.json.gz").write_bytes(gzip.compress(b"[]"))
    with pytest.raises(SamMaskError, match="not an fma SAM mask file"):
        read_sam_records(tmp_path / "list.json.gz")
    with pytest.raises(FileNotFoundError, match="none.json.gz"):
        read_sam_records(tmp_path / "none.json.gz")


def test_find_mask_file_prefers_npz_then_gzip(tmp_path):
    assert MASK_SUFFIXES == (".npz", ".json.gz", ".json")
    assert find_mask_file(tmp_path, "a") is None
    (tmp_path / "a.json").write_text("{}")
    assert find_mask_file(tmp_path, "a") == tmp_path / "a.json"
    (tmp_path / "a.json.gz").write_bytes(b"")
    assert find_mask_file(tmp_path, "a") == tmp_path / "a.json.gz"
    (tmp_path / "a.npz").write_bytes(b"")
    assert find_mask_file(tmp_path, "a") == tmp_path / "a.npz"
    (tmp_path / "b.json.gz").mkdir()  # not a file: skipped
    assert find_mask_file(tmp_path, "b") is None
    (tmp_path / "c.json.gz").write_bytes(b"")
    assert find_mask_file(str(tmp_path), "c") == tmp_path / "c.json.gz"
    assert find_mask_file(tmp_path / "missing_folder", "a") is None
    names = ("a.json.gz", "a.json", "a.npz", "x.y.json.gz", "d/q.json", "x.y.npz")
    assert [mask_file_id(n) for n in names] == ["a", "a", "a", "x.y", "q", "x.y"]


def test_compressed_size_is_at_most_a_fifth_of_the_uncompressed_rle_pickle(tmp_path):
    """SAM-like records: smooth masks (random ellipses of whole / part / sub-part size on a
    375x500 image), tight boxes, random full-precision scores, grid point prompts. The gzip'd
    file is at most 1/5 of a pickle of the same records with uncompressed RLE (FMA-WSSS's
    storage; measured 7.3x here) and well below the plain JSON (5.0x)."""
    rng = np.random.default_rng(0)
    h, w = 375, 500
    yy, xx = np.mgrid[:h, :w]
    recs = []
    for level, radius in ((2, 150), (1, 60), (0, 20)):
        for _ in range(15):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            ry, rx = radius * rng.uniform(0.5, 1.5, 2)
            m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            ys, xs = np.nonzero(m)
            point = [rng.integers(0, 32) * w / 32 + w / 64, rng.integers(0, 32) * h / 32 + h / 64]
            recs.append(
                make_record(
                    encode_rle(m[None])[0],
                    area=int(m.sum()),
                    bbox=[xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()],
                    predicted_iou=rng.uniform(0.86, 1.0),
                    stability_score=rng.uniform(0.92, 1.0),
                    point_coords=[point],
                    level=level,
                )
            )
    save_sam_masks(tmp_path / "m.json.gz", "m", h, w, recs)
    save_sam_masks(tmp_path / "m.json", "m", h, w, recs)
    gz = (tmp_path / "m.json.gz").stat().st_size
    plain = (tmp_path / "m.json").stat().st_size
    pickled = uncompressed_rle_pickle_size(recs)
    assert 5 * gz <= pickled and 4 * gz <= plain
