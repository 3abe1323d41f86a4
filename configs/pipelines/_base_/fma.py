# Pipeline base (tools/reproduce.py): the FMA-WSSS step list (method-fma section 1, steps 1-10),
# written once for every dataset. A dataset's pipeline (configs/pipelines/fma_voc12.py,
# fma_coco14.py, fma_custom.py) inherits it and sets the vars: its data root, split, stage
# configs and the --cfg-options its data needs. Steps: SAM masks, classification prompts, CAMs,
# coarse seeds (and their evaluation), segmentation prompts, CAMs, fine seeds (and their
# evaluation), optional SEPL refinement, stage II training and evaluation. Vars in lists are list
# vars: each stands for its items, none when empty (docs/pipelines.md).
pipeline = dict(name="fma", description="FMA-WSSS")
vars = dict(
    data_root=None,
    dataset=None,  # voc12, coco14 or custom
    train_split=None,  # the split of masks, CAMs and seeds
    split_file=None,  # its image list
    images="{split_file}",  # what the SAM step reads (an input)
    labels="{data_root}/cls_labels/{train_split}.json",  # image-level labels (an input)
    val_file=None,  # the image list of the stage II evaluation
    clip="pretrains/ViT-B-16.pt",  # python tools/download.py clip; or an open_clip tag
    sam="pretrains/sam_vit_h_4b8939.pth",  # python tools/download.py sam
    sam_config=None,
    cls_config=None,
    cls_iters=None,  # the classification prompts' checkpoint: iter_{cls_iters}.pth
    seg_config=None,
    seg_iters=None,
    coarse_config=None,  # configs/seeding/sams-coarse_*.py
    fine_config=None,  # configs/seeding/sams-fine_*.py
    stage2=None,
    # What each step reads from the one before: by default that step's output; --set one to
    # start later in the chain on other inputs (e.g. the authors' released masks and CAMs
    # imported by tools/import_official.py, with --from coarse_seeds).
    masks="{work_dir}/sam/masks/{train_split}",
    cls_checkpoint="{work_dir}/cls_prompts/iter_{cls_iters}.pth",
    cls_cams="{work_dir}/cls_cams/{train_split}",
    coarse_seeds="{work_dir}/coarse_seeds/seeds/{train_split}",
    seg_checkpoint="{work_dir}/seg_prompts/iter_{seg_iters}.pth",
    seg_cams="{work_dir}/seg_cams/{train_split}",
    fine_seeds="{work_dir}/fine_seeds/seeds/{train_split}",
    stage2_seeds="{fine_seeds}",  # what stage II trains on
    stage2_checkpoint="{work_dir}/stage2/best_mIoU_iter_*.pth",  # what stage2_eval tests
    # Seeds are scored on seed_eval_split against its ground truth; "false" switches it off.
    seed_eval_split="{train_split}",
    seed_eval="true",
    eval_suffix="_{seed_eval_split}",  # the metrics files: eval/coarse_seeds{eval_suffix}.json
    stage2_eval="true",
    sepl="false",  # true: refine the fine seeds with SEPL first (pipelines/fma_sepl_voc12.py)
    sepl_method="max_iou_imp2",
    # List vars: the --cfg-options (and inputs) of the dataset's loaders, in the steps' order.
    sam_data=["sam_masks.data_root={data_root}", "sam_masks.split={train_split}"],
    stage1_data=["train_dataloader.dataset.data_root={data_root}"],
    cam_data=["test_dataloader.dataset.data_root={data_root}"],
    seeding_data=[],
    stage2_data=["train_dataloader.dataset.data_root={data_root}"],
    label_inputs=["{split_file}", "{labels}"],
    stage2_inputs=["{split_file}", "{val_file}"],
    cls_options=[],  # e.g. COCO: stop the schedule early (train_cfg.max_iters=6150)
    seg_options=[],
)
_sepl = "{work_dir}/sepl_seeds/{train_split}"


# fmt: off
def _eval(step, what, seeds, enabled):
    """A step that scores a seed folder against the ground truth of seed_eval_split."""
    out = "{work_dir}/eval/" + what + "{eval_suffix}.json"
    return dict(
        name=step,
        label=what.replace("_", " ") + " vs ground truth",
        tool="tools/eval_labels.py",
        args=[seeds, "--dataset", "{dataset}", "--split", "{seed_eval_split}",
              "--data-root", "{data_root}", "--no-progress", "--json", out],
        inputs=[seeds],
        outputs=[out],
        metrics=out,
        enabled=enabled,
    )


