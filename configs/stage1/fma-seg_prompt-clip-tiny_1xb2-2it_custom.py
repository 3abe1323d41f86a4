# Smoke-test config without weights, on CPU: fma-seg_prompt-clip-vit-b16_1xb16-17k_custom.py
# on a tiny CLIP with random weights
# (open_clip model classes, architecture tests/data/tiny_clip.json), 64-pixel crops, 2
# iterations. It checks that a custom folder runs through the machinery
# (configs/pipelines/fma_custom_tiny.py); its CAMs mean nothing. Run from the repository root.
_base_ = ["./fma-seg_prompt-clip-vit-b16_1xb16-17k_custom.py"]
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
    dict(type="LoadSeed"),
    dict(type="RandomRescale", low=64, high=96, short_min=64),
    dict(type="RandomCrop", size=64),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackClsInputs"),
]
# Total batch of this smoke config: its batch_size on one process.
total_batch = 2
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(pipeline=train_pipeline)
)
test_dataloader = dict(num_workers=0)
param_scheduler = [
    dict(type="ConstantLR", factor=0.01, begin=0, end=1, by_epoch=False),
    dict(type="CosineAnnealingLR", T_max=1, eta_min=0.0, begin=1, end=2, by_epoch=False),
]
train_cfg = dict(max_iters=2)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
