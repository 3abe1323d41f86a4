"""Class metadata as data: names, palettes, ignore index and the CLIP prompt name lists.

Two built-in datasets:

* ``voc12``: PASCAL VOC 2012, 21 classes (0 = background, 1..20 in the standard VOC order).
* ``coco14``: COCO 2014 object segmentation, 81 classes (0 = background, 1..80 = the 80 COCO
  categories in COCO order, mapped from COCO's 91 category ids by :data:`COCO91_TO_81`).

Ground truth uses 255 as ignore. ``clip_fg_names`` / ``clip_bg_names`` are the CLIP-ES class and
background name lists used to build text prompts (method-fma 3.4); they are *prompt text*, not
the dataset's official names.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fma.io.label_maps import bitwise_palette

__all__ = [
    "COCO14",
    "COCO80_IDS",
    "COCO91_TO_81",
    "DATASETS",
    "IGNORE_INDEX",
    "SPLIT_SIZES",
    "VOC12",
    "DatasetMeta",
    "get_dataset_meta",
]

IGNORE_INDEX = 255


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
    """Everything the stages need to know about a dataset's label space."""

    name: str  # key used on the command line and in manifests
    class_names: tuple[str, ...]  # official names, index order, [0] = "background"
    clip_fg_names: tuple[str, ...]  # prompt names for classes 1..C-1 (same order)
    clip_bg_names: tuple[str, ...]  # background prompt names
    palette: np.ndarray = dataclasses.field(repr=False, compare=False)  # (256, 3) uint8
    ignore_index: int = IGNORE_INDEX  # label ignored in ground truth / seeds

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return len(self.class_names)

    @property
    def fg_names(self) -> tuple[str, ...]:
        """Official foreground names (classes 1..C-1)."""
        return self.class_names[1:]

    def __post_init__(self) -> None:
        if len(self.clip_fg_names) != len(self.class_names) - 1:
            raise ValueError(
                f"{self.name}: {len(self.clip_fg_names)} CLIP names for "
                f"{len(self.class_names) - 1} foreground classes"
            )


VOC12_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

# CLIP-ES names (method-fma 3.4).
VOC12_CLIP_FG = (
    "aeroplane", "bicycle", "bird avian", "boat", "bottle", "bus", "car", "cat", "chair seat",
    "cow", "diningtable", "dog", "horse", "motorbike", "person with clothes,people,human",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor screen",
)  # fmt: skip

VOC12_CLIP_BG = (
    "ground", "land", "grass", "tree", "building", "wall", "sky", "lake", "water", "river", "sea",
    "railway", "railroad", "keyboard", "helmet", "cloud", "house", "mountain", "ocean", "road",
    "rock", "street", "valley", "bridge", "sign",
)  # fmt: skip

COCO80_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

# COCO category ids (1..90, with gaps) of the 80 categories, in COCO order.
COCO80_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)  # fmt: skip

#: COCO category id -> 81-class index (1..80); background is 0.
COCO91_TO_81: dict[int, int] = {cid: i + 1 for i, cid in enumerate(COCO80_IDS)}

# CLIP-ES COCO names (method-fma 3.4): official names except the listed deviations.
_COCO_CLIP_RENAME = {
    "person": "person with clothes,people,human",
    "motorcycle": "motorbike",
    "airplane": "aeroplane",
    "bird": "bird avian",
    "backpack": "backpack,bag",
    "umbrella": "umbrella,parasol",
    "handbag": "handbag,purse",
    "tie": "necktie",
    "snowboard": "sknowboard",  # sic, kept as in CLIP-ES / FMA-WSSS
    "baseball glove": "glove",
    "spoon": "dessertspoon",
    "chair": "chair seat",
    "couch": "sofa",
    "potted plant": "pottedplant",
    "dining table": "diningtable",
    "tv": "tvmonitor screen",
    "remote": "remote control",
    "hair drier": "hairdrier,blowdrier",
}
COCO14_CLIP_FG = tuple(_COCO_CLIP_RENAME.get(n, n) for n in COCO80_CLASSES)
COCO14_CLIP_BG = tuple(n for n in VOC12_CLIP_BG if n not in ("keyboard", "sign"))

VOC12 = DatasetMeta(
    name="voc12",
    class_names=VOC12_CLASSES,
    clip_fg_names=VOC12_CLIP_FG,
    clip_bg_names=VOC12_CLIP_BG,
    palette=bitwise_palette(),
)

COCO14 = DatasetMeta(
    name="coco14",
    class_names=("background", *COCO80_CLASSES),
    clip_fg_names=COCO14_CLIP_FG,
    clip_bg_names=COCO14_CLIP_BG,
    palette=bitwise_palette(),
)

DATASETS: dict[str, DatasetMeta] = {"voc12": VOC12, "coco14": COCO14}
_ALIASES = {
    "voc": "voc12",
    "voc2012": "voc12",
    "voc12aug": "voc12",
    "coco": "coco14",
    "coco2014": "coco14",
}


def get_dataset_meta(name: str) -> DatasetMeta:
    """Look up a built-in dataset by key (``voc12``, ``coco14``; aliases ``voc``, ``coco``)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise KeyError(
            f"unknown dataset {name!r}; available: {sorted(DATASETS)} "
            "(for your own data use dataset 'custom', see docs/datasets.md)"
        )
    return DATASETS[key]


#: Image counts of the official splits (VOC 2012 with SBD's train_aug, COCO 2014); the published
#: numbers are on these. Keys: (dataset, split).
SPLIT_SIZES: dict[tuple[str, str], int] = {
    ("voc12", "train"): 1464,
    ("voc12", "val"): 1449,
    ("voc12", "train_aug"): 10582,
    ("coco14", "train"): 82783,
    ("coco14", "val"): 40504,
}
