"""The Swin-L Mask2Former configs against the authors' stage II configs, and the authors'
checkpoint layout through the loading path of tools/test.py.

The authors' configs (a third-party copy of their code, ProjectDisR/FMA-WSSS, commits 128cd6d and
2e8d6ae: ``others/mmsegmentation/configs/m2f_psudo/m2f-sl22-bt4-80k-512x-VOC.py`` and
``m2f-sl22-bt4-100k-512x-COCO.py``) spell out the whole model. Their ``model`` dict is mmseg's
``mask2former_swin-b-in1k-384x384-pre_8xb2-160k_ade20k-640x640.py`` model with the Swin-L values
of ``mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py`` and three changes:
``num_queries=50`` (line 47), ``num_classes`` 21 / 81 (line 16) and the class weights that follow
from it (line 113). :data:`AUTHORS` restates those changes; the tests below compare fma's merged
configs with mmseg's own config plus exactly these changes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from stage2_helpers import STAGE2

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

from mmengine.config import Config

UPSTREAM_NAME = "mask2former/mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py"
VOC = STAGE2 / "mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py"
COCO = STAGE2 / "mask2former_swin-l-in22k_2xb2-100k_coco14-seed-512x512.py"
CUSTOM = STAGE2 / "mask2former_swin-l-in22k_2xb2-80k_custom-seed-512x512.py"

# What the authors' files change in mmseg's model: num_queries (line 47 of both files) and
# num_classes (line 16), with the class weights of line 113 following from it.
AUTHORS = {
    VOC.name: dict(num_queries=50, num_classes=21),
    COCO.name: dict(num_queries=50, num_classes=81),
}

# The authors' training pipelines (VOC file lines 150-163; COCO file lines 150-162, no Pad).
_RESIZE = dict(type="RandomResize", scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True)
_HEAD = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", reduce_zero_label=False),
         _RESIZE, dict(type="RandomCrop", crop_size=(512, 512), cat_max_ratio=0.75),
         dict(type="RandomFlip", prob=0.5), dict(type="PhotoMetricDistortion")]  # fmt: skip
PIPELINES = {
    VOC.name: [*_HEAD, dict(type="Pad", size=(512, 512)), dict(type="PackSegInputs")],
    COCO.name: [*_HEAD, dict(type="PackSegInputs")],
}


def _upstream() -> Config:
    """mmseg's own Swin-L Mask2Former config (the ``_base_`` of fma's, ``mmseg::`` + name)."""
    import mmseg

    path = Path(mmseg.__file__).parent / ".mim" / "configs" / UPSTREAM_NAME
    assert path.is_file(), f"{path}: mmseg installed without its configs"
    return Config.fromfile(path)


def _plain(obj):
    """Config values as plain Python (ConfigDict -> dict, tuples -> lists) for comparison."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if k != "_scope_"}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


@pytest.mark.parametrize("path", [VOC, COCO, CUSTOM], ids=lambda p: p.stem)
def test_num_queries_is_the_authors_50(path):
    head = Config.fromfile(path).model.decode_head
    assert head.type == "Mask2FormerHead"
    assert head.num_queries == 50


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_model_is_upstream_with_exactly_the_authors_changes(name):
    fma_model = _plain(Config.fromfile(STAGE2 / name).model)
    expected = _plain(_upstream().model)
    change = AUTHORS[name]
    expected["decode_head"].update(
        num_queries=change["num_queries"],
        num_classes=change["num_classes"],
    )
    expected["decode_head"]["loss_cls"]["class_weight"] = [1.0] * change["num_classes"] + [0.1]
    expected["data_preprocessor"]["size"] = [512, 512]  # the authors' crop_size (line 15)
    # The same weights file, kept locally (sha256-checked) instead of the URL (line 5).
    url = expected["backbone"]["init_cfg"]["checkpoint"]
    local = fma_model["backbone"]["init_cfg"]["checkpoint"]
    assert Path(local).name == Path(url).name
    expected["backbone"]["init_cfg"]["checkpoint"] = local
    assert fma_model == expected


def test_upstream_default_would_differ():
    """The check above can fail: mmseg's own value is 100 queries."""
    assert _upstream().model.decode_head.num_queries == 100


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_train_pipeline_is_the_authors(name):
    cfg = Config.fromfile(STAGE2 / name)
    assert _plain(cfg.train_dataloader.dataset.pipeline) == _plain(PIPELINES[name])
    test = [t["type"] for t in cfg.test_dataloader.dataset.pipeline]
    assert test == ["LoadImageFromFile", "Resize", "LoadAnnotations", "PackSegInputs"]
    resize = cfg.test_dataloader.dataset.pipeline[1]
    assert tuple(resize.scale) == (2048, 512) and resize.keep_ratio is True


