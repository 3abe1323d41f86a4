# Demo (configs/pipelines/demo.py), tools/make_seeds.py: fine SAMS seeds (the VOC values, gamma
# 0.7) from the segmentation-prompt CAMs and the same masks; the labels of stage II.
_base_ = ["../seeding/sams-fine_voc12.py"]
seeding = dict(
    cam_dir="work_dirs/demo/stage1_seg/cams/train",
    mask_dir="work_dirs/demo/masks/masks/train",
    split="train",
    data_root="work_dirs/demo/data/VOC2012",
)
