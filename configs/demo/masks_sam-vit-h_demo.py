# Demo with real SAM weights (tools/demo.py --sam PATH): SAM ViT-H quasi-superpixels with the
# FMA-WSSS preset, as configs/sam/sam_vit-h_amg-fma_voc12.py, on the demo pipeline's split.
# Consumes <data_root> JPEGImages and the checkpoint (sam_masks.checkpoint); produces the same
# files as masks_superpixels_demo.py.
_base_ = ["../sam/sam_vit-h_amg-fma_voc12.py"]
sam_masks = dict(data_root="work_dirs/demo/data/VOC2012", split="train")
