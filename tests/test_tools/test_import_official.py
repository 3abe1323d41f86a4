"""tools/import_official.py on a small release tree written as the official code writes it:
masks, CAMs, seeds and prompt contexts converted, fma's seeding run on the authors' masks and
CAMs (hand-computed seed), compared with the authors' seed, and a hostile pickle refused."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from tool_modules import load_tool

from fma.io import read_label_map, read_manifest
from fma.io.cams import load_cam
from fma.io.masks.npz import read_npz_arrays

REPO = Path(__file__).resolve().parents[2]
FINE = REPO / "configs" / "seeding" / "sams-fine_voc12.py"
VOC_CLS = REPO / "configs" / "stage1" / "fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py"
TINY_JSON = REPO / "tests" / "data" / "tiny_clip.json"


def _official_files():
    """tests/test_io/official_files.py (the writers of the official formats)."""
    name = "official_files_for_tools"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "test_io" / "official_files.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


OF = _official_files()
SAMS = Path("VOC/sams/split=train_aug/anns")
SEG = Path("VOC/seg/infer/final/affx2,at_cam,attx1,\u00b75thresh")
# Where they land: ASCII names, anns -> masks, seed -> seeds.
OUT_MASKS = Path("VOC/sams/split_train_aug/masks")
OUT_SEG = Path("VOC/seg/infer/final/affx2_at_cam_attx1_.5thresh")

# The image: 2 x 5. Masks: cols 0-1 (whole), cols 2-3 (whole), col 3 (part); col 4 uncovered.
MASKS = np.zeros((3, 2, 5), dtype=bool)
MASKS[0, :, 0:2] = MASKS[1, :, 2:4] = MASKS[2, :, 3] = True
LEVELS = (2, 2, 1)
# CAA-refined CAM at the image size: aeroplane (official fg 0) on the left, person (14) at col 3.
CAM = np.array([[[4, 4, 2, 0, 0]] * 2, [[0, 0, 0, 3, 0]] * 2], dtype=np.float32)
# SAMS by hand (gamma 0.7): aeroplane scores per mask 1, .25, 0; person 0, .5, 1. Mask 0 ->
# aeroplane (conf 1); mask 1 -> background ((1 - .5) ** .7 = .616 > .5); mask 2 -> person
# (conf 1). Painted by (level, conf): mask 2, then 1 (overwrites col 3), then 0.
SEED = np.array([[1, 1, 0, 0, 0]] * 2, dtype=np.uint8)
# The authors' fine seed in the release, one pixel different (person at row 1, col 3).
OFFICIAL_SEED = SEED.copy()
OFFICIAL_SEED[1, 3] = 15


def _release(root: Path) -> Path:
    src = root / "experiment"
    recs = [OF.official_record(m, lv) for m, lv in zip(MASKS, LEVELS, strict=True)]
    OF.write_official_anns(src / SAMS / "img1.pkl", recs)
    OF.write_official_cam(src / SEG.parent / "cam" / "img1.npz", CAM, [0, 14])
    OF.write_official_cam(src / SEG / "cam_affed" / "img1.npz", CAM, [0, 14], affed=True)
    OF.write_official_seed(src / SEG / "ann,affed" / "seed" / "img1.png", OFFICIAL_SEED)
    OF.write_official_seed(src / SEG / "viz" / "cam" / "img1.png", OFFICIAL_SEED)  # not a seed
    return src


def test_release_import_then_fma_seeding_on_the_authors_inputs(tmp_path, capsys) -> None:
    src = _release(tmp_path)
    out = tmp_path / "official"
    tool = load_tool("import_official")
    assert tool.main([str(src), str(out), "--no-progress"]) == 0
    # Masks: version-2 fma files with the levels; manifest with dataset, split and origin.
    header, _, table, _ = read_npz_arrays(out / OUT_MASKS / "img1.npz")
    assert (header["height"], header["width"]) == (2, 5) and table["level"].tolist() == [2, 2, 1]
    m = read_manifest(out / OUT_MASKS, format="sam_masks")
    assert (m.dataset, m.split, m.count) == ("voc12", "train_aug", 1)
    assert m.params["origin"] == "official release" and m.params["complete"] is True
    assert Path(m.params["src_dir"]) == src / SAMS
    # CAMs: dataset class ids; raw CAMs keep their attention.
    for folder, att in (("cam_affed", False), ("../cam", True)):
        rec = load_cam(out / OUT_SEG / folder / "img1.npz", with_att=True)
        assert rec.fg_cls.tolist() == [1, 15] and (rec.att is not None) == att
        np.testing.assert_array_equal(rec.cam, CAM)
    cm = read_manifest(out / OUT_SEG / "cam_affed", format="cams", dataset="voc12")
    assert (cm.split, cm.params["split_from"]) == ("train_aug", "release layout")
    # Seeds: palette PNGs of the same labels; visualisations were not taken for seeds.
    seeds = out / OUT_SEG / "ann_affed" / "seeds"
    np.testing.assert_array_equal(read_label_map(seeds / "img1.png"), OFFICIAL_SEED)
    assert read_manifest(seeds, format="label_maps").params["method"] == "official_release"
    assert not (out / OUT_SEG / "viz").exists()
    items = json.loads((out / "import.json").read_text())["items"]
    assert sorted(i["kind"] for i in items) == ["cams", "cams", "masks", "seeds"]
    # A rerun skips everything.
    assert tool.main([str(src), str(out), "--no-progress"]) == 0
    assert all(" 0 written" in line for line in capsys.readouterr().out.splitlines()[-5:-1])

    # fma's fine seeds on the authors' CAMs and masks, as the README runs them.
    work = tmp_path / "fma_fine"
    argv = [str(FINE), "--work-dir", str(work), "--workers", "0", "--no-progress",
            "--cfg-options", f"seeding.cam_dir={out / OUT_SEG / 'cam_affed'}",
            f"seeding.mask_dir={out / OUT_MASKS}"]  # fmt: skip
    assert load_tool("make_seeds").main(argv) == 0
    mine = work / "seeds" / "train_aug"
    np.testing.assert_array_equal(read_label_map(mine / "img1.png"), SEED)

    # Agreement with the authors' seed: 9 of 10 pixels; IoU bg 5/6, aeroplane 1, person 0.
    report = tmp_path / "agree.json"
    eval_tool = load_tool("eval_labels")
    assert eval_tool.main(["--compare", str(mine), str(seeds), "--json", str(report)]) == 0
    got = json.loads(report.read_text())
    assert got["aAcc"] == pytest.approx(90.0)
    assert got["mIoU"] == pytest.approx((500 / 6 + 100 + 0) / 3)
    assert got["per_image"][0]["aAcc"] == pytest.approx(90.0)
    assert capsys.readouterr().out.splitlines()[-1] == "agreement: aAcc 90.00  mIoU 61.11"


def test_a_hostile_pickle_is_refused_and_the_rest_imported(tmp_path, capsys) -> None:
    import pickle

    marker = tmp_path / "MARKER"
    anns = tmp_path / "release" / "COCO" / "sams" / "train" / "anns"
    OF.write_official_anns(anns / "good.pkl", [OF.official_record(MASKS[0], 2)])
    (anns / "evil.pkl").write_bytes(pickle.dumps(OF.Hostile(marker)))
    out = tmp_path / "out"
    tool = load_tool("import_official")
    assert tool.main([str(anns), str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert (
        f"{anns / 'evil.pkl'}: refused to load: it references posix.system, which is not data"
        in err
    )
    assert not marker.exists()
    masks = out / "masks"
    assert (masks / "good.npz").is_file() and not (masks / "evil.npz").exists()
    m = read_manifest(masks)
    assert (m.dataset, m.split, m.count, m.params["complete"]) == ("coco14", "train", 1, False)
    assert json.loads((out / "import.json").read_text())["items"][0]["n_failed"] == 1
    # A subset by --image-list: the hostile file is not even opened.
    ids = tmp_path / "ids.txt"
    ids.write_text("good\n")
    argv = [str(anns), str(tmp_path / "subset"), "--image-list", str(ids), "--no-progress"]
    assert tool.main(argv) == 0
    m = read_manifest(tmp_path / "subset" / "masks")
    assert (m.count, m.params["source_files"], m.params["complete"]) == (1, 2, False)
    # Another source into the same folder is refused; an empty source is an error.
    other = tmp_path / "other" / "anns"
    OF.write_official_anns(other / "good.pkl", [OF.official_record(MASKS[0], 2)])
    assert tool.main([str(other), str(out), "--no-progress"]) == 1
    assert "made with other settings" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert tool.main([str(tmp_path / "empty"), str(out), "--no-progress"]) == 1
    assert "no official artifacts found" in capsys.readouterr().err


def _synthetic_voc(root: Path) -> Path:
    from fma.datasets.labels import (
        image_labels_from_label_map,
        multi_hot_to_labels,
        save_image_labels,
    )
    from fma.datasets.meta import VOC12
    from fma.datasets.synthetic import make_synthetic_voc

    voc = make_synthetic_voc(root, num_images=2, seed=3)
    labels = {
        p.stem: multi_hot_to_labels(image_labels_from_label_map(read_label_map(p), 21))
        for p in sorted((voc / "SegmentationClass").glob("*.png"))
    }
    save_image_labels(
        voc / "cls_labels" / "train.json", labels, VOC12.class_names, "voc12", "train"
    )
    return voc


@pytest.mark.slow
def test_prompt_contexts_load_in_tools_test(tmp_path, capfd) -> None:
    import torch

    voc = _synthetic_voc(tmp_path / "voc")
    cams = {}
    for name, seed in (("a", 0), ("b", 1)):
        ctx = torch.randn((4, 32), generator=torch.Generator().manual_seed(seed))
        src = tmp_path / name / "VOC" / "cls" / "checkpoints"
        OF.write_official_prompts(src / "final.pth", ctx)
        out = tmp_path / f"out_{name}"
        argv = [str(tmp_path / name), str(out), "--kinds", "prompts", "--no-progress"]
        assert load_tool("import_official").main(argv) == 0
        ckpt = out / "VOC" / "cls" / "checkpoints" / "final.pth"
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)  # no extra globals
        assert list(saved["state_dict"]) == ["prompt_learner.ctx"]
        torch.testing.assert_close(saved["state_dict"]["prompt_learner.ctx"], ctx)
        assert saved["meta"]["fma_import"]["ctx_shape"] == [4, 32]
        assert saved["meta"]["fma_import"]["csc"] is False
        options = [
            "model.clip.model_name=tiny_clip", "model.clip.pretrained=None",
            f"+model.clip.model_config={TINY_JSON}", "model.n_ctx=4", "model.att_layers=2",
            "test_dataloader.num_workers=0", f"test_dataloader.dataset.data_root={voc}",
            "test_dataloader.dataset.split=train",
        ]  # fmt: skip
        argv = [str(VOC_CLS), str(ckpt), "--work-dir", str(tmp_path / f"w_{name}"),
                "--out", str(tmp_path / f"cams_{name}"), "--cfg-options", *options]  # fmt: skip
        assert load_tool("test").main(argv) == 0
        cams[name] = {p.stem: load_cam(p).cam for p in (tmp_path / f"cams_{name}").glob("*.npz")}
    logs = capfd.readouterr()
    assert "do not match exactly" not in logs.out + logs.err  # mmengine's shape/key warning
    assert sorted(cams["a"]) == sorted(cams["b"]) and len(cams["a"]) == 2
    assert any(not np.array_equal(cams["a"][k], cams["b"][k]) for k in cams["a"])  # ctx used


def test_a_checkpoint_that_is_not_a_prompt_checkpoint_fails_by_name(tmp_path, capsys) -> None:
    import torch

    src = tmp_path / "VOC" / "cls" / "checkpoints"
    src.mkdir(parents=True)
    torch.save({"backbone.w": torch.zeros(2)}, src / "other.pth")
    OF.write_official_prompts(src / "final.pth", torch.zeros(3, 4, 32))
    assert load_tool("import_official").main([str(tmp_path), str(tmp_path / "o"),
                                              "--no-progress"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "other.pth: not a prompt checkpoint" in err and "backbone.w" in err
    meta = torch.load(tmp_path / "o" / "VOC" / "cls" / "checkpoints" / "final.pth",
                      weights_only=True)["meta"]["fma_import"]  # fmt: skip
    assert (meta["csc"], meta["num_prompts"], meta["n_ctx"]) == (True, 3, 4)
