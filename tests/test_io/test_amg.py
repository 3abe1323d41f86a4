"""amg.py folders and RLE files (fma.io.masks.amg), layout detection (fma.io.masks.layout) and
the importer (fma.apis.import_masks)."""

from __future__ import annotations

import gzip
import json
import warnings

import numpy as np
import pytest
from PIL import Image

from fma.apis.import_masks import MASK_SOURCE, import_amg
from fma.io.manifest import read_manifest
from fma.io.masks.amg import METADATA_COLUMNS, read_amg_folder, read_amg_json, write_amg_folder
from fma.io.masks.layout import detect_amg_layout, load_masks_any, mask_layout
from fma.io.masks.records import (
    SamMaskError,
    encode_rle,
    load_sam_masks,
    make_record,
    read_sam_records,
    save_sam_masks,
)
from fma.seeding.sepl import refine_pseudo_label


def _masks(h: int = 6, w: int = 9) -> np.ndarray:
    m = np.zeros((3, h, w), bool)
    m[0, 1:4, 2:7] = True  # 15 px
    m[1, :, :] = True  # 54 px
    m[2, h - 1, w - 1] = True  # 1 px
    return m


def _amg_records(masks: np.ndarray) -> list[dict]:
    """Records as amg.py --convert-to-rle dumps them (str counts, int bbox, point list)."""
    recs = []
    for i, rle in enumerate(encode_rle(masks)):
        recs.append(
            {
                "segmentation": rle,
                "area": int(masks[i].sum()),
                "bbox": [0, 0, masks.shape[2], masks.shape[1]],
                "predicted_iou": 0.9 + i / 100,
                "point_coords": [[1.5, 2.5]],
                "stability_score": 0.95,
                "crop_box": [0, 0, masks.shape[2], masks.shape[1]],
            }
        )
    return recs


def test_folder_round_trip_and_metadata(tmp_path):
    masks = _masks()
    write_amg_folder(tmp_path / "img1", masks, predicted_iou=[0.5, 0.6, 0.7])
    names = sorted(p.name for p in (tmp_path / "img1").iterdir())
    assert names == ["0.png", "1.png", "2.png", "metadata.csv"]
    with Image.open(tmp_path / "img1" / "0.png") as img:
        assert img.mode == "L"
        assert set(np.unique(np.asarray(img)).tolist()) == {0, 255}
    lines = (tmp_path / "img1" / "metadata.csv").read_text().splitlines()
    assert lines[0] == ",".join(METADATA_COLUMNS)
    # mask 0: rows 1..3, cols 2..6 -> bbox x0=2, y0=1, w=4, h=2 (x1 - x0, as amg.py)
    assert lines[1].split(",")[:6] == ["0", "15", "2", "1", "4", "2"]
    got = read_amg_folder(tmp_path / "img1")
    assert np.array_equal(got.masks, masks)
    assert got.image_id == "img1"
    assert got.areas.tolist() == [15, 54, 1]
    assert got.levels.tolist() == [-1, -1, -1]
    assert np.allclose(got.predicted_iou, [0.5, 0.6, 0.7])
    assert np.allclose(got.stability_score, 1.0)


def test_folder_numeric_order_and_ignored_files(tmp_path):
    folder = tmp_path / "x"
    masks = np.zeros((11, 4, 5), bool)
    for k in range(11):
        masks[k].flat[k] = True
    write_amg_folder(folder, masks)
    Image.fromarray(np.full((4, 5, 3), 255, np.uint8)).save(folder / "3matting.png")
    (folder / "notes.txt").write_text("x")
    got = read_amg_folder(folder)
    assert np.array_equal(got.masks, masks)  # 10.png after 9.png, matting file skipped


def test_folder_without_numbered_names_reads_all_pngs(tmp_path):
    folder = tmp_path / "y"
    folder.mkdir()
    for name, px in (("mask_b.png", 1), ("mask_a.png", 0)):
        arr = np.zeros((2, 3), np.uint8)
        arr.flat[px] = 255
        Image.fromarray(arr, mode="L").save(folder / name)
    got = read_amg_folder(folder)
    assert got.masks.shape == (2, 2, 3)
    assert got.masks[0].flat[0] and got.masks[1].flat[1]  # name order: mask_a, mask_b


def test_one_bit_png_warns_and_reads_bits(tmp_path):
    folder = tmp_path / "z"
    folder.mkdir()
    arr = np.zeros((4, 4), bool)
    arr[1:3, 1:3] = True
    Image.fromarray(arr).convert("1").save(folder / "0.png")
    with pytest.warns(UserWarning, match="1-bit"):
        got = read_amg_folder(folder)
    assert np.array_equal(got.masks[0], arr)


