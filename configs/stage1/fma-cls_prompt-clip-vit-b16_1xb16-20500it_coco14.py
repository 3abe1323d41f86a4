# Classification-task prompts on COCO14 (L_cls); the paper uses iter_6150.pth. CAMs are
# CAA-refined on the raw CAM (tau 0.6): tools/test.py <this> work_dirs/<stem>/iter_6150.pth ->
# work_dirs/<stem>/cams/train (read by configs/seeding/sams-coarse_coco14.py).
_base_ = [
    "../_base_/models/prompt-clip_vit-b16.py",
    "../_base_/datasets/coco14_cls.py",
    "../_base_/schedules/prompt_sgd-cosine.py",
    "../_base_/default_runtime.py",
]
model = dict(
    dataset="coco14",
    ctx_std=0.015,  # configs/COCO/cls/cfg.py: model.ini.ctx_cfg.ctx_std = 0.015
    # 4 sub-batches of 4 images, each normalised on its own (the original's
    # loader.train.sub_iter_num = 4, configs/clip_cam/coco,cl_loss/scale/base.py).
    sub_batches=4,
    caa=dict(sinkhorn_iters=1, power=2, box_thresh=0.6, apply_to="cam"),
)
param_scheduler = [
    dict(type="ConstantLR", factor=0.01, begin=0, end=1000, by_epoch=False),
    dict(type="CosineAnnealingLR", T_max=19500, eta_min=0.0, begin=1000, end=20500, by_epoch=False),
]
train_cfg = dict(max_iters=20500)
default_hooks = dict(checkpoint=dict(interval=2050))
