# Tool: tools/make_seeds.py. Fine seeds of VOC12 train_aug by SAMS (method-fma 9.1, 9.2).
# Inputs: CAA-refined CAMs of the segmentation-task prompts and the same SAM quasi-superpixels.
# Outputs: work_dirs/sams-fine_voc12/seeds/train_aug/<id>.png + manifest.json, the pseudo
# labels of stage II.
seeding = dict(
    cam_dir="work_dirs/fma-seg_prompt-clip-vit-b16_1xb16-17k_voc12/cams/train_aug",
    mask_dir="work_dirs/sam_vit-h_amg-fma_voc12/masks/train_aug",
    dataset="voc12",
    split="train_aug",
    data_root="data/VOCdevkit/VOC2012",  # images for --show-dir only
    gamma=0.7,
    norm_first=True,
    bg_method="pow",
    priority=("level_bigger", "conf_bigger"),
    gather="mean",
)
