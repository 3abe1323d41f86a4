# Demo (configs/pipelines/demo.py), stage I segmentation prompts: the VOC recipe (L_act against
# the coarse seeds, class-specific contexts, class token in front, 25 empty background prompts;
# CAA on the raw CAM, tau 0.5) on the demo's tiny CLIP, whole 96-pixel images (flips only),
# 100 iterations of 8 images with AdamW (lr 0.03; the raw CAMs of the tiny CLIP are about
# 1e-3, so L_act's gradients are too small for SGD in a few hundred steps); no colour jitter,
# rescale or crop. 100 iterations (about 8 epochs of the 96 train images): at 300 the fine
# seeds were no better (63.55 vs 63.90 mIoU) and the prompts had begun to copy the coarse
# seeds' mistakes (checkpoints every 50 iterations: fine seeds 62.8, 64.2, 60.0, 59.9, 60.5,
# 60.5 on an earlier demo set). Consumes <data_root>,
# the tiny CLIP and the coarse seeds (seed_dir); produces prompt checkpoints, then
# (tools/test.py) the CAMs of the fine seeds. Paths come from the pipeline.
_base_ = ["../stage1/fma-seg_prompt-clip-vit-b16_1xb16-17k_voc12.py"]
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
# Total batch of the demo: its batch_size on one process.
total_batch = 8
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        split="train",
        seed_dir="work_dirs/demo/seeds_coarse/seeds/train",
        pipeline=[
            dict(type="LoadImage"),
            dict(type="LoadSeed"),
            dict(type="RandomFlip", prob=0.5),
            dict(type="PackClsInputs"),
        ],
    ),
)
test_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, split="train"))
optim_wrapper = dict(optimizer=dict(_delete_=True, type="AdamW", lr=0.03, weight_decay=0.0))
param_scheduler = [
    dict(type="ConstantLR", factor=0.1, begin=0, end=5, by_epoch=False),
    dict(type="CosineAnnealingLR", T_max=95, eta_min=0.0, begin=5, end=100, by_epoch=False),
]
train_cfg = dict(max_iters=100)
default_hooks = dict(checkpoint=dict(interval=100), logger=dict(interval=50))
custom_hooks = []  # no progress bar in the pipeline's log
