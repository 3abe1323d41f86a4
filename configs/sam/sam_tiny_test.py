# Tool: tools/gen_sam_masks.py. Smoke test of the SAM stage without weights: a tiny
# randomly initialised SAM (fma.sam.builder.build_tiny_sam) with the CPU "fast" preset.
# Inputs: VOC2012 JPEGImages of the split. Outputs: work_dirs/sam_tiny_test/masks/<split>/
# <id>.npz + manifest.json (meaningless masks, valid format).
sam_masks = dict(
    dataset="voc12",
    data_root="data/VOCdevkit/VOC2012",
    split="val",
    source="sam",
    model_type="tiny",
    preset="fast",
    device="cpu",
)
