# Tool: tools/make_seeds.py. Coarse seeds of VOC12 train_aug by SAMS (method-fma 9.1, 9.2).
# Inputs: CAA-refined CAMs of the classification-task prompts and the SAM quasi-superpixels.
# Outputs: work_dirs/sams-coarse_voc12/seeds/train_aug/<id>.png + manifest.json, the labels of
# the segmentation-task prompt training.
seeding = dict(
    cam_dir="work_dirs/fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12/cams/train_aug",
    mask_dir="work_dirs/sam_vit-h_amg-fma_voc12/masks/train_aug",
    dataset="voc12",
    split="train_aug",
    data_root="data/VOCdevkit/VOC2012",  # images for --show-dir only
    gamma=0.6,
    norm_first=True,
    bg_method="pow",
    priority=("level_bigger", "conf_bigger"),
    gather="mean",
)
