"""Classical superpixels as a three-level mask source in the SAM mask format."""

from __future__ import annotations

import numpy as np
import pytest

from fma.io.masks.records import decode_rle, encode_rle, load_sam_masks, save_sam_masks
from fma.sam.superpixels import SuperpixelGenerator, segments_to_records


def test_segments_to_records_hand_built():
    labels = np.array(
        [
            [0, 0, 1, 1, 1],
            [0, 0, 1, 1, 1],
            [3, 3, 3, 1, 1],
        ]
    )  # id 2 is absent
    recs = segments_to_records(labels, level=1)
    assert [r["area"] for r in recs] == [4, 8, 3]
    # XYWH with w = x_max - x_min (segment-anything's convention)
    assert [r["bbox"] for r in recs] == [[0, 0, 1, 1], [2, 0, 2, 2], [0, 2, 2, 0]]
    assert {r["level"] for r in recs} == {1}
    assert all(r["crop_box"] == [0, 0, 5, 3] and r["point_coords"] == [] for r in recs)
    masks = decode_rle([r["segmentation"] for r in recs], 3, 5)
    for m, seg in zip(masks, (0, 1, 3), strict=True):
        assert np.array_equal(m, labels == seg)
    dense = encode_rle(labels[None] == np.array([0, 1, 3])[:, None, None])
    assert [r["segmentation"] for r in recs] == dense
    with pytest.raises(ValueError):
        segments_to_records(labels - 1, 0)


@pytest.mark.parametrize("seed", range(6))
def test_run_built_rle_equals_the_dense_encoding(seed):
    """The run-based RLE of every segment is byte-identical to pycocotools on the dense mask,
    for segments that touch the first pixel, the last pixel, or wrap from column to column."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 30)), int(rng.integers(1, 30))
    n = int(rng.integers(1, 12))
    labels = rng.integers(0, n, (h, w))
    if seed % 2:  # blocky segments: long runs across column ends
        labels = np.repeat(np.repeat(labels[: h // 3 + 1, : w // 3 + 1], 3, 0), 3, 1)[:h, :w]
    recs = segments_to_records(labels, 0)
    ids = np.unique(labels)
    assert [r["segmentation"] for r in recs] == encode_rle(labels[None] == ids[:, None, None])
    assert [r["area"] for r in recs] == [int((labels == i).sum()) for i in ids]


def _quadrants(h: int = 48, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (220, 30, 30)
    img[: h // 2, w // 2 :] = (30, 220, 30)
    img[h // 2 :, : w // 2] = (30, 30, 220)
    img[h // 2 :, w // 2 :] = (230, 230, 30)
    rng = np.random.default_rng(0)
    return np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("preset", ["felzenszwalb", "slic"])
def test_levels_partition_the_image(preset, tmp_path):
    gen = SuperpixelGenerator.from_preset(
        preset, scales=(40, 10, 4) if preset == "slic" else (20, 80, 5000)
    )
    image = _quadrants()
    recs = gen.generate(image)
    save_sam_masks(tmp_path / "q.json", "q", 48, 64, recs)
    sm = load_sam_masks(tmp_path / "q.json")
    counts = []
    for level in (0, 1, 2):
        m = sm.masks[sm.levels == level]
        assert np.array_equal(m.sum(0), np.ones((48, 64)))  # a partition per level
        counts.append(len(m))
    assert counts[0] >= counts[1] >= counts[2] >= 1
    assert counts[0] > counts[2]
    assert sm.levels.tolist() == sorted(sm.levels.tolist())  # level 0 first
    assert np.array_equal(gen.label_maps(image).shape, (3, 48, 64))


def test_quadrants_found_at_the_middle_scale():
    gen = SuperpixelGenerator("felzenszwalb", scales=(5, 100, 100000), sigma=0.5)
    lm = gen.label_maps(_quadrants())
    # level 1 recovers the four colour quadrants exactly
    q = lm[1]
    assert len(np.unique(q)) == 4
    assert len(np.unique(q[:24, :32])) == 1 and len(np.unique(q[24:, 32:])) == 1
    assert len({q[0, 0], q[0, 63], q[47, 0], q[47, 63]}) == 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="felzenszwalb"):
        SuperpixelGenerator("watershed")
    with pytest.raises(ValueError, match="one value per level"):
        SuperpixelGenerator(scales=(1.0, 2.0))
    with pytest.raises(ValueError, match="uint8"):
        SuperpixelGenerator().generate(np.zeros((8, 8), np.uint8))
