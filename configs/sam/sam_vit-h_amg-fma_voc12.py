# Tool: tools/gen_sam_masks.py. SAM ViT-H quasi-superpixels of VOC12 (method-fma 8.1-8.3).
# Inputs: VOC2012 JPEGImages of the split (train_aug; --split val/test) and the ViT-H checkpoint.
# Outputs: work_dirs/sam_vit-h_amg-fma_voc12/masks/<split>/<id>.npz + manifest.json, the
# masks read by SAMS seeding.
sam_masks = dict(
    dataset="voc12",
    data_root="data/VOCdevkit/VOC2012",
    split="train_aug",
    source="sam",
    model_type="vit_h",
    checkpoint="pretrains/sam_vit_h_4b8939.pth",
    preset="fma",  # sam_heavy + level offsets (0, 0, 0.1) / NMS (0, 0, 1) + containment 0.3
    precision="fp32",  # the paper setting; "bf16" (or "fp16" on CUDA) for speed, see docs
    device="auto",
    file_format="npz",  # <id>.npz (version 2); "json.gz" / "json": segment-anything's records
)
