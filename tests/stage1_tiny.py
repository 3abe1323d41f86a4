"""Stage I on CPU with the tiny CLIP: the real configs' ``--cfg-options`` for a fast run and a
small synthetic VOC tree with image-level labels (shared by the stage I tool tests)."""

from __future__ import annotations

from pathlib import Path

from fma.datasets.labels import image_labels_from_label_map, multi_hot_to_labels, save_image_labels
from fma.datasets.meta import VOC12
from fma.datasets.synthetic import make_synthetic_voc
from fma.io import read_label_map

REPO = Path(__file__).resolve().parents[1]
TINY_JSON = REPO / "tests" / "data" / "tiny_clip.json"
VOC_CLS = REPO / "configs" / "stage1" / "fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py"
# The tiny CLIP and a fast CPU run, as --cfg-options of the real configs.
TINY_OPTIONS = [
    "model.clip.model_name=tiny_clip",
    "model.clip.pretrained=None",
    f"+model.clip.model_config={TINY_JSON}",  # a key the configs do not hold: added with +
    "model.n_ctx=4",  # the tiny CLIP's prompt context is (4, 32)
    "model.att_layers=2",
    "train_dataloader.batch_size=2",
    "total_batch=2",  # the recipe's 16 would accumulate 8 micro-batches of 2
    "train_dataloader.num_workers=0",
    "train_dataloader.persistent_workers=False",
    "test_dataloader.num_workers=0",
    "train_cfg.max_iters=2",
    "default_hooks.logger.interval=1",
]


def labelled_synthetic_voc(folder: Path) -> Path:
    """A 4-image synthetic VOC2012 tree (96x128 images) with ``cls_labels/train.json``."""
    root = make_synthetic_voc(folder, num_images=4, seed=5)
    labels = {
        png.stem: multi_hot_to_labels(image_labels_from_label_map(read_label_map(png), 21))
        for png in sorted((root / "SegmentationClass").glob("*.png"))
    }
    save_image_labels(
        root / "cls_labels" / "train.json", labels, VOC12.class_names, "voc12", "train"
    )
    return root


def voc_options(voc: Path) -> list[str]:
    """:data:`TINY_OPTIONS` with the training and CAM data of ``voc`` (split ``train``)."""
    return [
        *TINY_OPTIONS,
        f"train_dataloader.dataset.data_root={voc}",
        "train_dataloader.dataset.split=train",
        f"test_dataloader.dataset.data_root={voc}",
        "test_dataloader.dataset.split=train",
    ]
