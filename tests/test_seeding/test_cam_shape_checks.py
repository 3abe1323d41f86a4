"""A CAM must be a patch grid of its image (or the image itself): a stretched one is refused.

The CAM writer (``tools/test.py``) resizes each image up to multiples of 16 and stores the patch
grid of that input: (K, ceil(H/16), ceil(W/16)) for 16-pixel patches (8-pixel patches, as the
demo's tiny CLIP has, give twice that); CAMs at full resolution (K, H, W) are accepted as well.
Any other shape would be bilinearly stretched onto the image, so it is refused naming the file,
its shape and the expected one; the other images go on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fma.apis.seeds import run_seeding
from fma.apis.sweeps import sweep_gamma
from fma.io import Manifest, read_label_map, write_manifest
from fma.io.cams import (
    CamError,
    CamRecord,
    cam_fits,
    cam_grid_sizes,
    check_cam_size,
    load_cam,
    save_cam,
)
from fma.io.label_maps import write_label_map
from fma.io.masks.records import encode_rle, make_record, save_sam_masks
from fma.seeding.sams_options import SamsOptions
from fma.stage import StageFailedError

REPO = Path(__file__).resolve().parents[2]
H = W = 96
FG = np.array([3, 8, 15])


def _cam(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(3, h, w) CAM: class 3 left, 8 middle, 15 right third of the image, plus noise."""
    x = (np.arange(w) + 0.5) / w
    rows = np.stack([x < 1 / 3, (x >= 1 / 3) & (x < 2 / 3), x >= 2 / 3]).astype(np.float32)
    cam = np.repeat(rows[:, None, :], h, axis=1)
    return cam + rng.normal(0, 0.01, cam.shape).astype(np.float32)


