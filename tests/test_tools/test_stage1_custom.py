"""Stage I on a custom dataset folder with the tiny CLIP: prompt training and CAMs equal the VOC
dataset's on the same images (with the VOC CLIP-ES names in prompt_names.txt), and the prompt
names come from classes.txt otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from custom_folder import voc_to_custom
from test_stage1_tools import TINY_OPTIONS, VOC_CLS, _load_cams, voc, voc_ckpt  # noqa: F401
from tool_modules import load_tool

from fma.datasets.meta import VOC12
from fma.io import read_manifest

REPO = Path(__file__).resolve().parents[2]
CUSTOM_CLS = REPO / "configs" / "stage1" / "fma-cls_prompt-clip-vit-b16_1xb16-1800it_custom.py"
IDS = [f"synth_{i:03d}" for i in range(4)]


def _options(root: Path) -> list[str]:
    return [*TINY_OPTIONS, f"train_dataloader.dataset.data_root={root}",
            f"test_dataloader.dataset.data_root={root}", f"model.dataset_root={root}",
            f"test_evaluator.dataset_root={root}"]  # fmt: skip


def _train_and_cams(root: Path, work: Path) -> tuple[Path, dict]:
    argv = [str(CUSTOM_CLS), "--work-dir", str(work), "--cfg-options", *_options(root)]
    assert load_tool("train").main(argv) == 0
    ckpt, out = work / "iter_2.pth", work / "cams"
    argv = [str(CUSTOM_CLS), str(ckpt), "--work-dir", str(work), "--out", str(out)]
    assert load_tool("test").main([*argv, "--cfg-options", *_options(root)]) == 0
    return ckpt, _load_cams(out)


@pytest.mark.slow
def test_custom_folder_equals_voc(voc, voc_ckpt, tmp_path):  # noqa: F811
    import torch

    from fma._compat import mmengine_checkpoint_globals

    root = voc_to_custom(voc, IDS, tmp_path / "pets", prompt_names=VOC12.clip_fg_names)
    ckpt, cams = _train_and_cams(root, tmp_path / "work")
    voc_ckpt_path, voc_options = voc_ckpt
    ref_out = tmp_path / "voc_cams"
    argv = [str(VOC_CLS), str(voc_ckpt_path), "--work-dir", str(tmp_path / "vw"), "--out",
            str(ref_out), "--cfg-options", *voc_options]  # fmt: skip
    assert load_tool("test").main(argv) == 0
    with mmengine_checkpoint_globals():
        a = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        b = torch.load(voc_ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ref = _load_cams(ref_out)
    assert sorted(cams) == IDS and cams.keys() == ref.keys()
    for image_id, rec in cams.items():
        for key, value in rec.items():
            np.testing.assert_array_equal(value, ref[image_id][key], err_msg=f"{image_id} {key}")
    manifest = read_manifest(tmp_path / "work" / "cams")
    assert manifest.dataset == "custom" and manifest.class_names == list(VOC12.class_names)


def test_prompt_names_come_from_the_folder(voc, tmp_path):  # noqa: F811
    from fma.datasets.checks import DatasetCheckError
    from fma.datasets.custom import custom_dataset_meta
    from fma.datasets.voc import CustomClsDataset

    root = voc_to_custom(voc, IDS, tmp_path / "pets")
    meta = custom_dataset_meta(root)
    assert meta.clip_fg_names == VOC12.class_names[1:] and meta.clip_bg_names == VOC12.clip_bg_names
    ds = CustomClsDataset(str(root), with_gt=True)
    items = [ds.get_data_info(i) for i in range(len(ds))]
    assert [d["img_id"] for d in items] == IDS
    assert all(Path(d["gt_path"]).is_file() for d in items)
    assert ds.metainfo["classes"] == VOC12.class_names
    (root / "prompt_names.txt").write_text("a\nb\n")
    with pytest.raises(DatasetCheckError, match="2 prompt names for 20 classes"):
        custom_dataset_meta(root)
