"""tools/make_seeds.py, tools/sweep_seed_gamma.py and the shipped configs/seeding/*.py."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image
from tool_modules import load_tool

from fma.apis.seeds import run_seeding, seeding_kwargs
from fma.io import Manifest, read_label_map, read_manifest, write_manifest
from fma.io.cams import CamRecord, load_cam, save_cam
from fma.io.masks.records import encode_rle, load_sam_masks, make_record, save_sam_masks
from fma.seeding import SamsOptions, sams_seed

REPO = Path(__file__).resolve().parents[2]
IDS = ["a1", "b2", "c3"]
H, W = 24, 32


def _inputs(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(5)
    cam_dir, mask_dir = root / "cams" / "train", root / "masks" / "train"
    for image_id in IDS:
        cam = rng.normal(size=(2, 3, 4)).astype(np.float32)
        save_cam(cam_dir / f"{image_id}.npz", CamRecord(cam, np.array([2, 15]), ori_size=(H, W)))
        masks = np.zeros((5, H, W), bool)
        for k in range(5):
            y, x = rng.integers(0, H - 4), rng.integers(0, W - 4)
            masks[k, y : y + rng.integers(3, H), x : x + rng.integers(3, W)] = True
        recs = [
            make_record(r, area=int(m.sum()), bbox=[0, 0, W, H], level=k % 3)
            for k, (r, m) in enumerate(zip(encode_rle(masks), masks, strict=True))
        ]
        save_sam_masks(mask_dir / f"{image_id}.json.gz", image_id, H, W, recs)
    write_manifest(cam_dir, Manifest("cams", 1, 3, "voc12", "train"))
    write_manifest(mask_dir, Manifest("sam_masks", 1, 3, None, "train"))
    return cam_dir, mask_dir


def _config(root: Path, cam_dir: Path, mask_dir: Path, extra: str = "") -> Path:
    cfg = root / "sams-test_voc12.py"
    cfg.write_text(
        "seeding = dict(\n"
        f"    cam_dir={str(cam_dir)!r},\n"
        f"    mask_dir={str(mask_dir)!r},\n"
        "    dataset='voc12',\n"
        "    split='train',\n"
        "    gamma=0.6,\n"
        "    norm_first=True,\n"
        "    priority=('level_bigger', 'conf_bigger'),\n"
        f"{extra}"
        ")\n"
    )
    return cfg


def _expected(cam_dir: Path, mask_dir: Path, image_id: str, gamma: float) -> np.ndarray:
    cam = load_cam(cam_dir / f"{image_id}.npz")
    masks = load_sam_masks(mask_dir / f"{image_id}.json.gz")
    return sams_seed(cam, masks, SamsOptions(gamma=gamma)).seed


def test_make_seeds_cli_end_to_end(tmp_path):
    cam_dir, mask_dir = _inputs(tmp_path)
    cfg = _config(tmp_path, cam_dir, mask_dir)
    work = tmp_path / "work"
    tool = REPO / "tools" / "make_seeds.py"
    opts = ["--workers", "0", "--no-progress", "--cfg-options", "seeding.gamma=0.5"]
    cmd = [sys.executable, str(tool), str(cfg), "--work-dir", str(work), *opts]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "3 written, 0 already done, 0 failed" in proc.stdout
    out = work / "seeds" / "train"
    for image_id in IDS:
        got = read_label_map(out / f"{image_id}.png", num_classes=21)
        np.testing.assert_array_equal(got, _expected(cam_dir, mask_dir, image_id, 0.5))
    m = read_manifest(out, format="label_maps", dataset="voc12", split="train")
    assert m.params["options"]["gamma"] == 0.5
    assert m.producer["config"] == str(cfg)


def test_make_seeds_main_resume_show_and_errors(tmp_path, capsys):
    tool = load_tool("make_seeds")
    cam_dir, mask_dir = _inputs(tmp_path)
    cfg = _config(tmp_path, cam_dir, mask_dir)
    work = tmp_path / "work"
    show = tmp_path / "show"
    base = [str(cfg), "--work-dir", str(work), "--workers", "0", "--no-progress"]
    assert tool.main([*base, "--show-dir", str(show), "--num-show", "2"]) == 0
    assert len(list(show.glob("*.png"))) == 2
    assert tool.main(base) == 0
    assert "0 written, 3 already done, 0 failed" in capsys.readouterr().out
    # Another gamma into the same folder is refused, not mixed.
    assert tool.main([*base, "--cfg-options", "seeding.gamma=0.9"]) == 1
    assert "gamma" in capsys.readouterr().err
    # A misspelt key in the file lists the valid seeding keys (run_seeding's arguments).
    (tmp_path / "bad").mkdir()
    bad = _config(tmp_path / "bad", cam_dir, mask_dir, "    gama=0.3,\n")
    assert tool.main([str(bad), "--work-dir", str(tmp_path / "w2"), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "seeding.gama is not a setting of this stage (did you mean seeding.gamma?)" in err
    assert "Valid seeding keys: alpha, bg_method, bg_thresh, cam_dir, data_root" in err
    assert "workers" not in err.split("Valid seeding keys:")[1]  # set by --workers
    assert "Traceback" not in err and "unexpected keyword" not in err
    # A misspelt --cfg-options key names the nearest existing one; nothing runs.
    assert tool.main([*base, "--cfg-options", "seeding.gama=0.3"]) == 2
    err = capsys.readouterr().err
    assert "seeding.gama does not exist" in err and "did you mean seeding.gamma?" in err
    # Missing inputs.
    assert tool.main([*base[:1], "--work-dir", str(tmp_path / "w3"), "--workers", "0",
                      "--cfg-options", f"seeding.mask_dir={tmp_path / 'none'}"]) == 1  # fmt: skip
    assert "SAM mask folder not found" in capsys.readouterr().err


def test_default_work_dir_is_config_stem(tmp_path, monkeypatch):
    tool = load_tool("make_seeds")
    cam_dir, mask_dir = _inputs(tmp_path)
    cfg = _config(tmp_path, cam_dir, mask_dir)
    monkeypatch.chdir(tmp_path)
    assert tool.main([str(cfg), "--workers", "0", "--no-progress"]) == 0
    assert sorted(p.stem for p in (tmp_path / "work_dirs" / cfg.stem / "seeds" / "train").glob(
        "*.png")) == IDS  # fmt: skip


def test_sweep_seed_gamma_prints_table(tmp_path, capsys):
    tool = load_tool("sweep_seed_gamma")
    cam_dir, mask_dir = _inputs(tmp_path)
    cfg = _config(tmp_path, cam_dir, mask_dir)
    gt = tmp_path / "gt"
    gt.mkdir()
    for image_id in IDS:
        seed = _expected(cam_dir, mask_dir, image_id, 2.0)
        Image.fromarray(seed, mode="L").save(gt / f"{image_id}.png")
    args = [str(cfg), "--gammas", "2", "0.3", "--gt-dir", str(gt), "--workers", "0"]
    assert tool.main([*args, "--no-progress", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    lines = [ln.split() for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert [ln[0] for ln in lines] == ["2.00", "0.30"]
    assert lines[0][1] == "100.00"  # ground truth = the gamma-2 seeds
    assert "nothing is selected" in out
    assert (tmp_path / "s.json").is_file()
    # No seeds are written by the sweep.
    assert not list(tmp_path.rglob("seeds"))


SHIPPED = {
    "sams-coarse_voc12": ("voc12", "train_aug", 0.6, "fma-cls_"),
    "sams-fine_voc12": ("voc12", "train_aug", 0.7, "fma-seg_"),
    "sams-coarse_coco14": ("coco14", "train", 0.4, "fma-cls_"),
    "sams-fine_coco14": ("coco14", "train", 1.0, "fma-seg_"),
}


@pytest.mark.parametrize("stem", sorted(SHIPPED))
def test_shipped_seeding_configs(stem):
    path = REPO / "configs" / "seeding" / f"{stem}.py"
    head = path.read_text().splitlines()[:4]
    assert head[0].startswith("# Tool: tools/make_seeds.py")
    assert all(line.startswith("#") for line in head)
    seeding = Config.fromfile(path).seeding.to_dict()
    dataset, split, gamma, producer = SHIPPED[stem]
    assert seeding["dataset"] == dataset and seeding["split"] == split
    assert seeding["gamma"] == gamma  # method-fma 9.2
    assert seeding["norm_first"] is True and seeding["bg_method"] == "pow"
    assert tuple(seeding["priority"]) == ("level_bigger", "conf_bigger")
    cam = Path(seeding["cam_dir"]).parts
    mask = Path(seeding["mask_dir"]).parts
    assert cam[0] == "work_dirs" and cam[1].startswith(producer) and cam[1].endswith(dataset)
    assert cam[2:] == ("cams", split)
    assert mask[0] == "work_dirs" and mask[1].startswith("sam_") and mask[2:] == ("masks", split)
    assert set(seeding) <= set(inspect.signature(seeding_kwargs).parameters)
    kwargs = seeding_kwargs(**seeding)
    assert set(kwargs) - {"options"} <= set(inspect.signature(run_seeding).parameters)
    assert isinstance(kwargs["options"], SamsOptions) and kwargs["options"].gamma == gamma
