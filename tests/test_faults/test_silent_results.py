"""Inputs that used to give silently wrong results: palette PNGs whose palette is not the
dataset's, mask manifests of another format, mask files of another image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fma.io import LabelMapError, read_label_map, write_label_map
from fma.io.label_maps import bitwise_palette

LABEL = np.array([[0, 0, 1, 1], [15, 15, 255, 1], [0, 20, 20, 0]], np.uint8)


def _save_p(path, idx, palette):
    img = Image.fromarray(idx, mode="P")
    img.putpalette(np.asarray(palette, np.uint8).reshape(-1).tolist())
    img.save(path)


def test_dataset_palette_and_grey_ramp_give_the_indices(tmp_path):
    write_label_map(tmp_path / "voc.png", LABEL, bitwise_palette())
    write_label_map(tmp_path / "grey.png", LABEL)  # grey ramp
    for name in ("voc.png", "grey.png"):
        np.testing.assert_array_equal(read_label_map(tmp_path / name, num_classes=21), LABEL)


def test_a_quantised_colour_prediction_is_mapped_through_its_palette(tmp_path):
    """Indices permuted, colours still the dataset's: the labels are the colours' classes."""
    voc = bitwise_palette()
    perm = np.random.default_rng(0).permutation(256).astype(np.uint8)  # file index -> class
    inv = np.argsort(perm).astype(np.uint8)  # class -> file index
    _save_p(tmp_path / "q.png", inv[LABEL], voc[perm])
    got = read_label_map(tmp_path / "q.png", num_classes=21)
    np.testing.assert_array_equal(got, LABEL)


def test_a_palette_with_foreign_colours_is_refused_naming_the_file(tmp_path):
    pal = np.random.default_rng(1).integers(0, 256, (256, 3), dtype=np.uint8)
    pal[[0, 1, 15, 20, 255]] = [[3, 200, 7], [9, 9, 250], [90, 1, 1], [4, 4, 4], [1, 2, 3]]
    _save_p(tmp_path / "odd.png", LABEL, pal)
    with pytest.raises(
        LabelMapError, match=r"odd\.png: colour .* neither the dataset's nor a grey"
    ):
        read_label_map(tmp_path / "odd.png", num_classes=21)


def test_eval_of_quantised_predictions_equals_eval_of_the_labels(tmp_path):
    """A colourised prediction quantised back to mode P scores what its colours show."""
    from fma.apis.evaluate import evaluate_dataset_split
    from fma.datasets.synthetic import make_synthetic_voc

    voc = make_synthetic_voc(tmp_path / "d", num_images=4)
    plain, quant = tmp_path / "d" / "pseudo_labels", tmp_path / "quant"
    quant.mkdir()
    perm = np.arange(256, dtype=np.uint8)  # classes shuffled among 0..20: all in range
    perm[:21] = np.random.default_rng(2).permutation(21)
    inv = np.argsort(perm).astype(np.uint8)
    for p in plain.glob("*.png"):
        _save_p(quant / p.name, inv[read_label_map(p)], bitwise_palette()[perm])
    want = evaluate_dataset_split(plain, "voc12", "train", voc, progress=False).metrics["mIoU"]
    got = evaluate_dataset_split(quant, "voc12", "train", voc, progress=False).metrics["mIoU"]
    assert got == pytest.approx(want) and want > 10


def _mask_folder(tmp_path, image_id="a"):
    from fma.io.masks.records import encode_rle, make_record, save_sam_masks

    masks = np.zeros((1, 3, 4), bool)
    masks[0, :, 2:] = True
    rec = make_record(encode_rle(masks)[0], area=6, bbox=[2, 0, 2, 3], level=2)
    folder = tmp_path / "masks"
    save_sam_masks(folder / f"{image_id}.json.gz", image_id, 3, 4, [rec])
    return folder


@pytest.mark.parametrize(("fmt", "version"), [("label_maps", 1), ("sam_masks", 2)])
def test_refine_refuses_a_mask_manifest_of_another_format_or_version(tmp_path, fmt, version):
    from fma.apis.refine import refine_label_dir
    from fma.io import ManifestError
    from fma.io.manifest import Manifest, write_manifest

    masks = _mask_folder(tmp_path)
    write_manifest(masks, Manifest(fmt, version, 1))
    write_label_map(tmp_path / "labels" / "a.png", np.ones((3, 4), np.uint8))
    want = "holds 'label_maps' files, not SAM masks" if fmt != "sam_masks" else "field 'version'"
    with pytest.raises(ManifestError, match=rf"{masks}: (manifest )?{want}"):
        refine_label_dir(tmp_path / "labels", masks, tmp_path / "out", num_classes=21,
                         progress=False)  # fmt: skip
    assert not list((tmp_path / "out").glob("*.png"))


def test_a_mask_file_of_another_image_is_refused(tmp_path):
    from fma.io.masks.layout import load_masks_any
    from fma.io.masks.records import SamMaskError, load_sam_masks

    folder = _mask_folder(tmp_path, "a")
    (folder / "a.json.gz").rename(folder / "b.json.gz")  # b's file holds a's masks
    with pytest.raises(SamMaskError, match=r"b\.json\.gz: holds the masks of image 'a'.*'b'"):
        load_sam_masks(folder / "b.json.gz")
    with pytest.raises(SamMaskError, match="holds the masks of image 'a'"):
        load_masks_any(folder, "b")


def test_a_truncated_manifest_says_how_to_rebuild_it_keeping_the_files(tmp_path):
    from fma.io import ManifestError, read_manifest

    folder = _mask_folder(tmp_path)
    (folder / "manifest.json").write_text('{"format": "sam_ma')
    with pytest.raises(ManifestError) as info:
        read_manifest(folder)
    msg = str(info.value)
    assert "delete only this manifest.json" in msg and "skips the finished files" in msg
    assert "delete the folder" not in msg
