# Stage II dataset (tools/train.py, tools/test.py): PASCAL VOC 2012, trained on train_aug with a
# seed folder as labels (seed_dir, set by the stage II config) and evaluated on the val ground
# truth (21 classes). Consumes data/VOCdevkit/VOC2012 (tools/prepare_voc.py) and the seeds.
_base_ = ["./seed_512x512.py"]
num_classes = 21
data_root = "data/VOCdevkit/VOC2012"
seed_dir = None  # the stage II config sets the folder of seed PNGs (absolute, or cwd-relative)
train_dataloader = dict(
    dataset=dict(type="VOCSeedDataset", data_root=data_root, split="train_aug", seed_dir=seed_dir)
)
val_dataloader = dict(dataset=dict(type="VOCSeedDataset", data_root=data_root, split="val"))
test_dataloader = val_dataloader
val_evaluator = dict(dataset="voc12")
test_evaluator = val_evaluator
