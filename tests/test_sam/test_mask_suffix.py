"""Mask file formats of the SAM stage: .npz (version 2) by default, JSON on request, resume."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from rle_sizes import uncompressed_rle_pickle_size
from tool_modules import load_tool

from fma.apis.sam_masks import run_sam_masks
from fma.io import read_manifest
from fma.io.manifest import LOCK_NAME
from fma.io.masks.records import find_mask_file, read_sam_records, save_sam_masks

TINY = dict(source="sam", model_type="tiny", preset="fast", device="cpu",
            preset_overrides=dict(points_per_side=4))  # fmt: skip


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in ("manifest.json", LOCK_NAME))


def test_json_then_npz_rerun_keeps_both(tmp_path, write_images):
    ids = write_images(tmp_path / "imgs", 4)
    kw = dict(image_dir=tmp_path / "imgs", progress=False, **TINY)
    first = run_sam_masks(tmp_path / "wd", file_format="json", image_ids=ids[:2], **kw)
    folder = first.out_dir
    assert _names(folder) == ["img_000.json", "img_001.json"]
    p = read_manifest(folder).params
    assert p["file_suffix"] == ".json" and p["files_by_suffix"] == {".json": 2}
    with pytest.warns(UserWarning, match=r"2 images already have \.json mask files"):
        run_sam_masks(tmp_path / "wd", file_format="json.gz", image_ids=ids[:3], **kw)
    # A default (npz) rerun counts the JSON files as done (one warning per suffix kept) and
    # writes the rest as version 2.
    with pytest.warns(UserWarning) as caught:
        second = run_sam_masks(tmp_path / "wd", **kw)
    messages = sorted(str(w.message) for w in caught if "mask files" in str(w.message))
    assert len(messages) == 2
    assert "1 images already have .json.gz mask files" in messages[0]
    assert "2 images already have .json mask files" in messages[1]
    assert second.report.skipped == ids[:3] and second.report.done == ids[3:]
    assert _names(folder) == ["img_000.json", "img_001.json", "img_002.json.gz", "img_003.npz"]
    man = read_manifest(folder)
    assert man.count == 4 and man.params["complete"] is True
    assert man.params["file_suffix"] == ".npz"
    assert man.params["files_by_suffix"] == {".npz": 1, ".json.gz": 1, ".json": 2}
    # The mixed folder holds what a single run writes, in any format.
    ref = run_sam_masks(tmp_path / "ref", **kw)
    assert _names(ref.out_dir) == [f"{i}.npz" for i in ids]
    for i in ids:
        got = read_sam_records(find_mask_file(folder, i))
        want = read_sam_records(ref.out_dir / f"{i}.npz")
        assert got["masks"] == want["masks"], i
        assert (got["version"], want["version"]) == (
            {".npz": 2}.get(find_mask_file(folder, i).suffix, 1),
            2,
        )
    # A rerun over a folder of its own suffix skips everything, without a warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        third = run_sam_masks(tmp_path / "ref", **kw)
    assert third.report.skipped == ids and not caught


def test_tool_file_format_flag(tmp_path, write_images, write_config):
    write_images(tmp_path / "imgs", 2)
    cfg = write_config(tmp_path / "cfg.py", image_dir=str(tmp_path / "imgs"), **TINY)
    tool = load_tool("gen_sam_masks")
    for fmt, suffix in (("json", ".json"), ("json.gz", ".json.gz"), ("npz", ".npz")):
        out = tmp_path / fmt
        assert tool.main([str(cfg), "--work-dir", str(out), "--no-progress",
                          "--file-format", fmt]) == 0  # fmt: skip
        assert _names(out / "masks" / "all") == [f"img_000{suffix}", f"img_001{suffix}"]
    assert tool.main([str(cfg), "--work-dir", str(tmp_path / "b"), "--no-progress"]) == 0
    assert _names(tmp_path / "b" / "masks" / "all") == ["img_000.npz", "img_001.npz"]
    cfg_plain = write_config(tmp_path / "plain.py", image_dir=str(tmp_path / "imgs"),
                             file_format="json", **TINY)  # fmt: skip
    assert tool.main([str(cfg_plain), "--work-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    assert _names(tmp_path / "c" / "masks" / "all") == ["img_000.json", "img_001.json"]
    with pytest.raises(
        ValueError, match=r"file_format must be one of \['json', 'json.gz', 'npz'\]"
    ):
        run_sam_masks(tmp_path / "d", image_dir=tmp_path / "imgs", file_format="zip",
                      progress=False, **TINY)  # fmt: skip


def res_shape(records: list[dict]) -> tuple[int, int]:
    h, w = records[0]["segmentation"]["size"]
    return h, w


@pytest.mark.realdata
def test_real_images_mask_files_are_a_fifth_of_the_pickle(voc_mini, tmp_path):
    """Masks of two VOC val images (tiny SAM, fast preset with 8x8 points) as written by the
    stage: each .json.gz is at most 1/5 of the uncompressed-RLE pickle (about 1/11 measured),
    and so is the .npz of the same records (about 1/6: its zip members carry fixed headers of
    about 1.5 kB, much of the file at 10-20 masks)."""
    root = voc_mini / "VOC2012"
    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:2]
    res = run_sam_masks(tmp_path / "wd", dataset="voc12", data_root=root, split="val",
                        image_ids=ids, progress=False, file_format="json.gz",
                        **{**TINY, "preset_overrides": dict(points_per_side=8)})  # fmt: skip
    assert res.report.done == ids
    for i in ids:
        path = res.out_dir / f"{i}.json.gz"
        records = read_sam_records(path)["masks"]
        assert len(records) > 5
        pickle_size = uncompressed_rle_pickle_size(records)
        assert 5 * path.stat().st_size <= pickle_size, i
        npz = tmp_path / f"{i}.npz"
        save_sam_masks(npz, i, *res_shape(records), records)
        assert 5 * npz.stat().st_size <= pickle_size, i
