# Stage II (tools/train.py, tools/test.py): Mask2Former Swin-L (IN-22k) on VOC 2012 train_aug seeds,
# 80k iterations, total batch 4 (2 GPUs x 2), 512x512 crops, best checkpoint by val mIoU (the
# paper's network). Consumes the fine seeds of configs/seeding/sams-fine_voc12.py (seed_dir);
# produces work_dirs/mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512/ (checkpoints,
# best_mIoU_iter_*.pth, metrics_*.json naming the seeds).
_base_ = ["../_base_/stage2/mask2former_swin-l_voc12aug.py"]
seed_dir = "work_dirs/sams-fine_voc12/seeds/train_aug"
train_dataloader = dict(dataset=dict(seed_dir=seed_dir))
