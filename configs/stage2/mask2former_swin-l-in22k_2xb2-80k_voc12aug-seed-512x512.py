# Stage II (tools/train.py, tools/test.py): Mask2Former Swin-L (IN-22k) on VOC 2012 train_aug seeds,
# 80k iterations, total batch 4 (2 GPUs x 2), 512x512 crops, best checkpoint by val mIoU (the
# paper's network). Consumes the fine seeds of configs/seeding/sams-fine_voc12.py (seed_dir);
# produces work_dirs/mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512/ (checkpoints,
# best_mIoU_iter_*.pth, metrics_*.json naming the seeds). "A_VOC" is the authors' config, cited in
# configs/_base_/models/mask2former_swin-l-in22k.py.
_base_ = [
    "../_base_/models/mask2former_swin-l-in22k.py",
    "../_base_/datasets/voc12aug_seed.py",
    "../_base_/seed_runtime.py",
]
crop_size = (512, 512)
model = dict(
    decode_head=dict(num_classes=21, loss_cls=dict(class_weight=[1.0] * 21 + [0.1])),
)
# The authors' training pipeline (A_VOC:150-163): the dataset's, then Pad to the crop size with
# pixel 0 / label 255 (A_VOC:161) before normalisation: padding is black, not the mean colour
# that the data preprocessor pads with after normalising (A_COCO has no Pad step).
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="RandomResize", scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="Pad", size=crop_size),  # A_VOC:161
    dict(type="PackSegInputs"),
]
seed_dir = "work_dirs/sams-fine_voc12/seeds/train_aug"
train_dataloader = dict(batch_size=2, dataset=dict(seed_dir=seed_dir, pipeline=train_pipeline))
param_scheduler = [dict(type="PolyLR", eta_min=0, power=0.9, begin=0, end=80000, by_epoch=False)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=80000, val_interval=5000)
default_hooks = dict(checkpoint=dict(interval=5000))
