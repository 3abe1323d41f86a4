# Demo (configs/pipelines/demo.py), stage I classification prompts: the VOC recipe (L_cls, CAA on
# the score, tau 0.4) on the demo's tiny CLIP (fma.demo.tiny_clip: 1-layer ViT, 8-pixel patches,
# pretrained on synthetic captions), 96-pixel crops, 60 iterations of 8 images (lr 0.2; no colour
# jitter: colour is what tells the synthetic classes apart). Consumes
# <data_root> (fma.demo.data, or --data-root) and the tiny CLIP; produces prompt checkpoints, then
# (tools/test.py) CAMs of the train split. The pipeline sets every path with --cfg-options.
_base_ = ["../stage1/fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py"]
data_root = "work_dirs/demo/data/VOC2012"
clip_dir = "work_dirs/demo/tiny_clip"
model = dict(
    clip=dict(
        model_name="demo_tiny_clip", pretrained=clip_dir + "/demo_tiny_clip.pt", quick_gelu=True,
        model_config=clip_dir + "/demo_tiny_clip.json",
    ),
    n_ctx=8,
    att_layers=1,
)  # fmt: skip
crop = 96
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="RandomRescale", low=crop, high=crop * 5 // 4, short_min=crop),
    dict(type="RandomCrop", size=crop),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackClsInputs"),
]
# Total batch of the demo: its batch_size on one process.
total_batch = 8
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, split="train", pipeline=train_pipeline),
)
test_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, split="train"))
optim_wrapper = dict(optimizer=dict(lr=0.2))
param_scheduler = [
    dict(type="ConstantLR", factor=0.1, begin=0, end=5, by_epoch=False),
    dict(type="CosineAnnealingLR", T_max=55, eta_min=0.0, begin=5, end=60, by_epoch=False),
]
train_cfg = dict(max_iters=60)
default_hooks = dict(checkpoint=dict(interval=60), logger=dict(interval=20))
custom_hooks = []  # no progress bar in the pipeline's log
