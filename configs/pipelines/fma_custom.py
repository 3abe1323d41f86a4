# Pipeline (tools/reproduce.py): FMA-WSSS on your own folder of images with image-level tags
# (docs/datasets.md, "Custom datasets"; README, "Your own data"):
#   python tools/reproduce.py configs/pipelines/fma_custom.py --data-root ROOT
# The folder is checked before the first step (every problem listed). The VOC 2012 recipe runs
# on it (the step list: configs/pipelines/_base_/fma.py): SAM masks, classification prompts,
# CAMs + CAA, coarse seeds, segmentation prompts, CAMs + CAA, fine seeds, Mask2Former Swin-L.
# Seeds are scored where ground_truth/ covers the training split, stage II on splits/val.txt
# where it covers those images; otherwise the evaluation steps are off (a note says why).
# Training uses splits/train.txt, else every image.
_base_ = ["./_base_/fma.py"]
pipeline = dict(
    name="fma_custom",
    description="FMA-WSSS on a custom folder: SAM masks, cls prompts, CAMs + CAA, coarse seeds, "
    "seg prompts, CAMs + CAA, fine seeds, Mask2Former Swin-L, evaluation where ground truth exists",
)
work_dir = "work_dirs/pipelines/fma_custom"
checks = [dict(type="custom_dataset", root="{data_root}")]
vars = dict(
    data_root=None,  # --data-root ROOT: images/, classes.txt, labels.csv (see the README)
    dataset="custom",
    # Set by the custom_dataset check (or with --set): the training split and the evaluations.
    train_split="auto",
    seed_eval="auto",
    stage2_eval="auto",
    eval_suffix="",  # eval/coarse_seeds.json, eval/fine_seeds.json
    split_file="{data_root}/splits/{train_split}.txt",  # SEPL only (off by default)
    images="{data_root}/images",
    val_file="{data_root}/splits/val.txt",
    sam_config="configs/sam/sam_vit-h_amg-fma_voc12.py",
    cls_config="configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-1800it_custom.py",
    cls_iters="1800",
    seg_config="configs/stage1/fma-seg_prompt-clip-vit-b16_1xb16-17k_custom.py",
    seg_iters="17000",
    coarse_config="configs/seeding/sams-coarse_voc12.py",
    fine_config="configs/seeding/sams-fine_voc12.py",
    stage2="configs/stage2/mask2former_swin-l-in22k_2xb2-80k_custom-seed-512x512.py",
    stage2_checkpoint="{work_dir}/stage2/iter_*.pth",  # no validation during training: the last
    # The folder's classes and splits reach every loader, model and evaluator.
    sam_data=["sam_masks.dataset=custom", "sam_masks.data_root={data_root}",
              "sam_masks.split={train_split}"],
    stage1_data=["train_dataloader.dataset.data_root={data_root}",
                 "train_dataloader.dataset.split={train_split}", "model.dataset_root={data_root}"],
    cam_data=["test_dataloader.dataset.data_root={data_root}",
              "test_dataloader.dataset.split={train_split}",
              "test_evaluator.dataset_root={data_root}", "model.dataset_root={data_root}"],
    seeding_data=["seeding.dataset=custom", "seeding.split={train_split}"],
    stage2_data=["train_dataloader.dataset.data_root={data_root}",
                 "train_dataloader.dataset.split={train_split}"],
    label_inputs=["{data_root}/classes.txt", "{data_root}/labels.*"],
    stage2_inputs=["{data_root}/classes.txt"],
)  # fmt: skip
