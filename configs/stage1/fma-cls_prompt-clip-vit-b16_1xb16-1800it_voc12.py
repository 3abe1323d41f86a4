# Classification-task prompts on VOC12 (L_cls), then CAA-refined CAMs (tau 0.4, on the score).
# Train: tools/train.py; CAMs: tools/test.py <this> work_dirs/<stem>/iter_1800.pth ->
# work_dirs/<stem>/cams/train_aug (read by configs/seeding/sams-coarse_voc12.py).
_base_ = [
    "../_base_/models/prompt-clip_vit-b16.py",
    "../_base_/datasets/voc12_cls.py",
    "../_base_/schedules/prompt_sgd-cosine.py",
    "../_base_/default_runtime.py",
]
model = dict(ctx_std=0.015)  # configs/VOC/cls/cfg.py: model.ini.ctx_cfg.ctx_std = 0.015
