# Stage II (tools/train.py, tools/test.py) on a custom dataset folder (docs/datasets.md, "Custom
# datasets"): the VOC recipe of mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py on
# the seeds of every image (split "all"), validated on splits/val.txt against ground_truth/,
# with its 50 queries and training pipeline (the authors', cited in the VOC base).
# The tools size the network for the folder's classes.txt and switch validation off (with a
# note) when the folder has no ground truth for the val split. Set data_root and seed_dir with
# --cfg-options (configs/pipelines/fma_custom.py does).
_base_ = ["./mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py"]
data_root = "data/custom"
seed_dir = "work_dirs/pipelines/fma_custom/fine_seeds/seeds/all"
train_dataloader = dict(
    dataset=dict(type="CustomSeedDataset", data_root=data_root, split="all", seed_dir=seed_dir)
)
val_dataloader = dict(dataset=dict(type="CustomSeedDataset", data_root=data_root, split="val"))
test_dataloader = val_dataloader
val_evaluator = dict(dataset="custom")
test_evaluator = val_evaluator
