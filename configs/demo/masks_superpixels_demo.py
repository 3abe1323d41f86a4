# Demo (configs/pipelines/demo.py), tools/gen_sam_masks.py: the weight-free stand-in for SAM,
# Felzenszwalb superpixels at three scales as levels 0/1/2. Consumes <data_root> JPEGImages of the
# split; produces <work_dir>/masks/<split>/<id>.npz + manifest.json (SAM-mask format).
_base_ = ["../sam/superpixels_voc12.py"]
sam_masks = dict(data_root="work_dirs/demo/data/VOC2012", split="train", checkpoint=None)
