# Stage I data on VOC12 (tools/train.py, tools/test.py). Consumes data/VOCdevkit/VOC2012 with
# cls_labels/train_aug.json (tools/prepare_voc.py). Training: random crops of train_aug;
# inference: full train_aug images rounded up to multiples of 16, CAM mIoU against the GT
# (the pipelines and loaders: configs/_base_/datasets/cls_224.py).
_base_ = ["./cls_224.py"]
dataset_type = "VOCClsDataset"
data_root = "data/VOCdevkit/VOC2012"
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split="train_aug"))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split="train_aug"))
test_evaluator = dict(dataset="voc12")
