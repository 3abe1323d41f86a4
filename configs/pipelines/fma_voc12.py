# Pipeline (tools/reproduce.py): FMA-WSSS on PASCAL VOC 2012, method-fma section 1, steps 1-10.
# Consumes the VOC layout of tools/prepare_voc.py (train_aug list, cls_labels, SBD ground truth
# SegmentationClassAug for the seed evaluation), CLIP ViT-B/16 and SAM ViT-H weights. Produces
# everything under work_dir: SAM masks, prompts, CAMs, coarse and fine seeds, the stage II
# network and the metrics files that configs/metafile.yml checks (--verify).
pipeline = dict(
    name="fma_voc12",
    description="FMA-WSSS on VOC12: SAM masks, cls prompts, CAMs + CAA, coarse seeds, seg "
    "prompts, CAMs + CAA, fine seeds, Mask2Former Swin-L, val evaluation",
)
work_dir = "work_dirs/pipelines/fma_voc12"
vars = dict(
    data_root="data/VOCdevkit/VOC2012",
    clip="pretrains/ViT-B-16.pt",  # python tools/download.py clip; or an open_clip tag
    sam="pretrains/sam_vit_h_4b8939.pth",  # python tools/download.py sam
    # Seeds are scored on train_aug against SegmentationClassAug (method-fma 10.1); without the
    # SBD ground truth use --set seed_eval_split=train (the 1,464 VOC train images).
    seed_eval_split="train_aug",
    stage2="configs/stage2/mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py",
    stage2_seeds="{work_dir}/fine_seeds/seeds/train_aug",  # what stage II trains on
    sepl="false",  # true: refine the fine seeds with SEPL first (pipelines/fma_sepl_voc12.py)
    sepl_method="max_iou_imp2",
    # The stage configs and their final checkpoints (other recipes, tiny models in tests).
    sam_config="configs/sam/sam_vit-h_amg-fma_voc12.py",
    cls_config="configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12.py",
    cls_iters="1800",
    seg_config="configs/stage1/fma-seg_prompt-clip-vit-b16_1xb16-17k_voc12.py",
    seg_iters="17000",
)
_cls = "{cls_config}"
_seg = "{seg_config}"
# Checked before the first step (fma/pipeline/preflight.py, with the steps' inputs and weights).
checks = [dict(type="dataset", dataset="voc12", root="{data_root}", splits="train_aug,val",
               labels="train_aug", ground_truth="{seed_eval_split},val")]  # fmt: skip
