# Tool: tools/gen_sam_masks.py. Weight-free stand-in for SAM masks: Felzenszwalb superpixels at
# three scales as levels 0/1/2 (CPU-only runs, ablations, the demo).
# Inputs: VOC2012 JPEGImages of the split. Outputs: work_dirs/superpixels_voc12/masks/<split>/
# <id>.npz + manifest.json, in the same format as the SAM masks.
sam_masks = dict(
    dataset="voc12",
    data_root="data/VOCdevkit/VOC2012",
    split="train",
    source="superpixels",
    preset="felzenszwalb",  # or "slic"
)
