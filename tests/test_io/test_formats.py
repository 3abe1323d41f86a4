"""fma.io: atomic writes, manifests, label maps, SAM mask files and CAM files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fma.datasets.meta import VOC12
from fma.io import (
    LabelMapError,
    Manifest,
    ManifestError,
    read_label_map,
    read_manifest,
    write_json_atomic,
    write_label_map,
    write_manifest,
)
from fma.io.atomic import atomic_path
from fma.io.cams import CamError, CamRecord, load_cam, save_cam
from fma.io.masks.records import (
    SamMaskError,
    decode_rle,
    encode_rle,
    load_sam_masks,
    make_record,
    save_sam_masks,
)


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "sub" / "x.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


def test_manifest_roundtrip_and_mismatch(tmp_path):
    m = Manifest(format="label_maps", version=1, count=3, dataset="voc12", split="train")
    write_manifest(tmp_path, m)
    got = read_manifest(tmp_path, format="label_maps", version=1, dataset="voc12")
    assert got == m
    with pytest.raises(ManifestError, match=r"'dataset' is 'voc12', expected 'coco14'") as e:
        read_manifest(tmp_path, dataset="coco14")
    assert str(tmp_path) in str(e.value)
    with pytest.raises(ManifestError, match="'version' is 1, expected 2"):
        read_manifest(tmp_path, version=2)
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        read_manifest(tmp_path / "empty")
    assert read_manifest(tmp_path / "empty", required=False) is None


def test_label_map_roundtrip_palette_and_grey(tmp_path):
    lab = np.array([[0, 1, 2], [15, 20, 255]], dtype=np.uint8)
    write_label_map(tmp_path / "a.png", lab, VOC12.palette)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "P"
        assert im.getpalette()[3:6] == [128, 0, 0]
    assert np.array_equal(read_label_map(tmp_path / "a.png", num_classes=21), lab)
    write_label_map(tmp_path / "nopal.png", lab)  # no palette: indices must survive exactly
    assert np.array_equal(read_label_map(tmp_path / "nopal.png"), lab)
    Image.fromarray(lab, mode="L").save(tmp_path / "g.png")
    assert np.array_equal(read_label_map(tmp_path / "g.png"), lab)
    rgb = VOC12.palette[lab]
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "c.png")
    assert np.array_equal(read_label_map(tmp_path / "c.png", palette=VOC12.palette), lab)


def test_label_map_errors_name_the_file(tmp_path):
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(LabelMapError, match="corrupt.png"):
        read_label_map(bad)
    big = tmp_path / "big.png"
    Image.fromarray(np.array([[0, 21, 40]], dtype=np.uint8), mode="L").save(big)
    with pytest.raises(LabelMapError, match=r"big\.png: label values \[21, 40\]"):
        read_label_map(big, num_classes=21)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_label_map(tmp_path / "missing.png")
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((2, 2, 3), np.uint8), mode="RGB").save(rgb)
    with pytest.raises(LabelMapError, match="mode 'RGB'"):
        read_label_map(rgb)


def test_rle_roundtrip_and_known_counts():
    m = np.zeros((1, 3, 2), dtype=bool)
    m[0, 1:, 1] = True  # column-major: col 0 = 3 zeros, col 1 = 1 zero then 2 ones
    rle = encode_rle(m)[0]
    assert rle["size"] == [3, 2]
    from pycocotools import mask as mu

    assert mu.area({"size": [3, 2], "counts": rle["counts"].encode()}) == 2
    assert np.array_equal(decode_rle([rle], 3, 2), m)
    rng = np.random.default_rng(1)
    many = rng.random((7, 13, 9)) > 0.6
    assert np.array_equal(decode_rle(encode_rle(many), 13, 9), many)
    assert decode_rle([], 4, 5).shape == (0, 4, 5)


def test_sam_mask_file_roundtrip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.random((4, 6, 8)) > 0.5
    recs = [
        make_record(r, area=int(m.sum()), bbox=[0, 0, 8, 6], predicted_iou=0.9, level=k % 3)
        for k, (r, m) in enumerate(zip(encode_rle(masks), masks, strict=True))
    ]
    save_sam_masks(tmp_path / "img.json", "img", 6, 8, recs)
    got = load_sam_masks(tmp_path / "img.json")
    assert np.array_equal(got.masks, masks)
    assert got.levels.tolist() == [0, 1, 2, 0]
    assert got.areas.tolist() == masks.reshape(4, -1).sum(1).tolist()
    assert np.allclose(got.predicted_iou, 0.9)
    with pytest.raises(SamMaskError, match="size"):
        save_sam_masks(tmp_path / "bad.json", "bad", 5, 8, recs)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(SamMaskError, match="junk.json"):
        load_sam_masks(tmp_path / "junk.json")
    many = rng.random((300, 4, 5)) > 0.5  # more than 255 masks in one file
    recs = [make_record(r, area=0, bbox=[0, 0, 5, 4]) for r in encode_rle(many)]
    save_sam_masks(tmp_path / "many.json", "many", 4, 5, recs)
    got = load_sam_masks(tmp_path / "many.json")
    assert np.array_equal(got.masks, many)
    assert got.areas.tolist() == many.reshape(300, -1).sum(1).tolist()
    empty = tmp_path / "empty.json"
    save_sam_masks(empty, "empty", 6, 8, [])
    assert load_sam_masks(empty).masks.shape == (0, 6, 8)


def test_cam_roundtrip_and_original_layout(tmp_path):
    cam = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 10
    save_cam(tmp_path / "a.npz", CamRecord(cam=cam, fg_cls=np.array([1, 15]), ori_size=(48, 64)))
    rec = load_cam(tmp_path / "a.npz")
    assert rec.fg_cls.tolist() == [1, 15] and rec.ori_size == (48, 64)
    assert rec.cam.dtype == np.float32 and np.array_equal(rec.cam, cam)  # float32 by default
    save_cam(tmp_path / "h.npz", CamRecord(cam=cam, fg_cls=np.array([1, 15])), cam_dtype="float16")
    half = load_cam(tmp_path / "h.npz").cam
    assert half.dtype == np.float16 and np.array_equal(half, cam.astype(np.float16))
    assert not np.array_equal(half.astype(np.float32), cam)  # 0.1 is not a float16 number
    with pytest.raises(ValueError, match="cam_dtype"):
        save_cam(tmp_path / "c.npz", CamRecord(cam=cam, fg_cls=np.array([1, 15])), cam_dtype="int8")
    # a file in the original FMA-WSSS layout: 0-based foreground ids, no format_version
    np.savez(tmp_path / "orig.npz", cam=cam, fg_cls=np.array([0, 14]), fg_logit=np.ones(2))
    assert load_cam(tmp_path / "orig.npz").fg_cls.tolist() == [1, 15]
    with pytest.raises(CamError, match="fg_cls"):
        save_cam(tmp_path / "b.npz", CamRecord(cam=cam, fg_cls=np.array([1])))
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(CamError, match="bad.npz"):
        load_cam(tmp_path / "bad.npz")


def test_label_png_bytes_equal_pil_with_a_palette_list():
    # The palette goes to PIL as raw bytes; the file must equal the one a list palette gives.
    import io
    import zlib

    from PIL import Image

    from fma.io.label_maps import bitwise_palette, encode_label_png

    label = (np.arange(30 * 40).reshape(30, 40) // 37 % 21).astype(np.uint8)
    for palette in (None, bitwise_palette()[:21]):
        pal = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
        if palette is not None:
            pal[:21] = palette
        img = Image.fromarray(label, mode="P")
        img.putpalette(pal.reshape(-1).tolist())
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=False, compress_type=zlib.Z_RLE)
        assert encode_label_png(label, palette) == buf.getvalue()
        # the run-length strategy changes the bytes, not what a reader decodes
        plain = io.BytesIO()
        img.save(plain, format="PNG", optimize=False)
        with Image.open(io.BytesIO(encode_label_png(label, palette))) as a, Image.open(plain) as b:
            assert a.getpalette() == b.getpalette()
            assert np.array_equal(np.asarray(a), np.asarray(b))
