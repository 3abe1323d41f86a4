# Pipeline (tools/reproduce.py): FMA-WSSS on COCO 2014, method-fma section 1 with the COCO
# differences: classification prompts used at iter 6,150 (CAA on the raw CAM, tau 0.6),
# segmentation prompts at iter 45,000 with raw CAMs (no CAA), gamma 0.4 / 1.0, seeds of the
# train split, Mask2Former Swin-L 100k on 81 classes. Consumes the layout of
# tools/prepare_coco.py (ImageSets/train.txt, cls_labels/train.json, SegmentationClass/train);
# produces everything under work_dir and the metrics files of configs/metafile.yml.
pipeline = dict(
    name="fma_coco14",
    description="FMA-WSSS on COCO14: SAM masks, cls prompts (6,150 it), CAMs + CAA, coarse "
    "seeds, seg prompts (45k it), raw CAMs, fine seeds, Mask2Former Swin-L, val evaluation",
)
work_dir = "work_dirs/pipelines/fma_coco14"
vars = dict(
    data_root="data/coco2014",
    clip="pretrains/ViT-B-16.pt",  # python tools/download.py clip; or an open_clip tag
    sam="pretrains/sam_vit_h_4b8939.pth",  # python tools/download.py sam
    stage2="configs/stage2/mask2former_swin-l-in22k_2xb2-100k_coco14-seed-512x512.py",
)
_cls = "configs/stage1/fma-cls_prompt-clip-vit-b16_1xb16-20500it_coco14.py"
_seg = "configs/stage1/fma-seg_prompt-clip-vit-b16_1xb16-75k_coco14.py"
# Checked before the first step (fma/pipeline/preflight.py, with the steps' inputs and weights).
checks = [dict(type="dataset", dataset="coco14", root="{data_root}", splits="train,val",
               labels="train", ground_truth="train,val")]  # fmt: skip