def _inputs(root: Path, cams: dict[str, tuple[tuple[int, int], bool]]) -> tuple[Path, Path]:
    """CAM and mask folders; ``cams`` maps id -> ((h, w) of the CAM, whether ori_size is stored).

    Every image is 96x96 with six masks: three vertical thirds (level 2) and three halves of
    them (level 1)."""
    rng = np.random.default_rng(0)
    cam_dir, mask_dir = root / "cams" / "train", root / "masks" / "train"
    masks = np.zeros((6, H, W), bool)
    for k in range(3):
        masks[k, :, 32 * k : 32 * (k + 1)] = True
        masks[3 + k, : H // 2, 32 * k : 32 * (k + 1)] = True
    levels = [2, 2, 2, 1, 1, 1]
    for image_id, ((h, w), with_size) in cams.items():
        rec = CamRecord(_cam(rng, h, w), FG, ori_size=(H, W) if with_size else None)
        save_cam(cam_dir / f"{image_id}.npz", rec)
        recs = [
            make_record(r, area=int(m.sum()), bbox=[0, 0, W, H], level=lv)
            for r, m, lv in zip(encode_rle(masks), masks, levels, strict=True)
        ]
        save_sam_masks(mask_dir / f"{image_id}.npz", image_id, H, W, recs)
    write_manifest(cam_dir, Manifest("cams", 1, len(cams), "voc12", "train"))
    write_manifest(mask_dir, Manifest("sam_masks", 1, len(cams), None, "train"))
    return cam_dir, mask_dir


def _expected_seed() -> np.ndarray:
    seed = np.zeros((H, W), np.uint8)
    for k, c in enumerate(FG.tolist()):
        seed[:, 32 * k : 32 * (k + 1)] = c
    return seed


def test_grid_sizes_follow_the_writer():
    # 16-aligned image / patch size, for 16-, 8-, 4-, 2- and 1-pixel patches, then full size
    assert cam_grid_sizes((375, 500))[:2] == [(24, 32), (48, 64)]
    assert cam_grid_sizes((375, 500))[-1] == (375, 500)
    assert (384, 512) in cam_grid_sizes((375, 500))
    assert cam_grid_sizes((96, 96)) == [(6, 6), (12, 12), (24, 24), (48, 48), (96, 96)]
    assert cam_grid_sizes((3000, 4000))[0] == (188, 250)
    rec = CamRecord(np.zeros((3, 12, 4), np.float32), FG, ori_size=(96, 96))
    with pytest.raises(CamError) as err:
        check_cam_size(rec, path="x/a.npz")
    msg = str(err.value)
    assert "x/a.npz" in msg and "(3, 12, 4)" in msg and "(3, 6, 6)" in msg and "96x96" in msg
    assert "\n" not in msg
    for ok in ((6, 6), (12, 12), (96, 96)):
        check_cam_size(CamRecord(np.zeros((3, *ok), np.float32), FG), (96, 96), path="b.npz")


def test_one_stride_on_both_sides_fits_and_a_stretch_does_not():
    # the image rounded up to its own patch size p: (ceil(H/p), ceil(W/p))
    assert cam_fits((3, 4), (24, 32))  # p = 8
    assert cam_fits((24, 32), (375, 500)) and cam_fits((375, 500), (375, 500))
    assert cam_fits((1, 1), (5, 7)) and cam_fits((1, 2), (5, 7))  # p = 5 or 6
    assert cam_fits((19, 25), (375, 500))  # p = 20
    assert not cam_fits((12, 4), (96, 96))  # strides 8 and 24
    assert not cam_fits((4, 4), (96, 128))  # strides 24 and 32: the aspect changes
    assert not cam_fits((32, 24), (375, 500))  # transposed
    assert not cam_fits((6, 7), (96, 96))  # the grid of a 96x112 image
    assert not cam_fits((97, 96), (96, 96)) and not cam_fits((0, 6), (96, 96))


def test_load_cam_refuses_a_cam_stretched_against_its_ori_size(tmp_path):
    save_cam(tmp_path / "a.npz", CamRecord(np.ones((3, 12, 4), np.float32), FG, ori_size=(96, 96)))
    with pytest.raises(CamError, match=r"a\.npz.*\(3, 12, 4\).*\(3, 6, 6\)"):
        load_cam(tmp_path / "a.npz")
    # a transposed grid of a 375x500 image is refused too; the right one loads
    save_cam(
        tmp_path / "t.npz", CamRecord(np.ones((1, 32, 24), np.float32), FG[:1], ori_size=(375, 500))
    )
    with pytest.raises(CamError, match=r"\(1, 24, 32\)"):
        load_cam(tmp_path / "t.npz")
    save_cam(
        tmp_path / "g.npz", CamRecord(np.ones((1, 24, 32), np.float32), FG[:1], ori_size=(375, 500))
    )
    assert load_cam(tmp_path / "g.npz").cam.shape == (1, 24, 32)


def test_run_seeding_refuses_stretched_cams_and_seeds_the_rest(tmp_path):
    cams = {f"img{i:02d}": ((6, 6), True) for i in range(14)}
    cams["full_res"] = ((96, 96), False)  # the authors' layout: no ori_size, image-size CAM
    cams["grid8"] = ((12, 12), True)  # 8-pixel patches (the demo's tiny CLIP)
    cams["stretched"] = ((12, 4), True)
    cams["stretched_no_size"] = ((4, 12), False)  # checked against the masks' size
    cam_dir, mask_dir = _inputs(tmp_path, cams)
    out = tmp_path / "seeds"
    rep = run_seeding(
        cam_dir, mask_dir, out, dataset="voc12", options=SamsOptions(gamma=1.0), progress=False
    )
    assert sorted(rep.failed) == ["stretched", "stretched_no_size"]
    assert len(rep.done) == 16
    msg = rep.failed["stretched"]
    assert str(cam_dir / "stretched.npz") in msg and "(3, 12, 4)" in msg and "(3, 6, 6)" in msg
    msg = rep.failed["stretched_no_size"]
    assert str(cam_dir / "stretched_no_size.npz") in msg and "(3, 4, 12)" in msg
    assert "(3, 6, 6)" in msg and "masks" in msg
    assert not (out / "stretched.png").exists()
    for image_id in rep.done:
        seed = read_label_map(out / f"{image_id}.png", num_classes=21)
        assert np.array_equal(seed, _expected_seed()), image_id


def test_make_seeds_tool_lists_the_stretched_cam_and_exits_1(tmp_path):
    cams = {f"img{i:02d}": ((6, 6), True) for i in range(15)}
    cams["stretched"] = ((12, 4), True)
    cam_dir, mask_dir = _inputs(tmp_path, cams)
    cfg = tmp_path / "sams-shape_voc12.py"
    cfg.write_text(
        f"seeding = dict(cam_dir={str(cam_dir)!r}, mask_dir={str(mask_dir)!r}, "
        "dataset='voc12', split='train', gamma=1.0)\n"
    )
    cmd = [sys.executable, str(REPO / "tools" / "make_seeds.py"), str(cfg), "--work-dir",
           str(tmp_path / "work"), "--workers", "0", "--no-progress"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "15 written, 0 already done, 1 failed" in proc.stdout
    failed = [ln for ln in proc.stdout.splitlines() if "FAILED" in ln]
    assert len(failed) == 1 and "FAILED stretched:" in failed[0]
    assert "stretched.npz" in failed[0] and "(3, 12, 4)" in failed[0] and "(3, 6, 6)" in failed[0]


def test_gamma_sweep_refuses_a_stretched_cam(tmp_path):
    cams = {"a": ((6, 6), True), "b": ((4, 12), False)}
    cam_dir, mask_dir = _inputs(tmp_path, cams)
    gt = tmp_path / "gt"
    for image_id in cams:
        write_label_map(gt / f"{image_id}.png", _expected_seed())
    with pytest.raises(StageFailedError) as err:
        sweep_gamma(cam_dir, mask_dir, gt, [1.0], dataset="voc12", progress=False)
    assert list(err.value.failed) == ["b"]
    assert "b.npz" in err.value.failed["b"] and "(3, 4, 12)" in err.value.failed["b"]
