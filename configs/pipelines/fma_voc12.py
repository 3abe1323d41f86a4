# Pipeline (tools/reproduce.py): FMA-WSSS on PASCAL VOC 2012, method-fma section 1, steps 1-10
# (the step list: configs/pipelines/_base_/fma.py). Consumes the VOC layout of
# tools/prepare_voc.py (train_aug list, cls_labels, SBD ground truth SegmentationClassAug for the
# seed evaluation), CLIP ViT-B/16 and SAM ViT-H weights. Produces everything under work_dir: SAM
# masks, prompts, CAMs, coarse and fine seeds, the stage II network and the metrics files that
# configs/metafile.yml checks (--verify).
_base_ = ["./_base_/fma.py"]
pipeline = dict(
    name="fma_voc12",
    description="FMA-WSSS on VOC12: SAM masks, cls prompts, CAMs + CAA, coarse seeds, seg "
    "prompts, CAMs + CAA, fine seeds, Mask2Former Swin-L, val evaluation",
)
work_dir = "work_dirs/pipelines/fma_voc12"
vars = dict(
    data_root="data/VOCdevkit/VOC2012",
    dataset="voc12",
    train_split="train_aug",
    split_file="{data_root}/ImageSets/Segmentation/train_aug.txt",
    val_file="{data_root}/ImageSets/Segmentation/val.txt",
    # Seeds are scored on train_aug against SegmentationClassAug (method-fma 10.1); without the
    # SBD ground truth use --set seed_eval_split=train (the 1,464 VOC train images).
    seed_eval_split="train_aug",
    stage2="configs/stage2/mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py",
    # The stage configs and their final checkpoints (other recipes, tiny models in tests).
    sam_config="configs/sam/sam_vit-h_amg-fma_voc12.py",
    cls_config="configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py",
    cls_iters="1800",
    seg_config="configs/stage1/fma-seg_prompt-clip-vit-b16_1xb16-17k_voc12.py",
    seg_iters="17000",
    coarse_config="configs/seeding/sams-coarse_voc12.py",  # gamma 0.6
    fine_config="configs/seeding/sams-fine_voc12.py",  # gamma 0.7
)
# Checked before the first step (fma/pipeline/preflight.py, with the steps' inputs and weights).
checks = [dict(type="dataset", dataset="voc12", root="{data_root}", splits="train_aug,val",
               labels="train_aug", ground_truth="{seed_eval_split},val")]  # fmt: skip