_split_file = "{data_root}/ImageSets/Segmentation/train_aug.txt"
_labels = "{data_root}/cls_labels/train_aug.json"
# fmt: off
steps = [
    dict(
        name="sam_masks",
        label="SAM quasi-superpixels (train_aug)",
        tool="tools/gen_sam_masks.py",
        args=["{sam_config}", "--work-dir", "{work_dir}/sam", "--cfg-options",
              "sam_masks.data_root={data_root}", "sam_masks.split=train_aug",
              "+sam_masks.checkpoint={sam}"],  # + : the superpixel source has no checkpoint
        inputs=[_split_file, "{sam}"],
        outputs=["{work_dir}/sam"],
        distributed=True,
    ),
    dict(
        name="cls_prompts",
        label="classification prompts (1,800 it)",
        tool="tools/train.py",
        args=[_cls, "--work-dir", "{work_dir}/cls_prompts", "--resume", "--cfg-options",
              "train_dataloader.dataset.data_root={data_root}", "model.clip.pretrained={clip}"],
        inputs=[_split_file, _labels, "{clip}"],
        outputs=["{work_dir}/cls_prompts"],
    ),
    dict(
        name="cls_cams",
        label="CAMs + CAA (cls prompts, tau 0.4 on the score)",
        tool="tools/test.py",
        args=[_cls, "{work_dir}/cls_prompts/iter_{cls_iters}.pth",
              "--work-dir", "{work_dir}/cls_cams",
              "--out", "{work_dir}/cls_cams/train_aug", "--cfg-options",
              "test_dataloader.dataset.data_root={data_root}", "model.clip.pretrained={clip}"],
        inputs=["{work_dir}/cls_prompts/iter_{cls_iters}.pth", _split_file, _labels, "{clip}"],
        outputs=["{work_dir}/cls_cams"],
        distributed=True,
    ),
    dict(
        name="coarse_seeds",
        label="coarse seeds (SAMS, gamma 0.6)",
        tool="tools/make_seeds.py",
        args=["configs/seeding/sams-coarse_voc12.py", "--work-dir", "{work_dir}/coarse_seeds",
              "--cfg-options", "seeding.cam_dir={work_dir}/cls_cams/train_aug",
              "seeding.mask_dir={work_dir}/sam/masks/train_aug", "seeding.data_root={data_root}"],
        inputs=["{work_dir}/cls_cams/train_aug", "{work_dir}/sam/masks/train_aug"],
        outputs=["{work_dir}/coarse_seeds"],
    ),
    dict(
        name="coarse_seeds_eval",
        label="coarse seeds vs ground truth",
        tool="tools/eval_labels.py",
        args=["{work_dir}/coarse_seeds/seeds/train_aug", "--dataset", "voc12", "--split",
              "{seed_eval_split}", "--data-root", "{data_root}", "--no-progress",
              "--json", "{work_dir}/eval/coarse_seeds_{seed_eval_split}.json"],
        inputs=["{work_dir}/coarse_seeds/seeds/train_aug"],
        outputs=["{work_dir}/eval/coarse_seeds_{seed_eval_split}.json"],
        metrics="{work_dir}/eval/coarse_seeds_{seed_eval_split}.json",
    ),
    dict(
        name="seg_prompts",
        label="segmentation prompts (17k it, L_act vs coarse seeds)",
        tool="tools/train.py",
        args=[_seg, "--work-dir", "{work_dir}/seg_prompts", "--resume", "--cfg-options",
              "train_dataloader.dataset.data_root={data_root}",
              "train_dataloader.dataset.seed_dir={work_dir}/coarse_seeds/seeds/train_aug",
              "model.clip.pretrained={clip}"],
        inputs=[_split_file, _labels, "{work_dir}/coarse_seeds/seeds/train_aug", "{clip}"],
        outputs=["{work_dir}/seg_prompts"],
    ),
    dict(
        name="seg_cams",
        label="CAMs + CAA (seg prompts, tau 0.5 on the CAM)",
        tool="tools/test.py",
        args=[_seg, "{work_dir}/seg_prompts/iter_{seg_iters}.pth",
              "--work-dir", "{work_dir}/seg_cams",
              "--out", "{work_dir}/seg_cams/train_aug", "--cfg-options",
              "test_dataloader.dataset.data_root={data_root}", "model.clip.pretrained={clip}"],
        inputs=["{work_dir}/seg_prompts/iter_{seg_iters}.pth", _split_file, _labels, "{clip}"],
        outputs=["{work_dir}/seg_cams"],
        distributed=True,
    ),
    dict(
        name="fine_seeds",
        label="fine seeds (SAMS, gamma 0.7)",
        tool="tools/make_seeds.py",
        args=["configs/seeding/sams-fine_voc12.py", "--work-dir", "{work_dir}/fine_seeds",
              "--cfg-options", "seeding.cam_dir={work_dir}/seg_cams/train_aug",
              "seeding.mask_dir={work_dir}/sam/masks/train_aug", "seeding.data_root={data_root}"],
        inputs=["{work_dir}/seg_cams/train_aug", "{work_dir}/sam/masks/train_aug"],
        outputs=["{work_dir}/fine_seeds"],
    ),
    dict(
        name="fine_seeds_eval",
        label="fine seeds vs ground truth",
        tool="tools/eval_labels.py",
        args=["{work_dir}/fine_seeds/seeds/train_aug", "--dataset", "voc12", "--split",
              "{seed_eval_split}", "--data-root", "{data_root}", "--no-progress",
              "--json", "{work_dir}/eval/fine_seeds_{seed_eval_split}.json"],
        inputs=["{work_dir}/fine_seeds/seeds/train_aug"],
        outputs=["{work_dir}/eval/fine_seeds_{seed_eval_split}.json"],
        metrics="{work_dir}/eval/fine_seeds_{seed_eval_split}.json",
    ),
    dict(
        name="sepl_refine",
        label="fine seeds refined by SEPL (optional)",
        tool="tools/refine_labels.py",
        args=["--labels", "{work_dir}/fine_seeds/seeds/train_aug", "--masks",
              "{work_dir}/sam/masks/train_aug", "--out", "{work_dir}/sepl_seeds/train_aug",
              "--dataset", "voc12", "--method", "{sepl_method}", "--workers", "4",
              "--image-list", _split_file, "--no-progress"],
        inputs=["{work_dir}/fine_seeds/seeds/train_aug", "{work_dir}/sam/masks/train_aug",
                _split_file],
        outputs=["{work_dir}/sepl_seeds"],
        enabled="{sepl}",
    ),
    dict(
        name="sepl_eval",
        label="SEPL-refined seeds vs ground truth",
        tool="tools/eval_labels.py",
        args=["{work_dir}/sepl_seeds/train_aug", "--dataset", "voc12", "--split",
              "{seed_eval_split}", "--data-root", "{data_root}", "--no-progress",
              "--json", "{work_dir}/eval/sepl_seeds_{seed_eval_split}.json"],
        inputs=["{work_dir}/sepl_seeds/train_aug"],
        outputs=["{work_dir}/eval/sepl_seeds_{seed_eval_split}.json"],
        metrics="{work_dir}/eval/sepl_seeds_{seed_eval_split}.json",
        enabled="{sepl}",
    ),
    dict(
        name="stage2_train",
        label="stage II training (Mask2Former Swin-L, 80k it)",
        tool="tools/train.py",
        args=["{stage2}", "--work-dir", "{work_dir}/stage2", "--resume", "--cfg-options",
              "train_dataloader.dataset.data_root={data_root}",
              "train_dataloader.dataset.seed_dir={stage2_seeds}",
              "val_dataloader.dataset.data_root={data_root}"],
        inputs=["{stage2_seeds}", _split_file, "{data_root}/ImageSets/Segmentation/val.txt"],
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
