# Stage I without weights, on CPU: the VOC classification-prompt recipe on a tiny CLIP (open_clip
# model classes, architecture tests/data/tiny_clip.json: 2-layer ViT with 16-pixel patches and a
# 2-layer text tower) with random weights, trained for 20 iterations on the bundled synthetic
# VOC-style set. It checks the machinery (training, checkpoints, CAM files, manifest, CAM mIoU),
# not the method: random weights give meaningless CAMs. Set model.clip.pretrained to a locally
# saved weights file of the same architecture to load it instead.
# Consumes work_dirs/demo/data/VOC2012 (tools/demo.py, then tools/prepare_voc.py for
# cls_labels/train.json); run from the repository root (README, "Stage I without weights").
_base_ = ["./fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py"]
data_root = "work_dirs/demo/data/VOC2012"
model = dict(
    clip=dict(
        model_name="tiny_clip", pretrained=None, quick_gelu=True,
        model_config="tests/data/tiny_clip.json",
    ),
    n_ctx=4,
    att_layers=2,
)  # fmt: skip
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="RandomColorJitter"),
    dict(type="RandomRescale", low=64, high=96, short_min=64),
    dict(type="RandomCrop", size=64),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackClsInputs"),
]
# Total batch of this smoke config: its batch_size on one process.
total_batch = 2
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, split="train", pipeline=train_pipeline),
)
test_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, split="train"))
param_scheduler = [
    dict(type="ConstantLR", factor=0.01, begin=0, end=5, by_epoch=False),
    dict(type="CosineAnnealingLR", T_max=15, eta_min=0.0, begin=5, end=20, by_epoch=False),
]
train_cfg = dict(max_iters=20)
default_hooks = dict(checkpoint=dict(interval=10), logger=dict(interval=5))
