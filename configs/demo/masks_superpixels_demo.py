# Demo (configs/pipelines/demo.py), tools/gen_sam_masks.py: the weight-free stand-in for SAM,
# Felzenszwalb superpixels at three scales as levels 0/1/2. Consumes <data_root> JPEGImages of the
# split; produces <work_dir>/masks/<split>/<id>.npz + manifest.json (SAM-mask format).
_base_ = ["../sam/superpixels_voc12.py"]
sam_masks = dict(data_root="work_dirs/demo/data/VOC2012", split="train", checkpoint=None)
# Scales 50/100/200 (the preset's 100/400/1600 are for 500-pixel VOC images): on the 96-pixel demo
# images the coarsest level of the preset merged objects with the background (2.2 segments per
# image; labelling each segment by its majority ground truth scores 57.9 mIoU), and SAMS paints
# that level over the others. At 200: 17 segments per image, 87.6 mIoU.
sam_masks.update(preset_overrides=dict(scales=(50.0, 100.0, 200.0)))
