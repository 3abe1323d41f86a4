"""run_seeding / sweep_gamma: CAM + mask folders in, seed folder out (fma.io formats)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image

from fma.apis.seeds import run_seeding
from fma.apis.sweeps import sweep_gamma
from fma.datasets.meta import VOC12
from fma.io import Manifest, ManifestError, read_label_map, read_manifest, write_manifest
from fma.io.cams import CamRecord, load_cam, save_cam
from fma.io.masks.records import (
    encode_rle,
    find_mask_file,
    load_sam_masks,
    make_record,
    save_sam_masks,
)
from fma.seeding import SamsOptions, sams_seed
from fma.visualization.panels import legend_layout, title_height

IDS = ["2007_000032", "2007_000039", "2007_000063"]
H, W = 30, 40


def _masks(rng: np.random.Generator, k: int) -> np.ndarray:
    masks = np.zeros((k, H, W), bool)
    for i in range(k):
        y0, x0 = rng.integers(0, H - 5), rng.integers(0, W - 5)
        masks[i, y0 : y0 + rng.integers(4, H), x0 : x0 + rng.integers(4, W)] = True
    return masks


def make_inputs(tmp_path, *, split="train", dataset="voc12", ids=IDS, seed=0, suffix=".json.gz"):
    """Write a CAM folder and a SAM mask folder (``<id><suffix>`` files) with manifests;
    returns (cam_dir, mask_dir)."""
    rng = np.random.default_rng(seed)
    cam_dir = tmp_path / "cams" / split
    mask_dir = tmp_path / "masks" / split
    for image_id in ids:
        fg = np.sort(rng.choice(np.arange(1, 21), size=2, replace=False))
        cam = rng.normal(size=(2, 2, 3)).astype(np.float32)
        save_cam(cam_dir / f"{image_id}.npz", CamRecord(cam=cam, fg_cls=fg, ori_size=(H, W)))
        masks = _masks(rng, 6)
        records = [
            make_record(rle, area=int(m.sum()), bbox=[0, 0, W, H], level=int(lv))
            for rle, m, lv in zip(encode_rle(masks), masks, rng.integers(0, 3, 6), strict=True)
        ]
        save_sam_masks(mask_dir / f"{image_id}{suffix}", image_id, H, W, records)
    write_manifest(cam_dir, Manifest("cams", 1, len(ids), dataset, split))
    write_manifest(mask_dir, Manifest("sam_masks", 1, len(ids), None, split))
    return cam_dir, mask_dir


def expected_seed(cam_dir, mask_dir, image_id, **opts):
    cam = load_cam(cam_dir / f"{image_id}.npz")
    masks = load_sam_masks(find_mask_file(mask_dir, image_id))
    return sams_seed(cam, masks, SamsOptions(**opts)).seed


def test_run_seeding_writes_palette_pngs_and_manifest(tmp_path):
    cam_dir, mask_dir = make_inputs(tmp_path)
    out = tmp_path / "seeds"
    rep = run_seeding(
        cam_dir, mask_dir, out, dataset="voc12", options=SamsOptions(gamma=0.6), progress=False
    )
    assert rep.ok and sorted(rep.done) == IDS
    for image_id in IDS:
        with Image.open(out / f"{image_id}.png") as img:
            assert img.mode == "P"
            pal = np.asarray(img.getpalette()[: 21 * 3], np.uint8).reshape(21, 3)
            np.testing.assert_array_equal(pal, VOC12.palette[:21])
        seed = read_label_map(out / f"{image_id}.png", num_classes=21)
        np.testing.assert_array_equal(seed, expected_seed(cam_dir, mask_dir, image_id, gamma=0.6))
        assert 255 not in seed
    m = read_manifest(out, format="label_maps", version=1, dataset="voc12", split="train")
    assert m.count == 3 and m.class_names == list(VOC12.class_names)
    assert m.params["complete"] is True
    assert m.params["options"]["gamma"] == 0.6
    assert m.params["options"]["priority"] == ["level_bigger", "conf_bigger"]
    assert m.producer["tool"] == "tools/make_seeds.py"


def test_run_seeding_resumes_and_workers_agree(tmp_path):
    cam_dir, mask_dir = make_inputs(tmp_path)
    out0, out2 = tmp_path / "s0", tmp_path / "s2"
    run_seeding(
        cam_dir, mask_dir, out0, dataset="voc12", options=SamsOptions(gamma=1.0), progress=False
    )
    (out0 / f"{IDS[1]}.png").unlink()
    rep = run_seeding(
        cam_dir, mask_dir, out0, dataset="voc12", options=SamsOptions(gamma=1.0), progress=False
    )
    assert rep.done == [IDS[1]] and sorted(rep.skipped) == [IDS[0], IDS[2]]
    rep2 = run_seeding(
        cam_dir,
        mask_dir,
        out2,
        dataset="voc12",
        options=SamsOptions(gamma=1.0),
        workers=2,
        progress=False,
    )
    assert rep2.ok and sorted(rep2.done) == IDS
    for image_id in IDS:
        assert (out0 / f"{image_id}.png").read_bytes() == (out2 / f"{image_id}.png").read_bytes()


def test_plain_json_and_mixed_mask_folders_give_the_same_seeds(tmp_path):
    """Masks from an older run (plain .json) and a folder mixing both suffixes seed exactly as
    the .json.gz folder of the same masks."""
    cam_dir, gz_dir = make_inputs(tmp_path / "gz")
    _, json_dir = make_inputs(tmp_path / "plain", suffix=".json")
    _, mixed_dir = make_inputs(tmp_path / "mixed")
    for image_id in IDS[:2]:  # the first two as an older run wrote them
        packed = mixed_dir / f"{image_id}.json.gz"
        (mixed_dir / f"{image_id}.json").write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    assert sorted(p.name for p in json_dir.glob("2007_*")) == [f"{i}.json" for i in IDS]
    assert sorted(p.name for p in mixed_dir.glob("2007_*")) == [
        f"{IDS[0]}.json", f"{IDS[1]}.json", f"{IDS[2]}.json.gz"
    ]  # fmt: skip
    outs = {}
    for name, mask_dir in (("gz", gz_dir), ("plain", json_dir), ("mixed", mixed_dir)):
        outs[name] = tmp_path / f"seeds_{name}"
        rep = run_seeding(cam_dir, mask_dir, outs[name], dataset="voc12",
                          options=SamsOptions(gamma=0.6), progress=False)  # fmt: skip
        assert rep.ok and sorted(rep.done) == IDS
    for image_id in IDS:
        ref = (outs["gz"] / f"{image_id}.png").read_bytes()
        assert (outs["plain"] / f"{image_id}.png").read_bytes() == ref
        assert (outs["mixed"] / f"{image_id}.png").read_bytes() == ref


def test_run_seeding_refuses_other_settings_in_same_folder(tmp_path):
    cam_dir, mask_dir = make_inputs(tmp_path)
    out = tmp_path / "seeds"
    run_seeding(
        cam_dir, mask_dir, out, dataset="voc12", options=SamsOptions(gamma=0.6), progress=False
    )
    with pytest.raises(ValueError, match="gamma"):
        run_seeding(
            cam_dir, mask_dir, out, dataset="voc12", options=SamsOptions(gamma=0.7), progress=False
        )


def test_run_seeding_checks_inputs(tmp_path):
    cam_dir, mask_dir = make_inputs(tmp_path)
    out = tmp_path / "seeds"
    (mask_dir / f"{IDS[2]}.json.gz").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=rf"no mask \(\.npz, \.json\.gz or \.json\) file for 1 of 3 images \({IDS[2]}\)",
    ):
        run_seeding(
            cam_dir, mask_dir, out, dataset="voc12", options=SamsOptions(gamma=1.0), progress=False
        )
    # only the listed ids
    rep = run_seeding(
        cam_dir,
        mask_dir,
        out,
        dataset="voc12",
        options=SamsOptions(gamma=1.0),
        image_ids=IDS[:2],
        progress=False,
    )
    assert sorted(rep.done) == IDS[:2]
    with pytest.raises(ManifestError, match="'dataset' is 'voc12', expected 'coco14'"):
        run_seeding(
            cam_dir,
            mask_dir,
            tmp_path / "c",
            dataset="coco14",
            options=SamsOptions(gamma=1),
            progress=False,
        )
    with pytest.raises(ManifestError, match="'split' is 'train', expected 'val'"):
        run_seeding(
            cam_dir, mask_dir, tmp_path / "v", dataset="voc12", split="val",
            options=SamsOptions(gamma=1), progress=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match="background channel"):
        run_seeding(
            cam_dir,
            mask_dir,
            tmp_path / "n",
            dataset="voc12",
            options=SamsOptions(bg_method="no_bg"),
        )
    with pytest.raises(TypeError, match="options"):
        run_seeding(cam_dir, mask_dir, tmp_path / "n", dataset="voc12")  # type: ignore[call-arg]
    with pytest.raises(FileNotFoundError, match="CAM folder not found"):
        run_seeding(tmp_path / "none", mask_dir, out, dataset="voc12", options=SamsOptions(gamma=1))


def test_run_seeding_reports_bad_images_by_name(tmp_path):
    cam_dir, mask_dir = make_inputs(tmp_path)
    bad = IDS[1]
    save_cam(
        cam_dir / f"{bad}.npz",
        CamRecord(cam=np.ones((1, 2, 3), np.float32), fg_cls=np.array([4]), ori_size=(H + 1, W)),
    )
    out = tmp_path / "seeds"
    rep = run_seeding(
        cam_dir, mask_dir, out, dataset="voc12", options=SamsOptions(gamma=1.0), progress=False
    )
    assert sorted(rep.done) == [IDS[0], IDS[2]]
    assert list(rep.failed) == [bad]
    assert f"{bad}.npz" in rep.failed[bad] and "different images" in rep.failed[bad]
    m = read_manifest(out)
    assert m.count == 2 and m.params["complete"] is False


def test_run_seeding_show_dir_writes_panels(tmp_path):
    cam_dir, mask_dir = make_inputs(tmp_path)
    root = tmp_path / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    Image.new("RGB", (W, H), (200, 10, 10)).save(root / "JPEGImages" / f"{IDS[0]}.jpg")
    show = tmp_path / "show"
    run_seeding(
        cam_dir, mask_dir, tmp_path / "seeds", dataset="voc12", options=SamsOptions(gamma=1.0),
        progress=False,
        data_root=root, show_dir=show, num_show=2,
    )  # fmt: skip
    files = sorted(p.name for p in show.glob("*.png"))
    assert files == [f"{IDS[0]}.png", f"{IDS[1]}.png"]
    with Image.open(show / files[0]) as img:
        arr = np.asarray(img)
    # four panels of width W with 4-pixel gaps, under a title bar, above the class legend
    assert arr.shape[1] == 4 * W + 3 * 4 and arr.shape[0] > H
    top = title_height()
    # the first panel is the (red) image itself
    assert np.abs(arr[top + H // 2, W // 2].astype(int) - [200, 10, 10]).max() < 30
    seed = read_label_map(tmp_path / "seeds" / f"{IDS[0]}.png")
    texts = [f"{v} {VOC12.class_names[v]}" for v in np.unique(seed)]
    origins, swatch, height = legend_layout(texts, arr.shape[1])
    assert arr.shape[0] == top + H + height
    for (x, y), v in zip(origins, np.unique(seed), strict=True):
        np.testing.assert_array_equal(
            arr[top + H + y + swatch // 2, x + swatch // 2], VOC12.palette[v]
        )


def test_sweep_gamma_scores_against_ground_truth(tmp_path):
    cam_dir, mask_dir = make_inputs(tmp_path)
    gt_dir = tmp_path / "gt"
    # Ground truth = the gamma 0.5 seeds: that row scores 100 on every present class.
    gt_dir.mkdir()
    for image_id in IDS:
        seed = expected_seed(cam_dir, mask_dir, image_id, gamma=0.5)
        Image.fromarray(seed, mode="L").save(gt_dir / f"{image_id}.png")
    rows = sweep_gamma(cam_dir, mask_dir, gt_dir, [0.5, 3.0], dataset="voc12", progress=False)
    assert [r["gamma"] for r in rows] == [0.5, 3.0]
    assert rows[0]["mIoU"] == pytest.approx(100.0)
    # Direct check of the second row: pixel accuracy of the gamma-3 seeds.
    agree = total = 0
    for image_id in IDS:
        gt = np.asarray(Image.open(gt_dir / f"{image_id}.png"))
        seed = expected_seed(cam_dir, mask_dir, image_id, gamma=3.0)
        agree += int((gt == seed).sum())
        total += gt.size
    assert rows[1]["metrics"]["aAcc"] == pytest.approx(100.0 * agree / total)
    assert sweep_gamma(
        cam_dir, mask_dir, gt_dir, [0.5, 3.0], dataset="voc12", workers=2, progress=False
    )[1]["mIoU"] == pytest.approx(rows[1]["mIoU"])
    with pytest.raises(ValueError, match="gammas is empty"):
        sweep_gamma(cam_dir, mask_dir, gt_dir, [], dataset="voc12")
