"""The SAM-mask stage runner and its tool: image modes, failures, resume, manifest, panels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tool_modules import load_tool

from fma.apis.sam_masks import run_sam_masks
from fma.io import read_manifest
from fma.io.manifest import LOCK_NAME
from fma.io.masks.records import load_sam_masks, read_sam_records
from fma.sam.run_settings import parse_shard
from fma.sam.show import read_image_rgb

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "gen_sam_masks.py"
# The tiny model with few prompts: quick, still several masks per image.
TINY = dict(source="sam", model_type="tiny", preset="fast", device="cpu",
            preset_overrides=dict(points_per_side=4))  # fmt: skip


def _docs(folder: Path, suffix: str = ".npz") -> dict[str, dict]:
    """{image id: JSON document} of the mask files with ``suffix`` in ``folder``."""
    out = {}
    for p in sorted(folder.glob(f"*{suffix}")):
        if p.name != "manifest.json":
            out[p.name[: -len(suffix)]] = read_sam_records(p)
    return out


# ----------------------------------------------------------------------------------------
# image modes
# ----------------------------------------------------------------------------------------
def _odd_images(folder: Path) -> dict[str, np.ndarray]:
    """Write one image per PIL mode; return the RGB array each should read as."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    h, w = 48, 64
    grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    want: dict[str, np.ndarray] = {}

    Image.fromarray(grey).save(folder / "mode_L.png")
    want["mode_L"] = np.repeat(grey[:, :, None], 3, 2)
    Image.fromarray(np.stack([grey, 255 - grey], -1), "LA").save(folder / "mode_LA.png")
    want["mode_LA"] = want["mode_L"]
    Image.fromarray(np.dstack([rgb, grey]), "RGBA").save(folder / "mode_RGBA.png")
    want["mode_RGBA"] = rgb
    Image.fromarray(rgb).convert("CMYK").save(folder / "mode_CMYK.tif")
    want["mode_CMYK"] = np.asarray(Image.fromarray(rgb).convert("CMYK").convert("RGB"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "mode_I16.png")
    want["mode_I16"] = want["mode_L"]
    pal = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    idx = (grey % 7).astype(np.uint8)
    p_img = Image.fromarray(idx, "P")
    p_img.putpalette(pal.reshape(-1).tolist())
    p_img.save(folder / "mode_P.png")
    want["mode_P"] = pal[idx]
    Image.fromarray(grey > 128).save(folder / "mode_1.png")
    want["mode_1"] = np.repeat(np.where(grey > 128, 255, 0).astype(np.uint8)[:, :, None], 3, 2)
    Image.fromarray(grey.astype(np.float32) / 255.0).save(folder / "mode_F.tif")
    want["mode_F"] = want["mode_L"]
    Image.fromarray(rgb).save(folder / "mode_RGB.png")
    want["mode_RGB"] = rgb
    return want


def test_read_image_rgb_every_mode(tmp_path):
    want = _odd_images(tmp_path)
    modes = {p.stem: Image.open(p).mode for p in tmp_path.iterdir()}
    assert modes["mode_I16"] == "I;16" and modes["mode_1"] == "1" and modes["mode_CMYK"] == "CMYK"
    for p in sorted(tmp_path.iterdir()):
        got = read_image_rgb(p)
        assert got.shape == (48, 64, 3) and got.dtype == np.uint8 and got.flags.c_contiguous
        assert np.array_equal(got, want[p.stem]), p.stem
    with pytest.raises(FileNotFoundError):
        read_image_rgb(tmp_path / "none.png")


def test_run_on_every_mode(tiny_sam, tmp_path):
    _odd_images(tmp_path / "imgs")
    res = run_sam_masks(tmp_path / "wd", image_dir=tmp_path / "imgs", progress=False, **TINY)
    assert res.report.ok and len(res.report.done) == 9
    assert res.out_dir == tmp_path / "wd" / "masks" / "all"
    for image_id in res.report.done:
        doc = read_sam_records(res.out_dir / f"{image_id}.npz")
        assert (doc["height"], doc["width"]) == (48, 64) and doc["image_id"] == image_id
        assert len(doc["masks"]) > 0


# ----------------------------------------------------------------------------------------
# failures, skipping, manifest, settings check
# ----------------------------------------------------------------------------------------
def test_failures_reported_by_name_and_run_goes_on(tmp_path, write_images, write_config, capsys):
    imgs = tmp_path / "imgs"
    write_images(imgs, 2)
    (imgs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(imgs / "cut.jpg")
    data = (imgs / "cut.jpg").read_bytes()
    (imgs / "cut.jpg").write_bytes(data[: len(data) // 2])  # truncated: PIL names no file
    Image.fromarray(np.zeros((4, 40, 3), np.uint8)).save(imgs / "thin.png")
    cfg = write_config(tmp_path / "cfg.py", image_dir=str(imgs), **TINY)
    code = load_tool("gen_sam_masks").main(
        [str(cfg), "--work-dir", str(tmp_path / "wd"), "--no-progress"]
    )
    out = capsys.readouterr()
    assert code == 1
    assert "2 written, 0 already done, 3 failed" in out.out
    assert "FAILED broken:" in out.out and "FAILED thin:" in out.out
    # a corrupt JPEG is named by its path, with the fix
    cut = imgs / "cut.jpg"
    assert f"FAILED cut: OSError: {cut}: not a readable image (image file is " in out.out
    assert "replace it with an intact copy" in out.out and "then rerun" in out.out
    assert f"FAILED broken: OSError: {imgs / 'broken.jpg'}: not a readable image" in out.out
    assert "smaller than min_image_side=8" in out.out
    folder = tmp_path / "wd" / "masks" / "all"
    assert sorted(_docs(folder)) == ["img_000", "img_001"]
    man = read_manifest(folder, format="sam_masks", version=1)
    assert man.count == 2 and man.params["n_failed"] == 3 and man.params["complete"] is False


def test_skip_done_manifest_and_settings_check(tmp_path, write_images):
    write_images(tmp_path / "imgs", 3)
    kw = dict(image_dir=tmp_path / "imgs", progress=False, **TINY)
    first = run_sam_masks(tmp_path / "wd", **kw)
    assert sorted(first.report.done) == ["img_000", "img_001", "img_002"]
    folder = first.out_dir
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.glob("img_*")}
    assert sorted(stamp) == ["img_000.npz", "img_001.npz", "img_002.npz"]
    again = run_sam_masks(tmp_path / "wd", **kw)
    assert again.report.done == [] and len(again.report.skipped) == 3
    assert stamp == {p.name: p.stat().st_mtime_ns for p in folder.glob("img_*")}
    man = read_manifest(folder, format="sam_masks", version=1, split="all", dataset="folder")
    assert man.count == 3
    p = man.params
    assert (p["mask_source"], p["preset"], p["model_type"]) == ("sam", "fast", "tiny")
    assert (
        p["preset_settings"]["points_per_side"] == 4 and p["preset_settings"]["rsw_thresh"] == 0.3
    )
    assert (p["n_images"], p["n_written"], p["complete"], p["finished"]) == (3, 3, True, True)
    assert p["file_suffix"] == ".npz" and p["files_by_suffix"] == {".npz": 3}
    assert man.producer["tool"] == "tools/gen_sam_masks.py"
    with pytest.raises(ValueError, match="preset_settings"):
        run_sam_masks(tmp_path / "wd", **{**kw, "preset_overrides": dict(points_per_side=5)})
    with pytest.raises(ValueError, match="mask_source"):
        run_sam_masks(tmp_path / "wd", image_dir=tmp_path / "imgs", source="superpixels")


def test_bad_arguments(tmp_path, write_images):
    write_images(tmp_path / "imgs", 1)
    with pytest.raises(ValueError, match="exactly one"):
        run_sam_masks(tmp_path / "wd", **TINY)
    with pytest.raises(ValueError, match="source"):
        run_sam_masks(tmp_path / "wd", image_dir=tmp_path / "imgs", source="sam2")
    with pytest.raises(KeyError, match="available"):
        run_sam_masks(tmp_path / "wd", image_dir=tmp_path / "imgs", preset="nope")
    with pytest.raises(ValueError, match="not in the split"):
        run_sam_masks(tmp_path / "wd", image_dir=tmp_path / "imgs", image_ids=["x"], **TINY)
    with pytest.raises(FileNotFoundError, match="sam_vit_h_4b8939.pth"):
        run_sam_masks(tmp_path / "wd", image_dir=tmp_path / "imgs", source="sam",
                      checkpoint=tmp_path / "sam_vit_h_4b8939.pth")  # fmt: skip
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "a/2", "1-2", (0, 0)):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_dataset_layout_split_and_show_dir(tmp_path, write_images):
    voc = tmp_path / "VOC2012"
    ids = write_images(voc / "JPEGImages", 3)
    for i in ids:  # the voc12 layout names images <id>.jpg
        Image.open(voc / "JPEGImages" / f"{i}.png").convert("RGB").save(
            voc / "JPEGImages" / f"{i}.jpg"
        )
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids[::-1]) + "\n")
    res = run_sam_masks(tmp_path / "wd", dataset="voc12", data_root=voc, split="val",
                        show_dir=tmp_path / "show", num_show=2, progress=False, **TINY)  # fmt: skip
    assert res.report.done == ids[::-1] and res.n_images == 3
    man = read_manifest(res.out_dir, dataset="voc12", split="val")
    assert man.params["complete"]
    panels = sorted((tmp_path / "show").glob("*.png"))
    assert [p.stem for p in panels] == sorted(ids[::-1][:2])
    from fma.visualization.panels import title_height

    panel = np.asarray(Image.open(panels[0]))
    assert panel.shape == (48 + title_height(), 4 * 64 + 3 * 4, 3)
    image = np.asarray(Image.open(voc / "JPEGImages" / f"{panels[0].stem}.jpg").convert("RGB"))
    top = title_height()
    assert np.array_equal(panel[top:, :64], image)  # first panel: the image itself
    masks = load_sam_masks(res.out_dir / f"{panels[0].stem}.npz")
    for level in (0, 1, 2):  # uncovered pixels keep the image, covered ones are tinted
        x0 = (level + 1) * 68
        covered = masks.masks[masks.levels == level].any(0)
        region = panel[top:, x0 : x0 + 64]
        assert np.array_equal(region[~covered], image[~covered])
        if covered.any():
            assert not np.array_equal(region[covered], image[covered])


