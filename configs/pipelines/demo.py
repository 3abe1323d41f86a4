# The demo pipeline (tools/reproduce.py configs/pipelines/demo.py; ./run demo): the whole
# FMA-WSSS method end to end on a fresh CPU machine with no downloads. A synthetic VOC-layout set
# and a tiny CLIP pretrained on synthetic captions are made in code (fma.demo), superpixels stand
# in for SAM, a tiny DeepLabV3+ is stage II. It runs the machinery; its numbers are not results.
#
# Vars (--data-root / --clip / --sam set the first three, --set KEY=VALUE any):
#   data_root  a VOC-layout folder (JPEGImages, SegmentationClass, ImageSets/Segmentation/
#              {train,val}.txt, cls_labels/train.json from tools/prepare_voc.py). The default is
#              the synthetic set the "data" step writes; for any other folder that step only
#              checks the layout and generates nothing.
#   clip       CLIP weights for stage I. The default is the tiny CLIP the "tiny_clip" step
#              trains; for any other file that step trains nothing. Real weights need the real
#              architecture too: clip_model=ViT-B-16 clip_config=None and the ViT-B/16 stage I
#              configs (tools/demo.py --clip sets all of these).
#   sam        SAM checkpoint; empty = the weight-free superpixel source. With a checkpoint set
#              masks_config=configs/demo/masks_sam-vit-h_demo.py (tools/demo.py --sam does).
pipeline = dict(
    name="demo",
    description=(
        "FMA-WSSS end to end on synthetic data with a tiny pretrained CLIP, superpixels and a "
        "tiny stage II network: CLIP prompts -> CAMs + CAA -> SAMS coarse and fine seeds -> "
        "stage II -> evaluation and an HTML report. Runs the machinery; not a result."
    ),
)
work_dir = "work_dirs/demo"
vars = dict(
    data_root="{work_dir}/data/VOC2012",
    clip="{work_dir}/tiny_clip/demo_tiny_clip.pt",
    sam="",
    clip_model="demo_tiny_clip",
    clip_config="{work_dir}/tiny_clip/demo_tiny_clip.json",
    cls_config="configs/demo/fma-cls_prompt-tiny-clip_1xb8-60it_demo.py",
    seg_config="configs/demo/fma-seg_prompt-tiny-clip_1xb8-100it_demo.py",
    masks_config="configs/demo/masks_superpixels_demo.py",
    stage2_config="configs/demo/deeplabv3plus_r18-tiny_1xb8-480it_demo.py",
    # Sizes of the synthetic set and of the tiny CLIP pretraining (the 3-minute budget);
    # clip_crop_min < 1 pretrains on random crops captioned with the classes they keep;
    # clip_logit_scale is the temperature stored in the tiny CLIP (fma.demo.tiny_clip.LOGIT_SCALE).
    num_train="96",
    num_val="48",
    clip_steps="400",
    clip_corpus="1024",
    clip_crop_min="1.0",
    clip_logit_scale="2.0",
)
CLS_ITERS = 60  # max_iters of the demo stage I configs (their last checkpoint)
SEG_ITERS = 100
STAGE2_ITERS = 480  # max_iters of the demo stage II config
_clip = [
    "model.clip.pretrained={clip}",
    "model.clip.model_name={clip_model}",
    "model.clip.model_config={clip_config}",
]
_train_root = ["train_dataloader.dataset.data_root={data_root}"]
_test_root = ["test_dataloader.dataset.data_root={data_root}"]


def _cams(name, config, label, iters):
    """tools/test.py on the train split: CAMs + CAA of the step's prompts."""
    return dict(
        name=f"{name}_cams",
        tool="tools/test.py",
        args=[
            config,
            "{work_dir}/" + name + f"/iter_{iters}.pth",
            "--work-dir",
            "{work_dir}/" + name,
            "--out",
            "{work_dir}/" + name + "/cams/train",
            "--cfg-options",
            *_test_root,
            *_clip,
        ],
        inputs=[
            "{work_dir}/" + name + f"/iter_{iters}.pth",
            "{data_root}/ImageSets/Segmentation/train.txt",
        ],
        outputs=["{work_dir}/" + name + "/cams/train"],
        label=label,
    )


