# Tiny CPU config of the DeepLabV3+ family for tests and smoke runs (tools/train.py,
# tools/test.py): random-weight ResNet-18-V1c with 8 base channels, 64x64 crops, 2 iterations.
# Consumes a VOC-layout folder (data_root) and a seed folder (seed_dir), both usually given with
# --cfg-options; produces the same files as the real configs. Not a meaningful network.
_base_ = [
    "../_base_/models/deeplabv3plus_r101-d8.py",
    "../_base_/datasets/voc12aug_seed.py",
    "../_base_/seed_runtime.py",
]
crop_size = (64, 64)
norm_cfg = dict(type="BN", requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(depth=18, base_channels=8, stem_channels=8, norm_cfg=norm_cfg, init_cfg=None),
    decode_head=dict(
        num_classes=21, in_channels=64, c1_in_channels=8, c1_channels=8, channels=16,
        dilations=(1, 2, 3, 4),
        norm_cfg=norm_cfg,
    ),
    auxiliary_head=dict(num_classes=21, in_channels=32, channels=8, norm_cfg=norm_cfg),
)  # fmt: skip
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="RandomResize", scale=(128, 64), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
# Total batch of this smoke config: its batch_size on one process.
total_batch = 2
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(pipeline=train_pipeline)
)
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(256, 64), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="PackSegInputs"),
]
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(
        type="TestTimeAug",
        transforms=[
            [
                dict(type="Resize", scale_factor=0.75, keep_ratio=True),
                dict(type="Resize", scale_factor=1.0, keep_ratio=True),
            ],
            [
                dict(type="RandomFlip", prob=0.0, direction="horizontal"),
                dict(type="RandomFlip", prob=1.0, direction="horizontal"),
            ],
            [dict(type="LoadAnnotations", reduce_zero_label=False)],
            [dict(type="PackSegInputs")],
        ],
    ),
]
param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=2, by_epoch=False)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1), logger=dict(interval=1))
env_cfg = dict(cudnn_benchmark=False)
