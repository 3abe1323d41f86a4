# Pipeline (tools/reproduce.py): FMA-WSSS on your own folder of images with image-level tags
# (docs/datasets.md, "Custom datasets"; README, "Your own data"):
#   python tools/reproduce.py configs/pipelines/fma_custom.py --data-root ROOT
# The folder is checked before the first step (every problem listed). The VOC 2012 recipe runs
# on it: SAM masks, classification prompts, CAMs + CAA, coarse seeds, segmentation prompts,
# CAMs + CAA, fine seeds, Mask2Former Swin-L. Seeds are scored where ground_truth/ covers the
# training split, stage II on splits/val.txt where it covers those images; otherwise the
# evaluation steps are off (a note says why). Training uses splits/train.txt, else every image.
pipeline = dict(
    name="fma_custom",
    description="FMA-WSSS on a custom folder: SAM masks, cls prompts, CAMs + CAA, coarse seeds, "
    "seg prompts, CAMs + CAA, fine seeds, Mask2Former Swin-L, evaluation where ground truth exists",
)
work_dir = "work_dirs/pipelines/fma_custom"
checks = [dict(type="custom_dataset", root="{data_root}")]
vars = dict(
    data_root=None,  # --data-root ROOT: images/, classes.txt, labels.csv (see the README)
    clip="pretrains/ViT-B-16.pt",  # python tools/download.py clip; or an open_clip tag
    sam="pretrains/sam_vit_h_4b8939.pth",  # python tools/download.py sam
    sam_config="configs/sam/sam_vit-h_amg-fma_voc12.py",
    cls_config="configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-1800it_custom.py",
    cls_iters="1800",
    seg_config="configs/stage1/fma-seg_prompt-clip-vit-b16_1xb16-17k_custom.py",
    seg_iters="17000",
    stage2="configs/stage2/mask2former_swin-l-in22k_2xb2-80k_custom-seed-512x512.py",
    stage2_seeds="{work_dir}/fine_seeds/seeds/{train_split}",  # what stage II trains on
    # Set by the custom_dataset check (or with --set): the training split and the evaluations.
    train_split="auto",
    seed_eval="auto",
    stage2_eval="auto",
)
_stage1_data = ["train_dataloader.dataset.data_root={data_root}",
                "train_dataloader.dataset.split={train_split}", "model.dataset_root={data_root}",
                "model.clip.pretrained={clip}"]  # fmt: skip
_cam_data = ["test_dataloader.dataset.data_root={data_root}",
             "test_dataloader.dataset.split={train_split}",
             "test_evaluator.dataset_root={data_root}", "model.dataset_root={data_root}",
             "model.clip.pretrained={clip}"]  # fmt: skip
