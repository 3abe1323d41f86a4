"""Stage I dataset and transforms: known answers on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from fma.datasets.transforms import (
    LoadImage,
    LoadSeed,
    PackClsInputs,
    RandomColorJitter,
    RandomCrop,
    RandomFlip,
    RandomRescale,
    ResizeToMultiple,
)
from fma.datasets.voc import VOCClsDataset


def _ramp(h: int = 40, w: int = 60) -> dict:
    cols = np.tile(np.arange(w, dtype=np.uint8), (h, 1))
    rows = np.tile(np.arange(h, dtype=np.uint8)[:, None], (1, w))
    img = np.stack([cols, rows, np.zeros_like(cols)], axis=-1)
    return {"img": img, "seed": cols.copy(), "img_shape": (h, w)}


def test_flip_and_crop_keep_image_and_seed_aligned() -> None:
    np.random.seed(0)
    r = RandomFlip(prob=1.0)(_ramp())
    assert r["flip"] and r["img"][0, 0, 0] == 59
    r = RandomCrop(size=32)(r)
    assert r["img"].shape == (32, 32, 3) and r["seed"].shape == (32, 32)
    assert np.array_equal(r["img"][..., 0], r["seed"])
    small = RandomCrop(size=48)(_ramp(20, 30))  # padded: image 0, seed 255
    assert small["img"].shape == (48, 48, 3)
    assert (small["seed"][20:] == 255).all() and (small["img"][20:] == 0).all()


def test_random_rescale_ranges() -> None:
    np.random.seed(1)
    for _ in range(5):
        r = RandomRescale(low=50, high=70, short_min=32)(_ramp(40, 60))
        h, w = r["img"].shape[:2]
        assert 50 <= max(h, w) <= 71 and min(h, w) >= 32
        assert r["seed"].shape == (h, w) and r["img_shape"] == (h, w)
    r = RandomRescale(low=10, high=10, short_min=32)(_ramp(40, 60))  # short side wins
    assert r["img"].shape[:2] == (32, 48)
    assert set(np.unique(r["seed"])) <= set(range(60))  # nearest: no new label values


def test_resize_to_multiple() -> None:
    r = ResizeToMultiple(16)({"img": np.zeros((375, 500, 3), np.uint8)})
    assert r["img"].shape == (384, 512, 3) and r["img_shape"] == (384, 512)
    r = ResizeToMultiple(16)({"img": np.zeros((32, 48, 3), np.uint8), "img_shape": (32, 48)})
    assert r["img"].shape == (32, 48, 3)


def test_color_jitter() -> None:
    img = np.random.default_rng(0).integers(40, 200, (16, 16, 3)).astype(np.uint8)
    same = RandomColorJitter(prob=0.0)({"img": img.copy()})["img"]
    assert np.array_equal(same, img)
    np.random.seed(2)
    shifted = RandomColorJitter(contrast=(1, 1), saturation=(1, 1), hue=0.0, prob=1.0)(
        {"img": img.copy()}
    )["img"].astype(int)
    diff = shifted - img.astype(int)
    assert abs(diff.mean()) <= 25 and diff.std() < 2  # brightness: one shift (up to rounding)


def test_pack_inputs() -> None:
    r = _ramp(32, 48)
    r.update(img_id="a", gt_labels=[3, 7], ori_shape=(32, 48))
    out = PackClsInputs()(r)
    assert out["inputs"].shape == (3, 32, 48) and out["inputs"].dtype == torch.uint8
    ds = out["data_samples"]
    assert ds.gt_labels.tolist() == [3, 7] and ds.seed.dtype == torch.int64
    assert ds.img_id == "a" and ds.ori_shape == (32, 48)


def test_voc_dataset_items(synth_voc, tmp_path) -> None:
    init_default_scope("fma")
    ds = VOCClsDataset(
        data_root=str(synth_voc),
        split="train",
        seed_dir=str(synth_voc.parent / "pseudo_labels"),
        with_gt=True,
        pipeline=[dict(type="LoadImage"), dict(type="LoadSeed"), dict(type="PackClsInputs")],
    )
    assert len(ds) == 6 and ds.metainfo["dataset"] == "voc12"
    info = ds.get_data_info(0)
    assert info["img_id"] == "synth_000" and info["gt_labels"]
    assert info["seed_path"].endswith("pseudo_labels/synth_000.png")
    assert info["gt_path"].endswith("SegmentationClass/synth_000.png")
    item = ds[0]
    assert item["inputs"].shape == (3, 96, 128)
    assert item["data_samples"].seed.shape == (96, 128)
    # done_dir: finished images are skipped
    (tmp_path / "synth_001.npz").write_bytes(b"")
    ds2 = VOCClsDataset(data_root=str(synth_voc), split="train", done_dir=str(tmp_path))
    assert len(ds2) == 5 and "synth_001" not in {d["img_id"] for d in ds2}


def test_voc_dataset_errors(synth_voc, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="seed folder"):
        VOCClsDataset(data_root=str(synth_voc), split="train", seed_dir=str(tmp_path / "no"))
    with pytest.raises(FileNotFoundError, match="image-level label file"):
        VOCClsDataset(data_root=str(synth_voc), split="train", label_file=str(tmp_path / "x"))


def test_loaders_on_files(synth_voc) -> None:
    pipe = Compose([LoadImage(), LoadSeed()])
    r = pipe(
        {
            "img_path": str(synth_voc / "JPEGImages" / "synth_002.jpg"),
            "seed_path": str(synth_voc.parent / "pseudo_labels" / "synth_002.png"),
        }
    )
    assert r["img"].shape == (96, 128, 3) and r["seed"].shape == (96, 128)
    assert r["ori_shape"] == (96, 128)
    with pytest.raises(KeyError, match="seed_path"):
        LoadSeed()({"img": r["img"]})