def test_panels_with_more_than_255_masks(tmp_path):
    from fma.io.masks.records import save_sam_masks
    from fma.sam.show import write_level_panels
    from fma.sam.superpixels import segments_to_records

    labels = np.arange(20 * 16).reshape(20, 16)  # 320 one-pixel segments
    # a plain .json file, as older runs wrote: panels still find it
    save_sam_masks(tmp_path / "m" / "a.json", "a", 20, 16, segments_to_records(labels, 0))
    Image.fromarray(np.full((20, 16, 3), 90, np.uint8)).save(tmp_path / "a.png")
    paths = write_level_panels(tmp_path / "m", ["a", "b"], lambda i: tmp_path / f"{i}.png",
                               tmp_path / "show")  # fmt: skip
    assert [p.name for p in paths] == ["a.png"]
    panel = np.asarray(Image.open(paths[0]))
    from fma.visualization.panels import title_height

    top = title_height()
    level0 = panel[top:, 20:36]
    assert (level0 != 90).any(axis=2).all()  # every pixel tinted by its own mask


def test_superpixel_source_through_the_tool(tmp_path, write_images, write_config):
    write_images(tmp_path / "imgs", 2)
    cfg = write_config(tmp_path / "sp.py", image_dir=str(tmp_path / "imgs"),
                       source="superpixels", preset="slic")  # fmt: skip
    argv = [str(cfg), "--work-dir", str(tmp_path / "wd"), "--split", "demo", "--no-progress",
            "--workers", "2"]  # fmt: skip
    assert load_tool("gen_sam_masks").main(argv) == 0
    folder = tmp_path / "wd" / "masks" / "demo"
    recs = read_sam_records(folder / "img_000.npz")["masks"]  # SLIC level 0: > 255 masks
    assert {r["level"] for r in recs} == {0, 1, 2}
    man = read_manifest(folder)
    assert man.params["mask_source"] == "superpixels" and man.params["model_type"] is None
    cfg2 = write_config(tmp_path / "bad.py", image_dir=str(tmp_path / "imgs"), sourc="sam")
    assert load_tool("gen_sam_masks").main([str(cfg2), "--work-dir", str(tmp_path / "wd2")]) == 2


