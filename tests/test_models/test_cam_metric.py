"""CAMMetric: CAM files, manifest and CAM mIoU on hand-built inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fma.datasets.meta import VOC12
from fma.evaluation.metrics import CAMMetric, cam_panel
from fma.io import ManifestError, read_manifest, write_label_map
from fma.io.cams import load_cam
from fma.visualization.panels import score_colormap, title_height


def _sample(gt_path: str, cam: torch.Tensor) -> dict:
    return {
        "img_id": "im0",
        "ori_shape": (4, 4),
        "gt_path": gt_path,
        "cam": cam,
        "fg_cls": torch.tensor([5]),
        "fg_logit": torch.tensor([3.0]),
        "all_logit": torch.arange(20.0),
    }


def test_writes_files_and_scores(tmp_path) -> None:
    gt = np.zeros((4, 4), np.uint8)
    gt[:2, :2] = 5
    gt[3, 3] = 255
    write_label_map(tmp_path / "gt.png", gt, VOC12.palette)
    cam = torch.zeros(1, 2, 2)
    cam[0, 0, 0] = 1.0  # after bilinear resizing to 4x4 the top-left block is highest
    out = tmp_path / "cams"
    metric = CAMMetric(output_dir=out, dataset="voc12", split="train", gammas=(1, 100))
    metric.process({}, [_sample(str(tmp_path / "gt.png"), cam)])
    res = metric.compute_metrics(metric.results)

    rec = load_cam(out / "im0.npz")
    assert rec.fg_cls.tolist() == [5] and rec.cam.dtype == np.float32
    np.testing.assert_array_equal(rec.cam, cam.numpy())
    assert rec.ori_size == (4, 4) and rec.all_logit.shape == (20,)
    man = read_manifest(out, format="cams", version=1)
    assert man.params["cam_dtype"] == "float32"
    assert man.count == 1 and man.dataset == "voc12" and man.split == "train"
    assert man.class_names == list(VOC12.class_names)

    # score at 4x4: rows/cols weights [1, .75, .25, 0] -> outer product; normalised by max 1
    w = np.array([1.0, 0.75, 0.25, 0.0])
    score = np.outer(w, w)
    for g in (1, 100):
        pred = np.where(score > (1 - score) ** g, 5, 0)
        valid = gt != 255
        ious = [
            ((pred == c) & (gt == c) & valid).sum() / (((pred == c) | (gt == c)) & valid).sum()
            for c in (0, 5)
        ]
        want = sum(ious) / 2 * 100
        assert res[f"mIoU@{g}"] == pytest.approx(want)
    assert res["images"] == 1.0
    assert res["mIoU_best"] == max(res["mIoU@1"], res["mIoU@100"])


def test_without_gt_or_output(tmp_path) -> None:
    metric = CAMMetric(output_dir=None, gammas=())
    metric.process({}, [_sample("", torch.zeros(1, 2, 2))])
    assert metric.results == [] and metric.compute_metrics([]) == {}


def test_cam_panel_known_answer() -> None:
    image = np.full((4, 4, 3), 100, np.uint8)
    cam = torch.zeros(2, 2, 2)
    cam[0, 0, 0] = 1.0  # score at 4x4: outer product of [1, .75, .25, 0]
    cam[1] = -1.0  # ReLU -> all zero -> score 0 everywhere
    panel = cam_panel(image, cam, ["img", "cat", "dog"])
    top = title_height()
    assert panel.shape == (top + 4, 3 * 4 + 2 * 4, 3)
    assert (panel[top:, :4] == 100).all()
    w = np.array([1.0, 0.75, 0.25, 0.0])
    score = np.outer(w, w) / (1 + 1e-7)
    want = np.round(0.5 * 100 + 0.5 * score_colormap(score).astype(np.float64)).astype(np.uint8)
    assert np.array_equal(panel[top:, 8:12], want)
    zero = np.round(0.5 * 100 + 0.5 * np.array([0, 0, 128.0])).astype(np.uint8)  # dark blue
    assert (panel[top:, 16:20] == zero).all()
    assert (panel[top:, 4:8] == 255).all()  # white gap
    with pytest.raises(ValueError, match="titles"):
        cam_panel(image, cam, ["img"])


def test_show_dir_writes_the_first_panels(tmp_path) -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    img[:, :2] = 200
    from PIL import Image

    Image.fromarray(img).save(tmp_path / "im.png")
    metric = CAMMetric(output_dir=None, gammas=(), show_dir=tmp_path / "show", show_num=1)
    samples = [dict(_sample("", torch.ones(1, 2, 2)), img_id=f"im{i}",
                    img_path=str(tmp_path / "im.png")) for i in range(3)]  # fmt: skip
    metric.process({}, samples)
    files = sorted(p.name for p in (tmp_path / "show").iterdir())
    assert files == ["im0.png"]
    panel = np.asarray(Image.open(tmp_path / "show" / "im0.png"))
    top = title_height()
    assert panel.shape == (top + 4, 4 + 4 + 4, 3)
    assert np.array_equal(panel[top:, :4], img)  # the image itself, then class 5's overlay
    with pytest.raises(ValueError, match="show_num"):
        CAMMetric(show_num=-1)


def test_folder_of_other_settings_is_refused(tmp_path) -> None:
    out = tmp_path / "cams"
    params = {"checkpoint_sha256": "aa", "tta": {"scales": (1.0, 0.5), "flip": True}}
    first = CAMMetric(output_dir=out, gammas=(), params=params)
    first.process({}, [_sample("", torch.ones(1, 2, 2))])
    # the manifest exists (incomplete) before the run ends, so a killed run is guarded too
    man = read_manifest(out, format="cams")
    assert man.params["complete"] is False and man.params["checkpoint_sha256"] == "aa"
    assert man.params["tta"] == {"scales": [1.0, 0.5], "flip": True}

    same = CAMMetric(output_dir=out, gammas=(), params=params)  # tuples equal the stored lists
    same.process({}, [dict(_sample("", torch.ones(1, 2, 2)), img_id="im1")])
    assert same.compute_metrics(same.results) == {}
    man = read_manifest(out, format="cams")
    assert man.params["complete"] is True and man.count == 2

    for key, value in (("checkpoint_sha256", "bb"), ("tta", None)):
        other = CAMMetric(output_dir=out, gammas=(), params={**params, key: value})
        with pytest.raises(ValueError, match=f"{key}=.*another folder"):
            other.process({}, [dict(_sample("", torch.ones(1, 2, 2)), img_id="im2")])
    assert not (out / "im2.npz").exists()  # nothing written by a refused run

    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "manifest.json").write_text('{"format": "seeds", "version": 1}')
    wrong = CAMMetric(output_dir=tmp_path / "seeds", gammas=())
    with pytest.raises(ValueError, match="not CAMs"):
        wrong.process({}, [_sample("", torch.ones(1, 2, 2))])


def test_float16_cams_are_opt_in_and_never_mixed(tmp_path) -> None:
    cam = torch.full((1, 2, 2), 0.1)
    out = tmp_path / "cams"
    metric = CAMMetric(
        output_dir=out, dataset="voc12", split="train", gammas=(), cam_dtype="float16"
    )
    metric.process({}, [_sample(None, cam)])
    rec = load_cam(out / "im0.npz")
    assert rec.cam.dtype == np.float16 and rec.cam[0, 0, 0] == np.float16(0.1)
    assert read_manifest(out).params["cam_dtype"] == "float16"
    rerun = CAMMetric(output_dir=out, dataset="voc12", split="train", gammas=())
    with pytest.raises(ManifestError, match="cam_dtype='float16'"):
        rerun.process({}, [_sample(None, cam)])
    with pytest.raises(ValueError, match="cam_dtype"):
        CAMMetric(output_dir=out, cam_dtype="bfloat16")
