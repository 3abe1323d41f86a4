# Segmentation-task prompts on COCO14 (L_act against the coarse seeds, image-level positives);
# the paper uses iter_45000.pth and no CAA (raw CAMs). Consumes
# work_dirs/sams-coarse_coco14/seeds/train; CAMs -> work_dirs/<stem>/cams/train.
_base_ = [
    "../_base_/models/prompt-clip_vit-b16.py",
    "../_base_/datasets/coco14_cls.py",
    "../_base_/schedules/prompt_sgd-cosine.py",
    "../_base_/default_runtime.py",
]
model = dict(
    dataset="coco14",
    cls_loss_weight=0.0,
    act_loss_weights=(1.0, 1.0),
    act_positives="image",
    ctx_std=0.015,  # configs/COCO/seg/cfg.py: model.ini.ctx_cfg.ctx_std = 0.015
    # 8 sub-batches of 2 images, each normalised on its own (configs/COCO/seg/cfg.py:
    # loader.train.sub_iter_num = 8).
    sub_batches=8,
    caa=None,
)
train_dataloader = dict(
    dataset=dict(
        seed_dir="work_dirs/sams-coarse_coco14/seeds/train",
        pipeline=[
            dict(type="LoadImage"),
            dict(type="LoadSeed"),
            dict(type="RandomColorJitter"),
            dict(type="RandomRescale", low=318, high=531, short_min=224),
            dict(type="RandomCrop", size=224),
            dict(type="RandomFlip", prob=0.5),
            dict(type="PackClsInputs"),
        ],
    )
)
param_scheduler = [
    dict(type="ConstantLR", factor=0.01, begin=0, end=1000, by_epoch=False),
    dict(type="CosineAnnealingLR", T_max=74000, eta_min=0.0, begin=1000, end=75000, by_epoch=False),
]
train_cfg = dict(max_iters=75000)
default_hooks = dict(checkpoint=dict(interval=7500))