_masks = "{work_dir}/sam/masks/{train_split}"
# fmt: off
steps = [
    dict(
        name="sam_masks",
        label="SAM quasi-superpixels",
        tool="tools/gen_sam_masks.py",
        args=["{sam_config}", "--work-dir", "{work_dir}/sam", "--cfg-options",
              "sam_masks.dataset=custom", "sam_masks.data_root={data_root}",
              "sam_masks.split={train_split}",
              "+sam_masks.checkpoint={sam}"],  # + : the superpixel source has no checkpoint
        inputs=["{data_root}/images", "{sam}"],
        outputs=["{work_dir}/sam"],
        distributed=True,
    ),
    dict(
        name="cls_prompts",
        label="classification prompts",
        tool="tools/train.py",
        args=["{cls_config}", "--work-dir", "{work_dir}/cls_prompts", "--resume",
              "--cfg-options", *_stage1_data],
        inputs=["{data_root}/classes.txt", "{data_root}/labels.*", "{clip}"],
        outputs=["{work_dir}/cls_prompts"],
    ),
    dict(
        name="cls_cams",
        label="CAMs + CAA (cls prompts)",
        tool="tools/test.py",
        args=["{cls_config}", "{work_dir}/cls_prompts/iter_{cls_iters}.pth", "--work-dir",
              "{work_dir}/cls_cams", "--out", "{work_dir}/cls_cams/{train_split}",
              "--cfg-options", *_cam_data],
        inputs=["{work_dir}/cls_prompts/iter_{cls_iters}.pth", "{clip}"],
        outputs=["{work_dir}/cls_cams"],
        distributed=True,
    ),
    dict(
        name="coarse_seeds",
        label="coarse seeds (SAMS)",
        tool="tools/make_seeds.py",
        args=["configs/seeding/sams-coarse_voc12.py", "--work-dir", "{work_dir}/coarse_seeds",
              "--cfg-options", "seeding.dataset=custom", "seeding.split={train_split}",
              "seeding.cam_dir={work_dir}/cls_cams/{train_split}", f"seeding.mask_dir={_masks}",
              "seeding.data_root={data_root}"],
        inputs=["{work_dir}/cls_cams/{train_split}", _masks],
        outputs=["{work_dir}/coarse_seeds"],
    ),
    dict(
        name="coarse_seeds_eval",
        label="coarse seeds vs ground truth",
        tool="tools/eval_labels.py",
        args=["{work_dir}/coarse_seeds/seeds/{train_split}", "--dataset", "custom", "--split",
              "{train_split}", "--data-root", "{data_root}", "--no-progress",
              "--json", "{work_dir}/eval/coarse_seeds.json"],
        inputs=["{work_dir}/coarse_seeds/seeds/{train_split}"],
        outputs=["{work_dir}/eval/coarse_seeds.json"],
        metrics="{work_dir}/eval/coarse_seeds.json",
        enabled="{seed_eval}",
    ),
    dict(
        name="seg_prompts",
        label="segmentation prompts (L_act vs coarse seeds)",
        tool="tools/train.py",
        args=["{seg_config}", "--work-dir", "{work_dir}/seg_prompts", "--resume",
              "--cfg-options", *_stage1_data,
              "train_dataloader.dataset.seed_dir={work_dir}/coarse_seeds/seeds/{train_split}"],
        inputs=["{data_root}/classes.txt", "{data_root}/labels.*",
                "{work_dir}/coarse_seeds/seeds/{train_split}", "{clip}"],
        outputs=["{work_dir}/seg_prompts"],
    ),
    dict(
        name="seg_cams",
        label="CAMs + CAA (seg prompts)",
        tool="tools/test.py",
        args=["{seg_config}", "{work_dir}/seg_prompts/iter_{seg_iters}.pth", "--work-dir",
              "{work_dir}/seg_cams", "--out", "{work_dir}/seg_cams/{train_split}",
              "--cfg-options", *_cam_data],
        inputs=["{work_dir}/seg_prompts/iter_{seg_iters}.pth", "{clip}"],
        outputs=["{work_dir}/seg_cams"],
        distributed=True,
    ),
    dict(
        name="fine_seeds",
        label="fine seeds (SAMS)",
        tool="tools/make_seeds.py",
        args=["configs/seeding/sams-fine_voc12.py", "--work-dir", "{work_dir}/fine_seeds",
              "--cfg-options", "seeding.dataset=custom", "seeding.split={train_split}",
              "seeding.cam_dir={work_dir}/seg_cams/{train_split}", f"seeding.mask_dir={_masks}",
              "seeding.data_root={data_root}"],
        inputs=["{work_dir}/seg_cams/{train_split}", _masks],
        outputs=["{work_dir}/fine_seeds"],
    ),
    dict(
        name="fine_seeds_eval",
        label="fine seeds vs ground truth",
        tool="tools/eval_labels.py",
        args=["{work_dir}/fine_seeds/seeds/{train_split}", "--dataset", "custom", "--split",
              "{train_split}", "--data-root", "{data_root}", "--no-progress",
              "--json", "{work_dir}/eval/fine_seeds.json"],
        inputs=["{work_dir}/fine_seeds/seeds/{train_split}"],
        outputs=["{work_dir}/eval/fine_seeds.json"],
        metrics="{work_dir}/eval/fine_seeds.json",
        enabled="{seed_eval}",
    ),
    dict(
        name="stage2_train",
        label="stage II training",
        tool="tools/train.py",
        args=["{stage2}", "--work-dir", "{work_dir}/stage2", "--resume", "--cfg-options",
              "train_dataloader.dataset.data_root={data_root}",
              "train_dataloader.dataset.split={train_split}",
              "train_dataloader.dataset.seed_dir={stage2_seeds}",
              "val_dataloader.dataset.data_root={data_root}"],
        inputs=["{stage2_seeds}", "{data_root}/classes.txt"],
        outputs=["{work_dir}/stage2"],
        distributed=True,
    ),
    dict(
        name="stage2_eval",
        label="stage II on val (single scale, last checkpoint)",
        tool="tools/test.py",
        args=["{stage2}", "{work_dir}/stage2/iter_*.pth", "--work-dir", "{work_dir}/stage2_eval",
              "--cfg-options", "test_dataloader.dataset.data_root={data_root}"],
        inputs=["{work_dir}/stage2/iter_*.pth", "{data_root}/splits/val.txt"],
        outputs=["{work_dir}/stage2_eval"],
        metrics="{work_dir}/stage2_eval/metrics_val.json",
        distributed=True,
        enabled="{stage2_eval}",
    ),
]
# fmt: on
