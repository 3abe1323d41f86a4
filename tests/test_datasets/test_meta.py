"""Known answers for fma.datasets.meta (class lists, palettes, COCO id mapping, CLIP names)."""

from __future__ import annotations

import numpy as np
import pytest

from fma.datasets.meta import (
    COCO14,
    COCO80_IDS,
    COCO91_TO_81,
    DATASETS,
    IGNORE_INDEX,
    VOC12,
    bitwise_palette,
    get_dataset_meta,
)


def test_voc_palette_entries():
    pal = VOC12.palette
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert tuple(pal[0]) == (0, 0, 0)
    assert tuple(pal[1]) == (128, 0, 0)
    assert tuple(pal[2]) == (0, 128, 0)
    assert tuple(pal[15]) == (192, 128, 128)  # person
    assert tuple(pal[20]) == (0, 64, 128)  # tvmonitor
    assert tuple(pal[255]) == (224, 224, 192)  # ignore
    assert np.array_equal(COCO14.palette, pal)
    assert np.array_equal(bitwise_palette(21), pal[:21])


def test_class_counts_and_names():
    assert VOC12.num_classes == 21 and COCO14.num_classes == 81
    assert VOC12.class_names[0] == COCO14.class_names[0] == "background"
    assert VOC12.class_names[15] == "person" and VOC12.class_names[20] == "tvmonitor"
    assert COCO14.class_names[1] == "person" and COCO14.class_names[80] == "toothbrush"
    assert COCO14.class_names[12] == "stop sign"
    assert len(set(COCO14.class_names)) == 81 and len(set(VOC12.class_names)) == 21
    assert VOC12.ignore_index == COCO14.ignore_index == IGNORE_INDEX == 255


def test_coco91_to_81():
    assert len(COCO91_TO_81) == 80 and len(COCO80_IDS) == 80
    assert COCO91_TO_81[1] == 1
    assert COCO91_TO_81[11] == 11  # fire hydrant
    assert COCO91_TO_81[13] == 12  # stop sign, after the gap at 12
    assert COCO91_TO_81[90] == 80  # toothbrush
    for gap in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91, 0):
        assert gap not in COCO91_TO_81
    assert sorted(COCO91_TO_81.values()) == list(range(1, 81))


def test_clip_name_lists():
    assert len(VOC12.clip_fg_names) == 20 and len(VOC12.clip_bg_names) == 25
    assert len(COCO14.clip_fg_names) == 80 and len(COCO14.clip_bg_names) == 23
    assert VOC12.clip_fg_names[2] == "bird avian"
    assert VOC12.clip_fg_names[14] == "person with clothes,people,human"
    assert VOC12.clip_fg_names[19] == "tvmonitor screen"
    c = dict(zip(COCO14.fg_names, COCO14.clip_fg_names, strict=True))
    assert c["snowboard"] == "sknowboard"  # sic, as in CLIP-ES
    assert c["tv"] == "tvmonitor screen"
    assert c["baseball glove"] == "glove" and c["spoon"] == "dessertspoon"
    assert c["hair drier"] == "hairdrier,blowdrier" and c["giraffe"] == "giraffe"
    renamed = [k for k, v in c.items() if k != v]
    assert len(renamed) == 18
    assert "keyboard" not in COCO14.clip_bg_names and "sign" not in COCO14.clip_bg_names
    assert [n for n in VOC12.clip_bg_names if n not in ("keyboard", "sign")] == list(
        COCO14.clip_bg_names
    )


def test_get_dataset_meta_aliases():
    assert get_dataset_meta("voc") is VOC12 and get_dataset_meta("VOC2012") is VOC12
    assert get_dataset_meta("coco") is COCO14 and set(DATASETS) == {"voc12", "coco14"}
    with pytest.raises(KeyError, match="unknown dataset"):
        get_dataset_meta("cityscapes")
