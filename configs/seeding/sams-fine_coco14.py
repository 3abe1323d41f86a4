# Tool: tools/make_seeds.py. Fine seeds of COCO14 train by SAMS (method-fma 9.1, 9.2).
# Inputs: raw CAMs (no CAA refinement) of the segmentation-task prompts and the same SAM masks.
# Outputs: work_dirs/sams-fine_coco14/seeds/train/<id>.png + manifest.json, the pseudo labels
# of stage II.
seeding = dict(
    cam_dir="work_dirs/fma-seg_prompt-clip-vit-b16_1xb16-75k_coco14/cams/train",
    mask_dir="work_dirs/sam_vit-h_amg-fma_coco14/masks/train",
    dataset="coco14",
    split="train",
    data_root="data/coco2014",  # images for --show-dir only
    gamma=1.0,
    norm_first=True,
    bg_method="pow",
    priority=("level_bigger", "conf_bigger"),
    gather="mean",
)
