# Pipeline (tools/reproduce.py): a smoke run of configs/pipelines/fma_custom.py without weights,
# on CPU, in a minute or two for a few dozen images: superpixels instead of SAM, a tiny CLIP
# with random weights (2 prompt iterations per task), a tiny DeepLabV3+ (2 iterations). It
# checks that your folder goes through every step (masks, both prompt tasks, CAMs, coarse and
# fine seeds, stage II, evaluation where ground truth exists); its numbers mean nothing.
#   python tools/reproduce.py configs/pipelines/fma_custom_tiny.py --data-root ROOT
_base_ = ["./fma_custom.py"]
pipeline = dict(
    name="fma_custom_tiny",
    description="smoke run of fma_custom without weights (superpixels, tiny random CLIP, tiny "
    "DeepLabV3+); checks the machinery on your folder, the numbers mean nothing",
)
work_dir = "work_dirs/pipelines/fma_custom_tiny"
vars = dict(
    clip="None",
    sam="None",
    sam_config="configs/sam/superpixels_voc12.py",
    cls_config="configs/stage1/fma-cls_prompt-clip-tiny_1xb2-2it_custom.py",
    cls_iters="2",
    seg_config="configs/stage1/fma-seg_prompt-clip-tiny_1xb2-2it_custom.py",
    seg_iters="2",
    stage2="configs/stage2/deeplabv3plus_r18-tiny_1xb2-cpu_custom-seed-64x64.py",
)
