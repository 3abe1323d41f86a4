"""Stage I tools on CPU with the tiny CLIP: tools/test.py --tta and --show-dir on the VOC cls
config, and the COCO cls / seg configs end to end (train 2 iterations, then CAM files)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from stage1_tiny import REPO, TINY_OPTIONS, VOC_CLS, labelled_synthetic_voc, voc_options
from tool_modules import load_tool

from fma.io import read_manifest

COCO_CLS = REPO / "configs" / "stage1" / "fma-cls_prompt-clip-vit-b16_1xb16-20500it_coco14.py"
COCO_SEG = REPO / "configs" / "stage1" / "fma-seg_prompt-clip-vit-b16_1xb16-75k_coco14.py"


def _load_cams(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for f in sorted(folder.glob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            out[f.stem] = {k: z[k] for k in z.files}
    return out


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return labelled_synthetic_voc(tmp_path_factory.mktemp("voc"))


@pytest.fixture(scope="module")
def voc_ckpt(voc, tmp_path_factory) -> tuple[Path, list[str]]:
    """A 2-iteration checkpoint of the VOC cls config; returns it and the shared options."""
    options = voc_options(voc)
    work = tmp_path_factory.mktemp("voc_work")
    assert (
        load_tool("train").main([str(VOC_CLS), "--work-dir", str(work), "--cfg-options", *options])
        == 0
    )
    return work / "iter_2.pth", options


def _test(ckpt: Path, options: list[str], out: Path, *extra: str) -> dict:
    argv = [str(VOC_CLS), str(ckpt), "--work-dir", str(ckpt.parent), "--out", str(out), *extra]
    assert load_tool("test").main([*argv, "--cfg-options", *options]) == 0
    return _load_cams(out)


def test_cam_inference_shows_a_progress_bar(tmp_path, voc_ckpt, capfd) -> None:
    ckpt, options = voc_ckpt
    assert len(_test(ckpt, options, tmp_path / "cams")) == 4
    err = capfd.readouterr().err
    assert "CAM inference" in err and "4/4" in err and "100%" in err  # tqdm: count, ETA, rate


def test_progress_bar_hook_counts_batches_and_hides_when_disabled() -> None:
    from types import SimpleNamespace

    from fma.engine.progress import ProgressBarHook
    from fma.registry import HOOKS

    runner = SimpleNamespace(test_dataloader=[0, 1, 2])
    hook = HOOKS.build(dict(type="ProgressBarHook"))
    assert isinstance(hook, ProgressBarHook)
    hook.before_test(runner)
    assert hook._bar.total == 3 and not hook._bar.disable
    for i in range(3):
        hook.after_test_iter(runner, i)
    assert hook._bar.n == 3
    hook.after_test(runner)
    assert hook._bar is None
    quiet = ProgressBarHook(disable=True)
    quiet.before_test(runner)
    assert quiet._bar.disable
    quiet.after_test(runner)


def test_tta_flag(tmp_path, voc_ckpt) -> None:
    ckpt, options = voc_ckpt
    plain = _test(ckpt, options, tmp_path / "plain")
    assert len(plain) == 4
    # --tta with the config's tta set to one scale and no flip: exactly the plain CAMs.
    single = ["tta.scales=[1.0]", "tta.flip=False"]
    same = _test(ckpt, [*options, *single], tmp_path / "single", "--tta")
    assert same.keys() == plain.keys()
    for k in plain:
        for key in ("cam", "fg_cls", "fg_logit", "all_logit"):
            np.testing.assert_array_equal(same[k][key], plain[k][key], err_msg=f"{k} {key}")
    # --tta with the config's values (scales 1, .5, 1.5, 2 and flips): same classes and logits
    # (those of the plain input), CAMs on the same grid but different.
    fused = _test(ckpt, options, tmp_path / "fused", "--tta")
    assert fused.keys() == plain.keys()
    differ = 0
    for k in plain:
        np.testing.assert_array_equal(fused[k]["fg_cls"], plain[k]["fg_cls"])
        np.testing.assert_array_equal(fused[k]["all_logit"], plain[k]["all_logit"])
        assert fused[k]["cam"].shape == plain[k]["cam"].shape == (len(plain[k]["fg_cls"]), 6, 8)
        assert np.isfinite(fused[k]["cam"].astype(np.float32)).all()
        differ += not np.array_equal(fused[k]["cam"], plain[k]["cam"])
    assert differ == 4
    # Fused CAMs into the plain run's folder: refused before any file changes.
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "plain").iterdir()
              if p.name != ".fma.lock"}  # fmt: skip
    with pytest.raises(ValueError, match="tta=None.*another folder"):
        _test(ckpt, options, tmp_path / "plain", "--tta")
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "plain").iterdir()
             if p.name != ".fma.lock"}  # fmt: skip
    assert after == before


def test_tta_defaults_without_config_values(tmp_path) -> None:
    cfg = tmp_path / "no_tta.py"
    cfg.write_text(f"_base_ = [{str(VOC_CLS)!r}]\ntta = None\n")
    ckpt = tmp_path / "x.pth"
    ckpt.write_bytes(b"")
    test = load_tool("test")
    built = test.build_cfg(test.parse_args([str(cfg), str(ckpt), "--tta"]))
    assert built.model.tta is True  # PromptCLIP's DEFAULT_TTA
    built = test.build_cfg(test.parse_args([str(VOC_CLS), str(ckpt), "--tta"]))
    assert built.model.tta == dict(scales=(1.0, 0.5, 1.5, 2.0), flip=True, reduce="sum")
    work = Path("work_dirs") / VOC_CLS.stem
    # TTA CAMs go to their own folder, so a resumed plain run's files are never reused.
    assert built.test_evaluator.output_dir == str(work / "cams_tta" / "train_aug")
    assert built.test_evaluator.params == {
        "checkpoint_sha256": hashlib.sha256(b"").hexdigest(),
        "tta": {"scales": (1.0, 0.5, 1.5, 2.0), "flip": True, "reduce": "sum"},
    }
    built = test.build_cfg(test.parse_args([str(VOC_CLS), str(ckpt)]))
    assert built.model.tta is None and "show_dir" not in built.test_evaluator
    assert built.test_evaluator.params["tta"] is None
    assert built.test_evaluator.output_dir == str(work / "cams" / "train_aug")


def test_cam_params_record_the_clip_weights_file(tmp_path) -> None:
    """The CAM manifest's params name the CLIP file's format and sha256 (a tag records none)."""
    import torch

    clip = tmp_path / "clip.pt"
    torch.save({"w": torch.zeros(2)}, clip)
    ckpt = tmp_path / "x.pth"
    ckpt.write_bytes(b"")
    test = load_tool("test")
    argv = [str(VOC_CLS), str(ckpt), "--cfg-options", f"model.clip.pretrained={clip}"]
    built = test.build_cfg(test.parse_args(argv))
    assert built.test_evaluator.params["clip_weights"] == {
        "format": "state_dict",
        "sha256": hashlib.sha256(clip.read_bytes()).hexdigest(),
    }
    built = test.build_cfg(test.parse_args([str(VOC_CLS), str(ckpt)]))
    assert "clip_weights" not in built.test_evaluator.params


def test_show_dir(tmp_path, voc, voc_ckpt) -> None:
    from fma.cam import cam_to_score
    from fma.datasets.meta import VOC12
    from fma.visualization.panels import overlay, title_height

    ckpt, options = voc_ckpt
    show = tmp_path / "show"
    cams = _test(ckpt, options, tmp_path / "cams", "--show-dir", str(show), "--show-num", "2")
    pngs = sorted(show.glob("*.png"))
    assert [p.stem for p in pngs] == sorted(cams)[:2]  # the first two images, in test order
    top = title_height()
    for png in pngs:
        rec = cams[png.stem]
        k = len(rec["fg_cls"])
        assert k >= 1 and all(VOC12.class_names[c] for c in rec["fg_cls"])
        panel = np.asarray(Image.open(png).convert("RGB"))
        assert panel.shape == (top + 96, 128 * (k + 1) + 4 * k, 3)
        image = np.asarray(Image.open(voc / "JPEGImages" / f"{png.stem}.jpg").convert("RGB"))
        np.testing.assert_array_equal(panel[top:, :128], image)
        score = cam_to_score(torch.from_numpy(rec["cam"].astype(np.float32)), size=(96, 128))
        for i in range(k):
            x0 = (128 + 4) * (i + 1)
            want = overlay(image, score[i].numpy()).astype(int)
            got = panel[top:, x0 : x0 + 128].astype(int)
            # The panel and the file hold the same float32 CAM; rounding in the drawing (the
            # colormap slope is 510 levels per unit score at alpha 0.5) moves colours by a few
            # levels at most; the exact drawing is tested in tests/test_models/test_cam_metric.py.
            assert np.abs(got - want).mean() < 4.0
    # the CAM files are written as usual
    assert len(cams) == 4


def test_misspelt_cfg_options_key_is_refused_without_traceback(tmp_path, capsys) -> None:
    for tool, extra in (("train", []), ("test", [str(tmp_path / "ckpt.pth")])):
        (tmp_path / "ckpt.pth").write_bytes(b"")
        with pytest.raises(SystemExit) as info:
            load_tool(tool).main([str(VOC_CLS), *extra, "--work-dir", str(tmp_path / "w"),
                                  "--cfg-options", "modle.n_ctx=4"])  # fmt: skip
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --cfg-options modle.n_ctx: modle does not exist")
        assert "(did you mean model.n_ctx?)" in err and "+modle.n_ctx=" in err
    assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------------------------- COCO
def _synthetic_coco(root: Path, num_images: int = 4) -> tuple[Path, Path, dict[str, list[int]]]:
    """COCO14 layout (tools/prepare_coco.py output) with 96x128 synthetic images of classes 1..20
    (valid COCO-81 ids), ground truth without the ignore label, and seed PNGs."""
    from fma.datasets.labels import (
        image_labels_from_label_map,
        multi_hot_to_labels,
        save_image_labels,
    )
    from fma.datasets.meta import COCO14
    from fma.datasets.synthetic import synthetic_sample
    from fma.io import write_label_map, write_text_atomic

    coco, seeds = root / "coco2014", root / "seeds"
    ids = [f"COCO_train2014_{i:012d}" for i in range(1, num_images + 1)]
    labels = {}
    for i, image_id in enumerate(ids):
        img, gt, pseudo = synthetic_sample(7000 + i)
        gt = np.where(gt == 255, 0, gt).astype(np.uint8)  # COCO ground truth has no ignore
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
        (coco / "train2014").mkdir(parents=True, exist_ok=True)
        (coco / "train2014" / f"{image_id}.jpg").write_bytes(buf.getvalue())
        write_label_map(
            coco / "SegmentationClass" / "train" / f"{image_id}.png", gt, COCO14.palette
        )
        write_label_map(seeds / f"{image_id}.png", pseudo, COCO14.palette)
        labels[image_id] = multi_hot_to_labels(image_labels_from_label_map(gt, 81))
    write_text_atomic(coco / "ImageSets" / "train.txt", "\n".join(ids) + "\n")
    save_image_labels(
        coco / "cls_labels" / "train.json", labels, COCO14.class_names, "coco14", "train"
    )
    return coco, seeds, labels


@pytest.mark.parametrize("config", [COCO_CLS, COCO_SEG], ids=["cls", "seg"])
def test_coco_configs_end_to_end(tmp_path, config: Path) -> None:
    coco, seeds, labels = _synthetic_coco(tmp_path / "data")
    options = [
        *TINY_OPTIONS,
        f"train_dataloader.dataset.data_root={coco}",
        f"test_dataloader.dataset.data_root={coco}",
    ]
    if config is COCO_SEG:
        options.append(f"train_dataloader.dataset.seed_dir={seeds}")
    work = tmp_path / "work"
    assert (
        load_tool("train").main([str(config), "--work-dir", str(work), "--cfg-options", *options])
        == 0
    )
    ckpt = work / "iter_2.pth"
    assert ckpt.is_file()
    # The loss of the config's task was logged for both iterations.
    logged = [
        json.loads(line)
        for f in work.glob("*/vis_data/scalars.json")
        for line in f.read_text().splitlines()
    ]
    loss_key = "loss_cls" if config is COCO_CLS else "loss_act_fg"
    assert [r["step"] for r in logged if loss_key in r] == [1, 2]
    assert all(np.isfinite(r[loss_key]) for r in logged if loss_key in r)

    assert load_tool("test").main([str(config), str(ckpt), "--work-dir", str(work),
                               "--cfg-options", *options]) == 0  # fmt: skip
    cam_dir = work / "cams" / "train"
    man = read_manifest(cam_dir, format="cams", version=1, dataset="coco14", split="train")
    assert man.count == 4 and len(man.class_names) == 81
    cams = _load_cams(cam_dir)
    assert {k: v["fg_cls"].tolist() for k, v in cams.items()} == labels
    for rec in cams.values():
        assert rec["cam"].shape == (len(rec["fg_cls"]), 6, 8) and rec["all_logit"].shape == (80,)
        assert np.isfinite(rec["cam"].astype(np.float32)).all()
        assert rec["ori_size"].tolist() == [96, 128]
