# Demo (configs/pipelines/demo.py), tools/make_seeds.py: coarse SAMS seeds (the VOC values,
# gamma 0.6) from the classification-prompt CAMs and the masks. Paths come from the pipeline.
_base_ = ["../seeding/sams-coarse_voc12.py"]
seeding = dict(
    cam_dir="work_dirs/demo/stage1_cls/cams/train",
    mask_dir="work_dirs/demo/masks/masks/train",
    split="train",
    data_root="work_dirs/demo/data/VOC2012",
)
