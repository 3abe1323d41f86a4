# Demo (configs/pipelines/demo.py), stage II: the tiny random-weight DeepLabV3+ (ResNet-18-V1c,
# 8 base channels) of configs/stage2/deeplabv3plus_r18-tiny_1xb2-cpu_voc12-seed-64x64.py, trained
# for 480 iterations of 8 crops (64x64 from the 96-pixel demo
# images) on the fine seeds and evaluated on val by tools/test.py (no validation during
# training). Consumes <data_root> and seed_dir; produces iter_480.pth, then metrics_val.json
# and prediction PNGs.
_base_ = ["../stage2/deeplabv3plus_r18-tiny_1xb2-cpu_voc12-seed-64x64.py"]
data_root = "work_dirs/demo/data/VOC2012"
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="RandomResize", scale=(96, 96), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type="RandomCrop", crop_size=(64, 64), cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="PackSegInputs"),
]
# Total batch of the demo: its batch_size on one process.
total_batch = 8
train_dataloader = dict(
    batch_size=8,
    dataset=dict(
        data_root=data_root,
        split="train",
        seed_dir="work_dirs/demo/seeds_fine/seeds/train",
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(dataset=dict(data_root=data_root, split="val", pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=480, by_epoch=False)]
train_cfg = dict(max_iters=480, val_interval=10**9, val_begin=10**9)
default_hooks = dict(
    checkpoint=dict(interval=480, save_best=None, max_keep_ckpts=1), logger=dict(interval=30)
)
