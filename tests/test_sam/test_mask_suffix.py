"""Mask file suffixes of the SAM stage: .json.gz by default, plain .json on request, resume."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from rle_sizes import uncompressed_rle_pickle_size
from tool_modules import load_tool

from fma.apis.sam_masks import run_sam_masks
from fma.io import read_manifest
from fma.io.manifest import LOCK_NAME
from fma.io.sam_masks import find_mask_file, read_sam_records

TINY = dict(source="sam", model_type="tiny", preset="fast", device="cpu",
            preset_overrides=dict(points_per_side=4))  # fmt: skip


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in ("manifest.json", LOCK_NAME))


def test_plain_json_then_compressed_rerun_keeps_both(tmp_path, write_images):
    ids = write_images(tmp_path / "imgs", 3)
    kw = dict(image_dir=tmp_path / "imgs", progress=False, **TINY)
    first = run_sam_masks(tmp_path / "wd", compress=False, image_ids=ids[:2], **kw)
    folder = first.out_dir
    assert _names(folder) == ["img_000.json", "img_001.json"]
    p = read_manifest(folder).params
    assert p["file_suffix"] == ".json" and p["files_by_suffix"] == {".json": 2}
    # A compressed rerun counts the .json files as done (with a warning), writes the rest gz'd.
    with pytest.warns(UserWarning, match=r"2 images already have \.json mask files"):
        second = run_sam_masks(tmp_path / "wd", **kw)
    assert second.report.skipped == ids[:2] and second.report.done == ids[2:]
    assert _names(folder) == ["img_000.json", "img_001.json", "img_002.json.gz"]
    man = read_manifest(folder)
    assert man.count == 3 and man.params["complete"] is True
    assert man.params["file_suffix"] == ".json.gz"
    assert man.params["files_by_suffix"] == {".json.gz": 1, ".json": 2}
    # The mixed folder holds what a single compressed run writes.
    ref = run_sam_masks(tmp_path / "ref", **kw)
    assert _names(ref.out_dir) == [f"{i}.json.gz" for i in ids]
    for i in ids:
        got = read_sam_records(find_mask_file(folder, i))
        assert got == read_sam_records(ref.out_dir / f"{i}.json.gz"), i
    # A rerun over a folder of its own suffix skips everything, without a warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        third = run_sam_masks(tmp_path / "ref", **kw)
    assert third.report.skipped == ids and not caught


def test_tool_no_compress_flag(tmp_path, write_images, write_config):
    write_images(tmp_path / "imgs", 2)
    cfg = write_config(tmp_path / "cfg.py", image_dir=str(tmp_path / "imgs"), **TINY)
    tool = load_tool("gen_sam_masks")
    assert tool.main([str(cfg), "--work-dir", str(tmp_path / "a"), "--no-progress",
                      "--no-compress"]) == 0  # fmt: skip
    assert _names(tmp_path / "a" / "masks" / "all") == ["img_000.json", "img_001.json"]
    assert tool.main([str(cfg), "--work-dir", str(tmp_path / "b"), "--no-progress"]) == 0
    assert _names(tmp_path / "b" / "masks" / "all") == ["img_000.json.gz", "img_001.json.gz"]
    cfg_plain = write_config(tmp_path / "plain.py", image_dir=str(tmp_path / "imgs"),
                             compress=False, **TINY)  # fmt: skip
    assert tool.main([str(cfg_plain), "--work-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    assert _names(tmp_path / "c" / "masks" / "all") == ["img_000.json", "img_001.json"]


@pytest.mark.realdata
def test_real_images_compressed_files_are_a_fifth_of_the_pickle(voc_mini, tmp_path):
    """Masks of two VOC val images (tiny SAM, fast preset with 8x8 points) as written by the
    stage: each .json.gz is at most 1/5 of the uncompressed-RLE pickle (about 1/11 measured)."""
    root = voc_mini / "VOC2012"
    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:2]
    res = run_sam_masks(tmp_path / "wd", dataset="voc12", data_root=root, split="val",
                        image_ids=ids, progress=False,
                        **{**TINY, "preset_overrides": dict(points_per_side=8)})  # fmt: skip
    assert res.report.done == ids
    for i in ids:
        path = res.out_dir / f"{i}.json.gz"
        records = read_sam_records(path)["masks"]
        assert len(records) > 5
        assert 5 * path.stat().st_size <= uncompressed_rle_pickle_size(records), i
