# Stage II (tools/train.py, tools/test.py): Mask2Former Swin-L (IN-22k) on COCO 2014 train seeds (81
# classes), 100k iterations, total batch 4 (2 GPUs x 2), 512x512 crops, best checkpoint by val mIoU
# (the paper's). Consumes the fine seeds of configs/seeding/sams-fine_coco14.py (seed_dir); produces
# work_dirs/mask2former_swin-l-in22k_2xb2-100k_coco14-seed-512x512/ (checkpoints,
# best_mIoU_iter_*.pth, metrics_*.json naming the seeds). "A_COCO" is the authors' config, cited
# in configs/_base_/models/mask2former_swin-l-in22k.py; "A_DS" its dataset base
# configs/_base_/datasets/coco_seed.py of the same copy.
_base_ = [
    "../_base_/models/mask2former_swin-l-in22k.py",
    "../_base_/datasets/coco14_seed.py",
    "../_base_/seed_runtime.py",
]
model = dict(
    decode_head=dict(num_classes=81, loss_cls=dict(class_weight=[1.0] * 81 + [0.1])),
)
seed_dir = "work_dirs/sams-fine_coco14/seeds/train"
train_dataloader = dict(batch_size=2, dataset=dict(seed_dir=seed_dir))
# Validation during training on 5,000 val images, the test on all 40,504 (A_DS:53-75: the val
# loader reads imagesLists/val_5000.txt, the test loader the whole val2014 folder). fma's subset
# is the first 5,000 ids of the sorted ImageSets/val.txt (indices=5000), the list that
# tools/prepare_coco.py writes as ImageSets/val_5000.txt (docs/datasets.md, section 4.3); the
# authors' own list is not in their code, so the subsets differ (this only picks the checkpoint).
val_dataloader = dict(dataset=dict(indices=5000))  # all of val when it holds fewer
val_evaluator = dict(split="val_5000")
param_scheduler = [dict(type="PolyLR", eta_min=0, power=0.9, begin=0, end=100000, by_epoch=False)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=100000, val_interval=5000)
default_hooks = dict(checkpoint=dict(interval=5000))
