# Tiny CPU config of the Mask2Former family for tests and smoke runs (tools/train.py,
# tools/test.py): random-weight Swin with 16 channels, 32-channel pixel decoder (deformable
# attention, mmcv's PyTorch path on CPU), 8 queries, 64x64 crops, 2 iterations. Consumes a
# VOC-layout folder (data_root) and a seed folder (seed_dir), usually given with --cfg-options.
_base_ = [
    "../_base_/models/mask2former_swin-l-in22k.py",
    "../_base_/datasets/voc12aug_seed.py",
    "../_base_/seed_runtime.py",
]
crop_size = (64, 64)
attn = dict(embed_dims=32, num_heads=2, attn_drop=0.0, proj_drop=0.0, batch_first=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        pretrain_img_size=64, embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
        window_size=4, drop_path_rate=0.0, init_cfg=None,
    ),
    decode_head=dict(
        num_classes=21, loss_cls=dict(class_weight=[1.0] * 21 + [0.1]),
        in_channels=[16, 32, 64, 128], feat_channels=32, out_channels=32, num_queries=8,
        pixel_decoder=dict(
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=32, num_heads=2, num_points=2),
                    ffn_cfg=dict(embed_dims=32, feedforward_channels=64),
                ),
            ),
            positional_encoding=dict(num_feats=16),
        ),
        positional_encoding=dict(num_feats=16),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=attn, cross_attn_cfg=attn,
                ffn_cfg=dict(embed_dims=32, feedforward_channels=64),
            ),
        ),
        train_cfg=dict(num_points=256),
    ),
)  # fmt: skip
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="RandomChoiceResize", scales=[48, 64, 80], resize_type="ResizeShortestEdge",
         max_size=256),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]  # fmt: skip
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
param_scheduler = [dict(type="PolyLR", eta_min=0, power=0.9, begin=0, end=2, by_epoch=False)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1), logger=dict(interval=1))
env_cfg = dict(cudnn_benchmark=False)