def test_coco_validates_on_val_5000_and_tests_on_all_of_val():
    from fma.datasets.prepare_coco import VAL_SUBSET_SIZE

    cfg = Config.fromfile(COCO)
    val, test = cfg.val_dataloader.dataset, cfg.test_dataloader.dataset
    assert (val.split, val.indices) == ("val", VAL_SUBSET_SIZE) == ("val", 5000)
    assert test.split == "val" and "indices" not in test
    assert cfg.val_evaluator.split == "val_5000" and cfg.test_evaluator.split == "val"
    voc = Config.fromfile(VOC)
    assert "indices" not in voc.val_dataloader.dataset  # VOC val is 1,449 images: all of it


def test_coco_val_loader_reads_the_ids_of_val_5000(tmp_path):
    """The config's ``indices`` select exactly the ids tools/prepare_coco.py lists."""
    import json

    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    from PIL import Image

    import fma.mmseg_ext  # noqa: F401  (registers COCOObjectDataset)
    from fma.datasets.layout import read_split_file
    from fma.datasets.prepare_coco import prepare_coco, val_subset_ids

    init_default_scope("mmseg")

    rng = np.random.default_rng(3)
    numbers = rng.choice(600000, size=7, replace=False)
    stems = [f"COCO_val2014_{n:012d}" for n in numbers]  # unsorted, as in COCO's JSON
    (tmp_path / "val2014").mkdir()
    for stem in stems:
        Image.new("RGB", (4, 3)).save(tmp_path / "val2014" / f"{stem}.jpg")
    ann = tmp_path / "instances_val2014.json"
    images = [{"id": i, "file_name": f"{s}.jpg", "height": 3, "width": 4}
              for i, s in enumerate(stems)]  # fmt: skip
    ann.write_text(json.dumps({"images": images, "annotations": [],
                               "categories": [{"id": 1, "name": "person"}]}))  # fmt: skip
    prepare_coco(ann, "val", tmp_path)
    listed = read_split_file(tmp_path / "ImageSets" / "val_5000.txt")
    assert listed == sorted(stems)

    dataset_cfg = copy.deepcopy(Config.fromfile(COCO).val_dataloader.dataset)
    dataset_cfg.update(data_root=str(tmp_path), pipeline=[])

    def ids(dataset) -> list[str]:
        return [Path(dataset.get_data_info(i)["img_path"]).stem for i in range(len(dataset))]

    assert ids(DATASETS.build(dataset_cfg)) == listed  # indices=5000 > 7 images: all of them
    dataset_cfg.indices = 3
    assert ids(DATASETS.build(dataset_cfg)) == val_subset_ids(stems, 3) == sorted(stems)[:3]


def test_voc_pipeline_pads_black_with_ignore_labels(tmp_path):
    """The authors' Pad step (VOC file line 161) on a wide image: always shorter than the crop
    after RandomResize (height 40 -> 205 r for r in 0.5-2.0 when width 400 -> 2048 r), so the
    bottom rows are padding, pixel 0 before normalisation and label 255."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import TRANSFORMS
    from PIL import Image

    import fma.mmseg_ext  # noqa: F401

    init_default_scope("mmseg")
    img, seg = tmp_path / "wide.jpg", tmp_path / "wide.png"
    Image.new("RGB", (400, 40), (200, 150, 100)).save(img, quality=100)
    Image.new("L", (400, 40), 7).save(seg)
    steps = [TRANSFORMS.build(t) for t in Config.fromfile(VOC).train_dataloader.dataset.pipeline]
    for seed in range(4):
        np.random.seed(seed)  # RandomResize / RandomCrop / photometric draw from numpy
        data = dict(img_path=str(img), seg_map_path=str(seg), reduce_zero_label=False,
                    seg_fields=[])  # fmt: skip
        for step in steps:
            data = step(data)
        pixels = data["inputs"].numpy()
        labels = data["data_samples"].gt_sem_seg.data.numpy()[0]
        assert pixels.shape == (3, 512, 512) and labels.shape == (512, 512)
        rows = np.flatnonzero((labels == 7).any(axis=1))
        height = rows.max() + 1
        assert 100 <= height < 512 and rows.min() == 0
        assert (labels[height:] == 255).all() and (pixels[:, height:] == 0).all()
        assert (labels[:height] == 7).all()
