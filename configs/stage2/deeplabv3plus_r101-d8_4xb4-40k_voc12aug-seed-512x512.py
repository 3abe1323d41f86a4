# Stage II (tools/train.py, tools/test.py): DeepLabV3+ R101 on VOC 2012 train_aug seeds, 40k
# iterations, total batch 16 (4 GPUs x 4), 512x512 crops, best checkpoint by val mIoU (the cheaper
# comparison). Consumes the fine seeds of configs/seeding/sams-fine_voc12.py (seed_dir); produces
# work_dirs/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-seed-512x512/ (checkpoints,
# best_mIoU_iter_*.pth, metrics_*.json naming the seeds).
_base_ = [
    "../_base_/models/deeplabv3plus_r101-d8.py",
    "../_base_/datasets/voc12aug_seed.py",
    "../_base_/seed_runtime.py",
]
model = dict(decode_head=dict(num_classes=21), auxiliary_head=dict(num_classes=21))
seed_dir = "work_dirs/sams-fine_voc12/seeds/train_aug"
train_dataloader = dict(dataset=dict(seed_dir=seed_dir))
param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
