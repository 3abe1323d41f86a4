# Stage II dataset (tools/train.py, tools/test.py): COCO 2014, trained on train with a seed
# folder as labels (seed_dir, set by the stage II config) and evaluated on the val ground truth
# (81 classes). Consumes data/coco2014 (tools/prepare_coco.py) and the seeds.
_base_ = ["./seed_512x512.py"]
num_classes = 81
data_root = "data/coco2014"
seed_dir = None  # the stage II config sets the folder of seed PNGs (absolute, or cwd-relative)
train_dataloader = dict(
    dataset=dict(type="COCOObjectDataset", data_root=data_root, split="train", seed_dir=seed_dir)
)
val_dataloader = dict(dataset=dict(type="COCOObjectDataset", data_root=data_root, split="val"))
test_dataloader = val_dataloader
val_evaluator = dict(dataset="coco14")
test_evaluator = val_evaluator