def _eval(name, pred, split, label, data_root="{data_root}"):
    """tools/eval_labels.py: a label folder against the ground truth, metrics JSON."""
    return dict(
        name=name,
        tool="tools/eval_labels.py",
        args=[
            pred,
            "--dataset",
            "voc12",
            "--split",
            split,
            "--data-root",
            data_root,
            "--json",
            "{work_dir}/metrics/" + name + ".json",
        ],
        inputs=[pred],
        outputs=["{work_dir}/metrics/" + name + ".json"],
        metrics="{work_dir}/metrics/" + name + ".json",
        label=label,
    )


def _seeds(name, config, cams, label):
    return dict(
        name=name,
        tool="tools/make_seeds.py",
        args=[
            config,
            "--work-dir",
            "{work_dir}/" + name,
            "--workers",
            "0",
            "--no-progress",
            "--cfg-options",
            "seeding.cam_dir=" + cams,
            "seeding.mask_dir={work_dir}/masks/masks/train",
            "seeding.data_root={data_root}",
        ],
        inputs=[cams, "{work_dir}/masks/masks/train"],
        outputs=["{work_dir}/" + name + "/seeds/train"],
        label=label,
    )


steps = [
    dict(
        name="data",
        module="fma.demo.data",
        args=[
            "--out",
            "{work_dir}/data",
            "--data-root",
            "{data_root}",
            "--num-train",
            "{num_train}",
            "--num-val",
            "{num_val}",
        ],
        outputs=[
            "{data_root}/ImageSets/Segmentation/train.txt",
            "{data_root}/cls_labels/train.json",
        ],
        label="synthetic VOC-layout set (train: image-level labels; val: ground truth)",
    ),
    dict(
        name="tiny_clip",
        module="fma.demo.tiny_clip",
        args=[
            "--out",
            "{work_dir}/tiny_clip",
            "--clip",
            "{clip}",
            "--steps",
            "{clip_steps}",
            "--corpus",
            "{clip_corpus}",
            "--crop-min",
            "{clip_crop_min}",
            "--logit-scale",
            "{clip_logit_scale}",
        ],
        outputs=["{clip}"],
        label="tiny CLIP pretrained on synthetic captions",
    ),
    dict(
        name="masks",
        tool="tools/gen_sam_masks.py",
        args=[
            "{masks_config}",
            "--work-dir",
            "{work_dir}/masks",
            "--workers",
            "0",
            "--no-progress",
            "--cfg-options",
            "sam_masks.data_root={data_root}",
            "sam_masks.checkpoint={sam}",
        ],
        inputs=["{data_root}/ImageSets/Segmentation/train.txt"],
        outputs=["{work_dir}/masks/masks/train"],
        label="SAM masks (superpixels unless --sam)",
    ),
    dict(
        name="stage1_cls",
        tool="tools/train.py",
        args=[
            "{cls_config}",
            "--work-dir",
            "{work_dir}/stage1_cls",
            "--cfg-options",
            *_train_root,
            *_test_root,
            *_clip,
        ],
        inputs=["{data_root}/cls_labels/train.json", "{clip}"],
        outputs=["{work_dir}/stage1_cls/iter_" + str(CLS_ITERS) + ".pth"],
        label="classification prompts (L_cls)",
    ),
    _cams("stage1_cls", "{cls_config}", "CAMs + CAA (classification prompts)", CLS_ITERS),
    dict(
        name="eval_cams",
        module="fma.demo.cam_eval",
        args=[
            "{work_dir}/stage1_cls/cams/train",
            "--data-root",
            "{data_root}",
            "--split",
            "train",
            "--out",
            "{work_dir}/cam_labels/train",
            "--json",
            "{work_dir}/metrics/eval_cams.json",
        ],
        inputs=["{work_dir}/stage1_cls/cams/train"],
        outputs=["{work_dir}/metrics/eval_cams.json"],
        metrics="{work_dir}/metrics/eval_cams.json",
        label="CAMs (argmax, background power 1) vs train ground truth",
    ),
    _seeds(
        "seeds_coarse",
        "configs/demo/sams-coarse_demo.py",
        "{work_dir}/stage1_cls/cams/train",
        "coarse seeds (SAMS, gamma 0.6)",
    ),
    _eval(
        "eval_seeds_coarse",
        "{work_dir}/seeds_coarse/seeds/train",
        "train",
        "coarse seeds vs train ground truth",
    ),
    dict(
        name="stage1_seg",
        tool="tools/train.py",
        args=[
            "{seg_config}",
            "--work-dir",
            "{work_dir}/stage1_seg",
            "--cfg-options",
            *_train_root,
            *_test_root,
            *_clip,
            "train_dataloader.dataset.seed_dir={work_dir}/seeds_coarse/seeds/train",
        ],
        inputs=["{work_dir}/seeds_coarse/seeds/train", "{clip}"],
        outputs=["{work_dir}/stage1_seg/iter_" + str(SEG_ITERS) + ".pth"],
        label="segmentation prompts (L_act vs the coarse seeds)",
    ),
    _cams("stage1_seg", "{seg_config}", "CAMs + CAA (segmentation prompts)", SEG_ITERS),
    _seeds(
        "seeds_fine",
        "configs/demo/sams-fine_demo.py",
        "{work_dir}/stage1_seg/cams/train",
        "fine seeds (SAMS, gamma 0.7)",
    ),
    _eval(
        "eval_seeds_fine",
        "{work_dir}/seeds_fine/seeds/train",
        "train",
        "fine seeds vs train ground truth",
    ),
    dict(
        name="stage2",
        tool="tools/train.py",
        args=[
            "{stage2_config}",
            "--work-dir",
            "{work_dir}/stage2",
            "--cfg-options",
            "train_dataloader.dataset.data_root={data_root}",
            "train_dataloader.dataset.seed_dir={work_dir}/seeds_fine/seeds/train",
            "val_dataloader.dataset.data_root={data_root}",
            "test_dataloader.dataset.data_root={data_root}",
        ],
        inputs=["{work_dir}/seeds_fine/seeds/train"],
        outputs=["{work_dir}/stage2/iter_" + str(STAGE2_ITERS) + ".pth"],
        label="stage II network trained on the fine seeds",
    ),
    dict(
        name="stage2_test",
        tool="tools/test.py",
        args=[
            "{stage2_config}",
            "{work_dir}/stage2/iter_" + str(STAGE2_ITERS) + ".pth",
            "--work-dir",
            "{work_dir}/stage2",
            "--out",
            "{work_dir}/stage2/pred/val",
            "--cfg-options",
            "train_dataloader.dataset.data_root={data_root}",
            "train_dataloader.dataset.seed_dir={work_dir}/seeds_fine/seeds/train",
            "val_dataloader.dataset.data_root={data_root}",
            "test_dataloader.dataset.data_root={data_root}",
        ],
        inputs=["{work_dir}/stage2/iter_" + str(STAGE2_ITERS) + ".pth"],
        outputs=["{work_dir}/stage2/metrics_val.json", "{work_dir}/stage2/pred/val"],
        metrics="{work_dir}/stage2/metrics_val.json",
        label="stage II prediction vs val ground truth",
    ),
    dict(
        name="report",
        module="fma.demo.report",
        args=["--work-dir", "{work_dir}", "--data-root", "{data_root}"],
        inputs=[
            "{work_dir}/metrics/eval_cams.json",
            "{work_dir}/metrics/eval_seeds_coarse.json",
            "{work_dir}/metrics/eval_seeds_fine.json",
            "{work_dir}/stage2/metrics_val.json",
        ],
        outputs=["{work_dir}/report/index.html"],
        label="HTML report",
    ),
]
