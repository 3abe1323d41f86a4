# Tool: tools/make_seeds.py. Coarse seeds of COCO14 train by SAMS (method-fma 9.1, 9.2).
# Inputs: CAA-refined CAMs of the classification-task prompts and the SAM quasi-superpixels.
# Outputs: work_dirs/sams-coarse_coco14/seeds/train/<id>.png + manifest.json, the labels of
# the segmentation-task prompt training.
seeding = dict(
    cam_dir="work_dirs/fma-cls_prompt-clip-vit-b16_1xb16-20500it_coco14/cams/train",
    mask_dir="work_dirs/sam_vit-h_amg-fma_coco14/masks/train",
    dataset="coco14",
    split="train",
    data_root="data/coco2014",  # images for --show-dir only
    # The original picked it from {0.3, 0.4, 0.5} against GT; we fix it and do not search.
    gamma=0.4,
    norm_first=True,
    bg_method="pow",
    priority=("level_bigger", "conf_bigger"),
    gather="mean",
)
