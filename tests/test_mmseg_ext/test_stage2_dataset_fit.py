"""A stage II config fits the dataset it reads: the network is sized for the dataset's classes
(VOC 21, COCO 81, any registered dataset) whatever count the config inherited, Mask2Former's
class-weight list is rebuilt, a validation set with another class count is refused, and the
evaluator records the dataset its data loader reads."""

from __future__ import annotations

import json

import pytest
from mmengine.config import Config
from stage2_helpers import STAGE2, TINY

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

from fma.datasets.meta import COCO14
from fma.engine.stage2 import adapt_to_custom_dataset, adapt_to_dataset
from fma.mmseg_ext import COCOObjectDataset, SegMetric, VOCSeedDataset
from fma.mmseg_ext.classes import DatasetClassesError, dataset_classes, fit_num_classes


def _switched(config, loaders=("train", "val", "test"), kind="COCOObjectDataset") -> Config:
    cfg = Config.fromfile(config)
    for loader in loaders:
        cfg[f"{loader}_dataloader"].dataset.type = kind
    return cfg


def test_the_tools_call_the_one_function():
    assert adapt_to_custom_dataset is adapt_to_dataset


@pytest.mark.parametrize("for_test", [False, True])
def test_tiny_voc_deeplab_on_coco_is_sized_for_81_classes(for_test):
    cfg = _switched(TINY["deeplabv3plus"], ("test",) if for_test else ("train", "val"))
    notes = []
    assert adapt_to_dataset(cfg, for_test=for_test, log=notes.append) == 81
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 81
    assert cfg.num_classes == 81
    loader = "test_dataloader" if for_test else "train_dataloader"
    assert notes == [
        f"note: the network is sized for the 81 classes of COCOObjectDataset ({loader}); "
        "the config said num_classes=21"
    ]


def test_tiny_voc_mask2former_on_coco_gets_82_class_weights():
    cfg = _switched(TINY["mask2former"])
    assert adapt_to_dataset(cfg, log=lambda _: None) == 81
    head = cfg.model.decode_head
    assert head.num_classes == 81 and head.loss_cls.class_weight == [1.0] * 81 + [0.1]


def test_an_override_of_num_classes_alone_gets_its_class_weights():
    """``model.decode_head.num_classes=81`` alone used to crash in mmdet's loss (index 81 of a
    22-entry weight list); the list is rebuilt from its own shape, without a note."""
    cfg = _switched(TINY["mask2former"])
    cfg.model.decode_head.num_classes = 81
    notes = []
    assert adapt_to_dataset(cfg, log=notes.append) == 81
    assert cfg.model.decode_head.loss_cls.class_weight == [1.0] * 81 + [0.1]
    assert notes == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("deeplabv3plus_r101-d8_4xb4-40k_voc12aug-seed-512x512.py", 21),
        ("deeplabv3plus_r101-d8_4xb4-80k_coco14-seed-512x512.py", 81),
        ("mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py", 21),
        ("mask2former_swin-l-in22k_2xb2-100k_coco14-seed-512x512.py", 81),
        ("deeplabv3plus_r18-tiny_1xb2-cpu_voc12-seed-64x64.py", 21),
        ("mask2former_swin-tiny_1xb2-cpu_voc12-seed-64x64.py", 21),
    ],
)
def test_configs_that_fit_their_dataset_are_left_as_they_are(config, expected):
    cfg = Config.fromfile(STAGE2 / config)
    before = cfg.model.to_dict()
    notes = []
    assert adapt_to_dataset(cfg, log=notes.append) == expected
    assert adapt_to_dataset(cfg, for_test=True, log=notes.append) == expected
    assert cfg.model.to_dict() == before and notes == []


def test_validation_on_a_dataset_with_other_classes_is_refused():
    cfg = _switched(TINY["deeplabv3plus"], ("train",))
    with pytest.raises(DatasetClassesError) as info:
        adapt_to_dataset(cfg, log=lambda _: None)
    message = str(info.value)
    assert "\n" not in message
    assert "COCOObjectDataset (81 classes)" in message
    assert "VOCSeedDataset (21 classes)" in message
    assert cfg.model.decode_head.num_classes == 21  # nothing changed


