# Classification-task prompts on a custom dataset folder (docs/datasets.md, "Custom datasets"):
# the VOC12 recipe of fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py with the folder's
# classes.txt (or prompt_names.txt) as the CLIP foreground prompt names, its labels.csv /
# labels.json as image-level labels, every image (split "all") for training and CAMs, and CAM
# mIoU only when the folder has ground_truth/. Set data_root in all four places with
# --cfg-options (configs/pipelines/fma_custom.py does).
_base_ = ["./fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py"]
data_root = "data/custom"
model = dict(dataset="custom", dataset_root=data_root)
train_dataloader = dict(dataset=dict(type="CustomClsDataset", data_root=data_root, split="all"))
test_dataloader = dict(dataset=dict(type="CustomClsDataset", data_root=data_root, split="all"))
test_evaluator = dict(dataset="custom", dataset_root=data_root)
