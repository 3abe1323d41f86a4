"""tools/convert_masks.py: mask folders between file formats (records and manifest kept)."""

from __future__ import annotations

import numpy as np
from tool_modules import load_tool

from fma.io import Manifest, read_manifest, write_manifest
from fma.io.masks.amg import write_amg_folder
from fma.io.masks.records import encode_rle, make_record, read_sam_records, save_sam_masks


def _write_v1(folder, n=3):
    rng = np.random.default_rng(0)
    ids = [f"img_{i}" for i in range(n)]
    for k, image_id in enumerate(ids):
        masks = rng.random((5, 9, 11)) < 0.4
        recs = [make_record(r, area=int(m.sum()), bbox=[1, 2, 3, 4], predicted_iou=0.5 + j / 10,
                            point_coords=[[j, 1.5]], level=j % 3)
                for j, (r, m) in enumerate(zip(encode_rle(masks), masks, strict=True))]  # fmt: skip
        suffix = ".json" if k == 0 else ".json.gz"
        save_sam_masks(folder / f"{image_id}{suffix}", image_id, 9, 11, recs)
    params = {"mask_source": "superpixels", "preset_settings": {"scales": [1, 2]}}
    write_manifest(folder, Manifest("sam_masks", 1, n, "voc12", "train", params=params))
    return ids


def test_convert_to_npz_and_back(tmp_path, capsys):
    tool = load_tool("convert_masks")
    src = tmp_path / "v1"
    ids = _write_v1(src)
    npz = tmp_path / "npz"
    assert tool.main([str(src), str(npz), "--no-progress"]) == 0
    assert sorted(p.name for p in npz.glob("*.npz")) == [f"{i}.npz" for i in ids]
    for i, suffix in zip(ids, (".json", ".json.gz", ".json.gz"), strict=True):
        assert (
            read_sam_records(npz / f"{i}.npz")["masks"]
            == read_sam_records(src / f"{i}{suffix}")["masks"]
        )
    man = read_manifest(npz)
    assert (man.format, man.count, man.dataset, man.split) == ("sam_masks", 3, "voc12", "train")
    assert man.params["mask_source"] == "superpixels"
    assert man.params["preset_settings"] == {"scales": [1, 2]}
    assert man.params["file_suffix"] == ".npz" and man.params["files_by_suffix"] == {".npz": 3}
    assert man.params["converted_from"] == str(src)
    capsys.readouterr()
    assert tool.main([str(src), str(npz), "--no-progress"]) == 0  # resumes: nothing to do
    assert "0 written, 3 already done" in capsys.readouterr().out
    # Back to version 1: the gzip'd files are the original bytes (a deterministic writer).
    back = tmp_path / "back"
    assert tool.main([str(npz), str(back), "--file-format", "json.gz", "--workers", "2",
                      "--no-progress"]) == 0  # fmt: skip
    for i in ids[1:]:
        assert (back / f"{i}.json.gz").read_bytes() == (src / f"{i}.json.gz").read_bytes()


def test_refusals_and_amg_import(tmp_path, capsys):
    tool = load_tool("convert_masks")
    src = tmp_path / "v1"
    _write_v1(src, 1)
    assert tool.main([str(src), str(src), "--no-progress"]) == 1
    assert "another folder than the source" in capsys.readouterr().err
    amg = tmp_path / "amg"
    write_amg_folder(amg / "a", np.eye(4, dtype=bool)[None].repeat(2, 0))
    assert tool.main([str(amg), str(tmp_path / "x"), "--no-progress"]) == 1
    assert "--from-amg" in capsys.readouterr().err
    assert tool.main([str(amg), str(tmp_path / "y"), "--from-amg", "--no-progress"]) == 0
    assert len(read_sam_records(tmp_path / "y" / "a.npz")["masks"]) == 2