def test_class_weights_that_cannot_be_carried_over_are_refused():
    per_class = dict(decode_head=dict(type="Head", num_classes=3, loss_decode=[
        dict(type="CrossEntropyLoss", class_weight=[1.0, 2.0, 1.0])]))  # fmt: skip
    with pytest.raises(DatasetClassesError, match=r"Head\.loss_decode\.class_weight holds per"):
        fit_num_classes(per_class, 5)
    wrong_length = dict(num_classes=3, loss_cls=dict(class_weight=[1.0] * 7))
    with pytest.raises(DatasetClassesError, match="has 7 entries for num_classes=5"):
        fit_num_classes(wrong_length, 5)
    equal = dict(num_classes=3, loss_decode=dict(class_weight=[0.5] * 3), pretrained=None)
    assert fit_num_classes(equal, 5) == {3}
    assert equal == dict(num_classes=5, loss_decode=dict(class_weight=[0.5] * 5), pretrained=None)
    kept = dict(num_classes=3, loss_decode=dict(class_weight=[1.0, 2.0, 1.0]))
    assert fit_num_classes(kept, 3) == {3} and kept["loss_decode"]["class_weight"] == [1, 2, 1]


def test_dataset_classes_from_the_config(tmp_path):
    assert dataset_classes(dict(type="VOCSeedDataset"))[20] == "tvmonitor"
    assert dataset_classes(dict(type="COCOObjectDataset")) == COCO14.class_names
    assert len(dataset_classes(dict(type="ADE20KDataset"))) == 150  # mmseg's own
    wrapped = dict(type="RepeatDataset", times=2, dataset=dict(type="COCOObjectDataset"))
    assert len(dataset_classes(wrapped)) == 81
    concat = dict(type="ConcatDataset", datasets=[dict(type="VOCSeedDataset")] * 2)
    assert len(dataset_classes(concat)) == 21
    names = tmp_path / "names.txt"
    names.write_text("background\nroad\n")
    explicit = dict(type="VOCSeedDataset", metainfo=dict(classes=str(names)))
    assert dataset_classes(explicit) == ("background", "road")
    assert dataset_classes(dict(type="NoSuchDataset")) is None
    (tmp_path / "custom" / "images").mkdir(parents=True)
    (tmp_path / "custom" / "classes.txt").write_text("cat\ndog\n")
    custom = dict(type="CustomSeedDataset", data_root=str(tmp_path / "custom"))
    assert dataset_classes(custom) == ("background", "cat", "dog")


def test_dataset_metainfo_names_the_dataset():
    assert VOCSeedDataset.METAINFO["dataset"] == "voc12"
    assert COCOObjectDataset.METAINFO["dataset"] == "coco14"


def test_evaluator_records_the_dataset_of_its_loader(tmp_path):
    """A VOC evaluator (the tiny configs' ``dataset='voc12'``) given a COCO loader's metainfo
    records coco14 (it recorded voc12 beside 81 COCO class names)."""
    metric = SegMetric(dataset="voc12", split="val", metrics_file=str(tmp_path / "m.json"))
    metric.dataset_meta = dict(COCOObjectDataset.METAINFO)
    assert metric.dataset == "coco14"
    metric.write_metrics_file({"mIoU": 1.0}, 0)
    assert json.loads((tmp_path / "m.json").read_text())["dataset"] == "coco14"
    unset = SegMetric()
    unset.dataset_meta = dict(VOCSeedDataset.METAINFO)
    assert unset.dataset == "voc12"
    anonymous = SegMetric(dataset="ade20k")  # a dataset whose metainfo names no key
    anonymous.dataset_meta = dict(classes=("a", "b"), palette=[[0, 0, 0], [1, 1, 1]])
    assert anonymous.dataset == "ade20k"


def test_the_tools_name_a_class_mismatch_in_one_line(capsys):
    """tools/train.py with a COCO training set and the VOC validation set: one error line."""
    from tool_modules import load_tool

    argv = [str(TINY["deeplabv3plus"]), "--cfg-options",
            "train_dataloader.dataset.type=COCOObjectDataset"]  # fmt: skip
    with pytest.raises(SystemExit) as info:
        load_tool("train").main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "81 classes" in err[0]