def _prompts(task, label, args, inputs):
    """tools/train.py of one prompt set (task "cls" or "seg"): its config, its options."""
    return dict(
        name=task + "_prompts",
        label=label,
        tool="tools/train.py",
        args=["{" + task + "_config}", "--work-dir", "{work_dir}/" + task + "_prompts", "--resume",
              "--cfg-options", "{stage1_data}", *args, "model.clip.pretrained={clip}",
              "{" + task + "_options}"],
        inputs=["{label_inputs}", *inputs, "{clip}"],
        outputs=["{work_dir}/" + task + "_prompts"],
    )


def _cams(task, label):
    """tools/test.py: the CAMs of one prompt set's checkpoint on the training split."""
    return dict(
        name=task + "_cams",
        label=label,
        tool="tools/test.py",
        args=["{" + task + "_config}", "{" + task + "_checkpoint}",
              "--work-dir", "{work_dir}/" + task + "_cams",
              "--out", "{work_dir}/" + task + "_cams/{train_split}", "--cfg-options", "{cam_data}",
              "model.clip.pretrained={clip}"],
        inputs=["{" + task + "_checkpoint}", "{label_inputs}", "{clip}"],
        outputs=["{work_dir}/" + task + "_cams"],
        distributed=True,
    )


def _seeds(kind, cams):
    """tools/make_seeds.py: SAMS seeds ("coarse" or "fine") from CAMs and the SAM masks."""
    return dict(
        name=kind + "_seeds",
        label=kind + " seeds (SAMS)",
        tool="tools/make_seeds.py",
        args=["{" + kind + "_config}", "--work-dir", "{work_dir}/" + kind + "_seeds",
              "--cfg-options", "{seeding_data}", "seeding.cam_dir=" + cams,
              "seeding.mask_dir={masks}", "seeding.data_root={data_root}"],
        inputs=[cams, "{masks}"],
        outputs=["{work_dir}/" + kind + "_seeds"],
    )


steps = [
    dict(
        name="sam_masks",
        label="SAM quasi-superpixels ({train_split})",
        tool="tools/gen_sam_masks.py",
        args=["{sam_config}", "--work-dir", "{work_dir}/sam", "--cfg-options", "{sam_data}",
              "+sam_masks.checkpoint={sam}"],  # + : the superpixel source has no checkpoint
        inputs=["{images}", "{sam}"],
        outputs=["{work_dir}/sam"],
        distributed=True,
    ),
    _prompts("cls", "classification prompts (to iter {cls_iters})", [], []),
    _cams("cls", "CAMs (cls prompts)"),
    _seeds("coarse", "{cls_cams}"),
    _eval("coarse_seeds_eval", "coarse_seeds", "{coarse_seeds}", "{seed_eval}"),
    _prompts("seg", "segmentation prompts (to iter {seg_iters}, L_act vs coarse seeds)",
             ["train_dataloader.dataset.seed_dir={coarse_seeds}"], ["{coarse_seeds}"]),
    _cams("seg", "CAMs (seg prompts)"),
    _seeds("fine", "{seg_cams}"),
    _eval("fine_seeds_eval", "fine_seeds", "{fine_seeds}", "{seed_eval}"),
    dict(
        name="sepl_refine",
        label="fine seeds refined by SEPL (optional)",
        tool="tools/refine_labels.py",
        args=["--labels", "{fine_seeds}", "--masks", "{masks}", "--out", _sepl,
              "--dataset", "{dataset}", "--method", "{sepl_method}", "--workers", "4",
              "--image-list", "{split_file}", "--no-progress"],
        inputs=["{fine_seeds}", "{masks}", "{split_file}"],
        outputs=["{work_dir}/sepl_seeds"],
        enabled="{sepl}",
    ),
    _eval("sepl_eval", "sepl_seeds", _sepl, "{sepl}"),
    dict(
        name="stage2_train",
        label="stage II training",
        tool="tools/train.py",
        args=["{stage2}", "--work-dir", "{work_dir}/stage2", "--resume", "--cfg-options",
              "{stage2_data}", "train_dataloader.dataset.seed_dir={stage2_seeds}",
              "val_dataloader.dataset.data_root={data_root}"],
        inputs=["{stage2_seeds}", "{stage2_inputs}"],
        outputs=["{work_dir}/stage2"],
        distributed=True,
    ),
    dict(
        name="stage2_eval",
        label="stage II on val (single scale)",
        tool="tools/test.py",
        args=["{stage2}", "{stage2_checkpoint}", "--work-dir", "{work_dir}/stage2_eval",
              "--cfg-options", "test_dataloader.dataset.data_root={data_root}"],
        inputs=["{stage2_checkpoint}", "{val_file}"],
        outputs=["{work_dir}/stage2_eval"],
        metrics="{work_dir}/stage2_eval/metrics_val.json",
        distributed=True,
        enabled="{stage2_eval}",
    ),
]
# fmt: on