# ----------------------------------------------------------------------------------------
# resume after the process is killed mid-run
# ----------------------------------------------------------------------------------------
KILLER = """
import os, signal, sys
import fma  # noqa
real_replace = os.replace
state = {"n": 0}

def replace(src, dst):
    name = os.path.basename(str(dst))
    if name.endswith(".npz"):
        state["n"] += 1
        if state["n"] == 3:  # the third image file is written but not yet renamed
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)

os.replace = replace
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import gen_sam_masks
sys.exit(gen_sam_masks.main(sys.argv[2:]))
"""


def test_resume_after_kill(tmp_path, write_images, write_config):
    ids = write_images(tmp_path / "imgs", 5)
    cfg = write_config(tmp_path / "cfg.py", image_dir=str(tmp_path / "imgs"), **TINY)
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    wd = tmp_path / "wd"
    proc = subprocess.run(
        [sys.executable, str(killer), str(TOOL), str(cfg), "--work-dir", str(wd), "--no-progress"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    folder = wd / "masks" / "all"
    # Two complete files; the third exists only as a hidden temporary file.
    assert sorted(_docs(folder)) == ids[:2]
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME]
    assert len(leftovers) == 1 and leftovers[0].startswith(".img_002.npz.")
    for i in ids[:2]:
        load_sam_masks(folder / f"{i}.npz")
    started = read_manifest(folder)
    assert started.params["finished"] is False
    # Rerun: skips the two, completes the rest; equals an uninterrupted run.
    res = run_sam_masks(wd, image_dir=tmp_path / "imgs", progress=False, **TINY)
    assert res.report.skipped == ids[:2] and res.report.done == ids[2:]
    ref = run_sam_masks(tmp_path / "ref", image_dir=tmp_path / "imgs", progress=False, **TINY)
    assert _docs(folder) == _docs(ref.out_dir)
    assert read_manifest(folder).params["complete"] is True


def test_tool_rejects_bad_shard(tmp_path, write_config):
    cfg = write_config(tmp_path / "c.py", image_dir=str(tmp_path))
    with pytest.raises(SystemExit):
        load_tool("gen_sam_masks").parse_args([str(cfg), "--shard", "2/2"])


# ----------------------------------------------------------------------------------------
# configs and real data
# ----------------------------------------------------------------------------------------
def test_sam_configs_load_and_name_run_settings():
    import dataclasses

    from mmengine.config import Config

    from fma.sam.run_settings import SamRunSettings

    params = {f.name for f in dataclasses.fields(SamRunSettings)}
    files = sorted((REPO / "configs" / "sam").glob("*.py"))
    assert {f.name for f in files} >= {
        "sam_vit-h_amg-fma_voc12.py",
        "sam_vit-h_amg-fma_coco14.py",
        "superpixels_voc12.py",
        "sam_tiny_test.py",
    }
    for f in files:
        lines = f.read_text().splitlines()
        header = [ln for ln in lines[:5] if ln.startswith("#")]
        assert lines[0].startswith("# Tool: tools/gen_sam_masks.py") and 2 <= len(header) <= 4
        cfg = Config.fromfile(f)
        assert set(cfg.sam_masks) <= params, f.name
        SamRunSettings(**cfg.sam_masks)  # valid values
        if f.name.startswith("sam_vit-h_amg-fma"):
            assert cfg.sam_masks.precision == "fp32"  # the paper setting


@pytest.mark.realdata
def test_real_voc_images_align_with_ground_truth(voc_mini, tmp_path):
    root = voc_mini / "VOC2012"
    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:2]
    res = run_sam_masks(tmp_path / "wd", dataset="voc12", data_root=root, split="val",
                        image_ids=ids, progress=False, **TINY)  # fmt: skip
    assert res.report.done == ids
    for i in ids:
        gt = Image.open(root / "SegmentationClass" / f"{i}.png")
        doc = read_sam_records(res.out_dir / f"{i}.npz")
        assert (doc["width"], doc["height"]) == gt.size and len(doc["masks"]) > 0


