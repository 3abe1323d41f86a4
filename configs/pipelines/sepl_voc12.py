# Pipeline (tools/reproduce.py): SEPL on VOC12 (method-sepl): the pseudo labels of any method
# plus SAM masks -> refined labels -> stage II. Consumes the VOC layout, a folder of pseudo-label
# PNGs (--set pseudo_labels=DIR, one <id>.png per image of `split`) and SAM ViT-H weights;
# produces the masks, the refined labels, their scores before and after refinement (on
# eval_split, the 1,464 VOC train images of the SEPL protocol) and the stage II network.
# Stage II (`stage2`): SEPL's segmentation numbers come from retraining each base method's own
# network on the refined labels, a DeepLab (method-sepl, T-seg), so the stage II that matches
# SEPL's protocol is fma's DeepLab, DeepLabV3+ R101 (a base method's exact DeepLab version is
# not shipped):
#   --set stage2=configs/stage2/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-seed-512x512.py
# The default, Mask2Former Swin-L, is FMA-WSSS's network: stronger, so its numbers are not
# comparable with SEPL's.
pipeline = dict(
    name="sepl_voc12",
    description="SEPL on VOC12: SAM masks, pseudo labels refined with them, stage II",
)
work_dir = "work_dirs/pipelines/sepl_voc12"
vars = dict(
    data_root="data/VOCdevkit/VOC2012",
    sam="pretrains/sam_vit_h_4b8939.pth",  # python tools/download.py sam
    pseudo_labels=None,  # required: --set pseudo_labels=DIR (e.g. TransCAM's labels)
    split="train_aug",  # the images refined and trained on (train: 1,464 images)
    eval_split="train",  # SEPL's protocol: VOC train vs SegmentationClass (method-sepl 4.2)
    sam_preset="sam_default",  # segment-anything's AMG defaults (method-sepl 2.1)
    method="max_iou_imp2",  # the official default merger
    # SEPL's protocol: configs/stage2/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-seed-512x512.py
    stage2="configs/stage2/mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py",
)
# Checked before the first step (fma/pipeline/preflight.py, with the steps' inputs and weights).
checks = [dict(type="dataset", dataset="voc12", root="{data_root}", splits="{split},val",
               ground_truth="{eval_split},val")]  # fmt: skip
_split_file = "{data_root}/ImageSets/Segmentation/{split}.txt"
# fmt: off
steps = [
    dict(
        name="sam_masks",
        label="SAM masks ({split}, {sam_preset})",
        tool="tools/gen_sam_masks.py",
        args=["configs/sam/sam_vit-h_amg-fma_voc12.py", "--split", "{split}", "--work-dir",
              "{work_dir}/sam", "--cfg-options", "sam_masks.data_root={data_root}",
              "sam_masks.checkpoint={sam}", "sam_masks.preset={sam_preset}"],
        inputs=[_split_file, "{sam}"],
        outputs=["{work_dir}/sam"],
        distributed=True,
    ),
    dict(
        name="pseudo_eval",
        label="pseudo labels vs ground truth (before SEPL)",
        tool="tools/eval_labels.py",
        args=["{pseudo_labels}", "--dataset", "voc12", "--split", "{eval_split}", "--data-root",
              "{data_root}", "--no-progress", "--json", "{work_dir}/eval/pseudo_{eval_split}.json"],
        inputs=["{pseudo_labels}"],
        outputs=["{work_dir}/eval/pseudo_{eval_split}.json"],
        metrics="{work_dir}/eval/pseudo_{eval_split}.json",
    ),
    dict(
        name="refine",
        label="SEPL refinement ({method})",
        tool="tools/refine_labels.py",
        args=["--labels", "{pseudo_labels}", "--masks", "{work_dir}/sam/masks/{split}",
              "--out", "{work_dir}/refined/{split}", "--dataset", "voc12", "--method", "{method}",
              "--workers", "4", "--image-list", _split_file, "--no-progress"],
        inputs=["{pseudo_labels}", "{work_dir}/sam/masks/{split}", _split_file],
        outputs=["{work_dir}/refined"],
    ),
    dict(
        name="refined_eval",
        label="refined labels vs ground truth (after SEPL)",
        tool="tools/eval_labels.py",
        args=["{work_dir}/refined/{split}", "--dataset", "voc12", "--split", "{eval_split}",
              "--data-root", "{data_root}", "--no-progress",
              "--json", "{work_dir}/eval/refined_{eval_split}.json"],
        inputs=["{work_dir}/refined/{split}"],
        outputs=["{work_dir}/eval/refined_{eval_split}.json"],
        metrics="{work_dir}/eval/refined_{eval_split}.json",
    ),
    dict(
        name="stage2_train",
        label="stage II training on the refined labels",
        tool="tools/train.py",
        args=["{stage2}", "--work-dir", "{work_dir}/stage2", "--resume", "--cfg-options",
              "train_dataloader.dataset.data_root={data_root}",
              "train_dataloader.dataset.split={split}",
              "train_dataloader.dataset.seed_dir={work_dir}/refined/{split}",
              "val_dataloader.dataset.data_root={data_root}"],
        inputs=["{work_dir}/refined/{split}", _split_file,
                "{data_root}/ImageSets/Segmentation/val.txt"],
        outputs=["{work_dir}/stage2"],
        distributed=True,
    ),
    dict(
        name="stage2_eval",
        label="stage II on val (single scale, best checkpoint)",
        tool="tools/test.py",
        args=["{stage2}", "{work_dir}/stage2/best_mIoU_iter_*.pth", "--work-dir",
              "{work_dir}/stage2_eval", "--cfg-options",
              "test_dataloader.dataset.data_root={data_root}"],
        inputs=["{work_dir}/stage2/best_mIoU_iter_*.pth",
                "{data_root}/ImageSets/Segmentation/val.txt"],
        outputs=["{work_dir}/stage2_eval"],
        metrics="{work_dir}/stage2_eval/metrics_val.json",
        distributed=True,
    ),
]
# fmt: on