_split_file = "{data_root}/ImageSets/train.txt"
_labels = "{data_root}/cls_labels/train.json"
# fmt: off
steps = [
    dict(
        name="sam_masks",
        label="SAM quasi-superpixels (train)",
        tool="tools/gen_sam_masks.py",
        args=["configs/sam/sam_vit-h_amg-fma_coco14.py", "--work-dir", "{work_dir}/sam",
              "--cfg-options", "sam_masks.data_root={data_root}", "sam_masks.checkpoint={sam}"],
        inputs=[_split_file, "{sam}"],
        outputs=["{work_dir}/sam"],
        distributed=True,
    ),
    dict(
        # The paper uses iter_6150.pth of a 20,500-iteration schedule. The schedulers' begin/end
        # are absolute iterations, so stopping at 6,150 gives that checkpoint without the rest.
        name="cls_prompts",
        label="classification prompts (to iter 6,150 of 20.5k)",
        tool="tools/train.py",
        args=[_cls, "--work-dir", "{work_dir}/cls_prompts", "--resume", "--cfg-options",
              "train_dataloader.dataset.data_root={data_root}", "model.clip.pretrained={clip}",
              "train_cfg.max_iters=6150"],
        inputs=[_split_file, _labels, "{clip}"],
        outputs=["{work_dir}/cls_prompts"],
    ),
    dict(
        name="cls_cams",
        label="CAMs + CAA (cls prompts, tau 0.6 on the CAM)",
        tool="tools/test.py",
        args=[_cls, "{work_dir}/cls_prompts/iter_6150.pth", "--work-dir", "{work_dir}/cls_cams",
              "--out", "{work_dir}/cls_cams/train", "--cfg-options",
              "test_dataloader.dataset.data_root={data_root}", "model.clip.pretrained={clip}"],
        inputs=["{work_dir}/cls_prompts/iter_6150.pth", _split_file, _labels, "{clip}"],
        outputs=["{work_dir}/cls_cams"],
        distributed=True,
    ),
    dict(
        name="coarse_seeds",
        label="coarse seeds (SAMS, gamma 0.4)",
        tool="tools/make_seeds.py",
        args=["configs/seeding/sams-coarse_coco14.py", "--work-dir", "{work_dir}/coarse_seeds",
              "--cfg-options", "seeding.cam_dir={work_dir}/cls_cams/train",
              "seeding.mask_dir={work_dir}/sam/masks/train", "seeding.data_root={data_root}"],
        inputs=["{work_dir}/cls_cams/train", "{work_dir}/sam/masks/train"],
        outputs=["{work_dir}/coarse_seeds"],
    ),
    dict(
        name="coarse_seeds_eval",
        label="coarse seeds vs ground truth",
        tool="tools/eval_labels.py",
        args=["{work_dir}/coarse_seeds/seeds/train", "--dataset", "coco14", "--split", "train",
              "--data-root", "{data_root}", "--no-progress",
              "--json", "{work_dir}/eval/coarse_seeds_train.json"],
        inputs=["{work_dir}/coarse_seeds/seeds/train"],
        outputs=["{work_dir}/eval/coarse_seeds_train.json"],
        metrics="{work_dir}/eval/coarse_seeds_train.json",
    ),
    dict(
        # The paper uses iter_45000.pth of 75k iterations (see cls_prompts for why stopping
        # there gives the same checkpoint).
        name="seg_prompts",
        label="segmentation prompts (to iter 45k of 75k)",
        tool="tools/train.py",
        args=[_seg, "--work-dir", "{work_dir}/seg_prompts", "--resume", "--cfg-options",
              "train_dataloader.dataset.data_root={data_root}",
              "train_dataloader.dataset.seed_dir={work_dir}/coarse_seeds/seeds/train",
              "model.clip.pretrained={clip}", "train_cfg.max_iters=45000"],
        inputs=[_split_file, _labels, "{work_dir}/coarse_seeds/seeds/train", "{clip}"],
        outputs=["{work_dir}/seg_prompts"],
    ),
    dict(
        name="seg_cams",
        label="raw CAMs (seg prompts, no CAA)",
        tool="tools/test.py",
        args=[_seg, "{work_dir}/seg_prompts/iter_45000.pth", "--work-dir", "{work_dir}/seg_cams",
              "--out", "{work_dir}/seg_cams/train", "--cfg-options",
              "test_dataloader.dataset.data_root={data_root}", "model.clip.pretrained={clip}"],
        inputs=["{work_dir}/seg_prompts/iter_45000.pth", _split_file, _labels, "{clip}"],
        outputs=["{work_dir}/seg_cams"],
        distributed=True,
    ),
    dict(
        name="fine_seeds",
        label="fine seeds (SAMS, gamma 1.0)",
        tool="tools/make_seeds.py",
        args=["configs/seeding/sams-fine_coco14.py", "--work-dir", "{work_dir}/fine_seeds",
              "--cfg-options", "seeding.cam_dir={work_dir}/seg_cams/train",
              "seeding.mask_dir={work_dir}/sam/masks/train", "seeding.data_root={data_root}"],
        inputs=["{work_dir}/seg_cams/train", "{work_dir}/sam/masks/train"],
        outputs=["{work_dir}/fine_seeds"],
    ),
    dict(
        name="fine_seeds_eval",
        label="fine seeds vs ground truth",
        tool="tools/eval_labels.py",
        args=["{work_dir}/fine_seeds/seeds/train", "--dataset", "coco14", "--split", "train",
              "--data-root", "{data_root}", "--no-progress",
              "--json", "{work_dir}/eval/fine_seeds_train.json"],
        inputs=["{work_dir}/fine_seeds/seeds/train"],
        outputs=["{work_dir}/eval/fine_seeds_train.json"],
        metrics="{work_dir}/eval/fine_seeds_train.json",
    ),
    dict(
        # Validates every 5,000 iterations on the first 5,000 ids of the sorted val.txt (the
        # stage II config's indices=5000, = ImageSets/val_5000.txt of tools/prepare_coco.py), as
        # the authors did; stage2_eval then tests the best checkpoint on all of val.
        name="stage2_train",
        label="stage II training (Mask2Former Swin-L, 100k it)",
        tool="tools/train.py",
        args=["{stage2}", "--work-dir", "{work_dir}/stage2", "--resume", "--cfg-options",
              "train_dataloader.dataset.data_root={data_root}",
              "train_dataloader.dataset.seed_dir={work_dir}/fine_seeds/seeds/train",
              "val_dataloader.dataset.data_root={data_root}"],
        inputs=["{work_dir}/fine_seeds/seeds/train", _split_file,
                "{data_root}/ImageSets/val.txt"],
        outputs=["{work_dir}/stage2"],
        distributed=True,
    ),
    dict(
        name="stage2_eval",
        label="stage II on all of val (single scale, best checkpoint)",
        tool="tools/test.py",
        args=["{stage2}", "{work_dir}/stage2/best_mIoU_iter_*.pth", "--work-dir",
              "{work_dir}/stage2_eval", "--cfg-options",
              "test_dataloader.dataset.data_root={data_root}"],
        inputs=["{work_dir}/stage2/best_mIoU_iter_*.pth", "{data_root}/ImageSets/val.txt"],
        outputs=["{work_dir}/stage2_eval"],
        metrics="{work_dir}/stage2_eval/metrics_val.json",
        distributed=True,
    ),
]
# fmt: on