# ----------------------------------------------------------------------------------------
# worker processes
# ----------------------------------------------------------------------------------------
def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npz"))}


@pytest.mark.slow
@pytest.mark.parametrize(
    "setting",
    [dict(source="superpixels", preset="felzenszwalb"), TINY],
    ids=["superpixels", "tiny_sam_cpu"],
)
def test_two_workers_write_the_same_bytes_as_one(tmp_path, write_images, setting):
    ids = write_images(tmp_path / "imgs", 5)
    files = {}
    for workers in (1, 2, 0):
        res = run_sam_masks(tmp_path / f"w{workers}", image_dir=tmp_path / "imgs",
                            workers=workers, progress=False, **setting)  # fmt: skip
        assert res.report.ok and sorted(res.report.done) == ids
        files[workers] = _file_bytes(res.out_dir)
    assert len(files[1]) == 5
    assert files[2] == files[1]
    if setting["source"] == "superpixels":  # no torch threads involved: equal in-process too
        assert files[0] == files[1]


def test_workers_argument_checks(tmp_path, write_images):
    write_images(tmp_path / "imgs", 1)
    with pytest.raises(ValueError, match="workers must be >= 0"):
        run_sam_masks(tmp_path / "wd", image_dir=tmp_path / "imgs", workers=-1, **TINY)
    gpu = {**TINY, "device": "cuda"}
    with pytest.raises(ValueError, match="CPU only"):
        run_sam_masks(tmp_path / "wd", image_dir=tmp_path / "imgs", workers=2, **gpu)
