# Stage I data on COCO14 (tools/train.py, tools/test.py). Consumes the COCO folder written by
# tools/prepare_coco.py (train2014 images, cls_labels/train.json). Training: random crops of
# train; inference: full train images rounded up to multiples of 16, CAM mIoU against the GT
# (the pipelines and loaders: configs/_base_/datasets/cls_224.py).
_base_ = ["./cls_224.py"]
dataset_type = "COCOClsDataset"
data_root = "data/coco2014"
# The authors' COCO rescale range (docs/method-fma.md, the stage I recipe table).
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="RandomColorJitter"),
    dict(type="RandomRescale", low=318, high=530, short_min=224),
    dict(type="RandomCrop", size=224),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackClsInputs"),
]
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split="train", pipeline=train_pipeline)
)
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split="train"))
test_evaluator = dict(dataset="coco14")
