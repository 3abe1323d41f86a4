# Segmentation-task prompts on a custom dataset folder: the VOC12 recipe of
# fma-seg_prompt-clip-vit-b16_1xb16-17k_voc12.py (L_act against the coarse seeds, CAA on the raw
# CAM) with the folder's classes and labels, every image (split "all"). Consumes the coarse seeds
# of the custom pipeline (seed_dir); set data_root in all four places and seed_dir with
# --cfg-options (configs/pipelines/fma_custom.py does).
_base_ = ["./fma-seg_prompt-clip-vit-b16_1xb16-17k_voc12.py"]
data_root = "data/custom"
model = dict(dataset="custom", dataset_root=data_root)
train_dataloader = dict(
    dataset=dict(
        type="CustomClsDataset",
        data_root=data_root,
        split="all",
        seed_dir="work_dirs/pipelines/fma_custom/coarse_seeds/seeds/all",
    )
)
test_dataloader = dict(dataset=dict(type="CustomClsDataset", data_root=data_root, split="all"))
test_evaluator = dict(dataset="custom", dataset_root=data_root)