def test_non_255_values_warn_and_read_as_background(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    arr = np.zeros((3, 3), np.uint8)
    arr[0, 0] = 1
    arr[2, 2] = 255
    Image.fromarray(arr, mode="L").save(folder / "0.png")
    with pytest.warns(UserWarning, match="other than 255"):
        got = read_amg_folder(folder)
    assert got.masks[0].sum() == 1 and got.masks[0, 2, 2]


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_amg_folder(tmp_path / "missing")
    folder = tmp_path / "rgb"
    folder.mkdir()
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(folder / "0.png")
    with pytest.raises(SamMaskError, match="mode 'RGB'"):
        read_amg_folder(folder)
    folder = tmp_path / "sizes"
    write_amg_folder(folder, np.ones((1, 3, 3), bool))
    Image.fromarray(np.zeros((4, 3), np.uint8), mode="L").save(folder / "1.png")
    with pytest.raises(SamMaskError, match="1.png"):
        read_amg_folder(folder)


def test_empty_folder_uses_image_size(tmp_path):
    (tmp_path / "e").mkdir()
    assert read_amg_folder(tmp_path / "e").masks.shape == (0, 0, 0)
    assert read_amg_folder(tmp_path / "e", image_size=(5, 7)).masks.shape == (0, 5, 7)


def test_json_compressed_and_uncompressed_rle(tmp_path):
    masks = _masks()
    path = tmp_path / "a.json"
    path.write_text(json.dumps(_amg_records(masks)))
    got = read_amg_json(path)
    assert np.array_equal(got.masks, masks)
    assert np.allclose(got.predicted_iou, [0.9, 0.91, 0.92])
    assert got.levels.tolist() == [-1, -1, -1]
    # hand-made uncompressed RLE, column-major runs: [[0,1,1],[0,0,1]] -> 0,0 | 1,0 | 1,1
    path.write_text(json.dumps([{"segmentation": {"size": [2, 3], "counts": [2, 1, 1, 2]}}]))
    want = np.array([[0, 1, 1], [0, 0, 1]], bool)
    assert np.array_equal(read_amg_json(path).masks[0], want)
    path.write_text("[]")
    assert read_amg_json(path, image_size=(2, 3)).masks.shape == (0, 2, 3)
    path.write_text(json.dumps([{"segmentation": [[0, 1]]}]))
    with pytest.raises(SamMaskError, match="COCO RLE"):
        read_amg_json(path)


@pytest.mark.slow
def test_json_written_by_segment_anything_helpers(tmp_path):
    torch = pytest.importorskip("torch")
    amg_utils = pytest.importorskip("segment_anything.utils.amg")
    masks = _masks(7, 5)
    rles = amg_utils.mask_to_rle_pytorch(torch.from_numpy(masks))
    recs = [{"segmentation": amg_utils.coco_encode_rle(r), "area": 1} for r in rles]
    (tmp_path / "s.json").write_text(json.dumps(recs))
    assert np.array_equal(read_amg_json(tmp_path / "s.json").masks, masks)


def test_load_masks_any_and_layouts(tmp_path):
    masks = _masks()
    write_amg_folder(tmp_path / "f", masks)
    (tmp_path / "r.json").write_text(json.dumps(_amg_records(masks)))
    recs = [make_record(r, area=1, bbox=[0, 0, 1, 1], level=2) for r in encode_rle(masks)]
    save_sam_masks(tmp_path / "m.json", "m", 6, 9, recs)
    assert mask_layout(tmp_path, "f")[0] == "amg_folder"
    assert mask_layout(tmp_path, "r")[0] == "amg_coco_rle"
    assert mask_layout(tmp_path, "m")[0] == "fma"
    for image_id in ("f", "r", "m"):
        assert np.array_equal(load_masks_any(tmp_path, image_id).masks, masks)
    assert load_masks_any(tmp_path, "m").levels.tolist() == [2, 2, 2]
    with pytest.raises(FileNotFoundError, match=r"nope\.json\.gz or nope\.json"):
        load_masks_any(tmp_path, "nope")
    assert detect_amg_layout(tmp_path) == {"f": "amg_folder", "m": "fma", "r": "amg_coco_rle"}


def test_gzip_files_in_any_layout(tmp_path):
    """fma .json.gz files and gzip'd amg.py lists are found and read; .json.gz wins over .json
    and over a folder of the same id."""
    masks = _masks()
    recs = [make_record(r, area=1, bbox=[0, 0, 1, 1], level=1) for r in encode_rle(masks)]
    save_sam_masks(tmp_path / "g.json.gz", "g", 6, 9, recs)
    (tmp_path / "z.json.gz").write_bytes(gzip.compress(json.dumps(_amg_records(masks)).encode()))
    save_sam_masks(tmp_path / "both.json", "both", 6, 9, recs[:1])
    save_sam_masks(tmp_path / "both.json.gz", "both", 6, 9, recs[:2])
    write_amg_folder(tmp_path / "both", masks)
    assert mask_layout(tmp_path, "g") == ("fma", tmp_path / "g.json.gz")
    assert mask_layout(tmp_path, "z") == ("amg_coco_rle", tmp_path / "z.json.gz")
    assert mask_layout(tmp_path, "both") == ("fma", tmp_path / "both.json.gz")
    assert np.array_equal(load_masks_any(tmp_path, "g").masks, masks)
    assert load_masks_any(tmp_path, "g").levels.tolist() == [1, 1, 1]
    z = load_masks_any(tmp_path, "z")
    assert np.array_equal(z.masks, masks) and z.image_id == "z"
    assert len(load_masks_any(tmp_path, "both")) == 2
    assert detect_amg_layout(tmp_path) == {"both": "fma", "g": "fma", "z": "amg_coco_rle"}


def test_import_amg_mixed_layouts_and_resume(tmp_path):
    src = tmp_path / "amg"
    masks = _masks()
    write_amg_folder(src / "img_a", masks, predicted_iou=[0.1, 0.2, 0.3])
    src.mkdir(exist_ok=True)
    (src / "img_b.json").write_text(json.dumps(_amg_records(masks[:2])))
    out = tmp_path / "fma_masks"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        report = import_amg(src, out, dataset="voc12", split="train", progress=False)
    assert report.ok and sorted(report.done) == ["img_a", "img_b"]
    assert sorted(p.name for p in out.iterdir()) == ["img_a.npz", "img_b.npz",
                                                     "manifest.json"]  # fmt: skip
    a = load_sam_masks(out / "img_a.npz")
    assert np.array_equal(a.masks, masks)
    assert np.allclose(a.predicted_iou, [0.1, 0.2, 0.3])
    assert a.levels.tolist() == [-1, -1, -1]
    doc = read_sam_records(out / "img_a.npz")
    assert doc["masks"][0]["bbox"] == [2.0, 1.0, 4.0, 2.0]
    b = load_sam_masks(out / "img_b.npz")
    assert np.array_equal(b.masks, masks[:2])
    assert read_sam_records(out / "img_b.npz")["masks"][0]["point_coords"] == [[1.5, 2.5]]
    manifest = read_manifest(out, format="sam_masks", version=1)
    assert manifest.count == 2 and manifest.dataset == "voc12" and manifest.split == "train"
    assert manifest.params["mask_source"] == MASK_SOURCE == "amg_import"
    assert manifest.params["src_layouts"] == ["amg_coco_rle", "amg_folder"]
    assert manifest.params["file_suffix"] == ".npz"
    again = import_amg(src, out, progress=False)
    assert sorted(again.skipped) == ["img_a", "img_b"] and not again.done
    # JSON on request; an existing file of any suffix counts as done
    plain = tmp_path / "plain"
    save_sam_masks(plain / "img_a.npz", "img_a", 6, 9, [])
    report = import_amg(src, plain, file_format="json", progress=False)
    assert report.skipped == ["img_a"] and report.done == ["img_b"]
    plain_doc = json.loads((plain / "img_b.json").read_text())
    assert plain_doc["version"] == 1
    assert plain_doc["masks"] == read_sam_records(out / "img_b.npz")["masks"]
    assert read_manifest(plain).params["file_suffix"] == ".json"


def test_import_amg_reports_bad_image(tmp_path):
    src = tmp_path / "amg"
    write_amg_folder(src / "good", _masks())
    (src / "bad.json").write_text("{not json")
    report = import_amg(src, tmp_path / "out", progress=False)
    assert report.done == ["good"] and list(report.failed) == ["bad"]
    assert "bad.json" in report.failed["bad"]
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_case_g_one_bit_png_official_reads_empty(tmp_path):
    """method-sepl 2.6 case G: the official reader tests == 255, so a 1-bit mask is empty."""
    label = np.zeros((20, 20), np.uint8)
    label[5:15, 5:15] = 1
    mask = np.zeros((20, 20), bool)
    mask[0:20, 0:10] = True  # 50 px of the class, inside ratio 0.25: rejected when read
    folder = tmp_path / "g"
    folder.mkdir()
    Image.fromarray(mask).convert("1").save(folder / "0.png")
    official = np.array(Image.open(folder / "0.png")) == 255
    assert not official.any()  # empty: the whole class survives through the CAM fallback
    assert (refine_pseudo_label(label, official[None], 21) == 1).sum() == 100
    with pytest.warns(UserWarning, match="1-bit"):
        ours = read_amg_folder(folder).masks
    assert np.array_equal(ours[0], mask)  # fma reads the bits (and warns)
    assert (refine_pseudo_label(label, ours, 21) == 1).sum() == 50
