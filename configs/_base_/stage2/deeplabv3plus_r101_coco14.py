# Stage II base (tools/train.py, tools/test.py): DeepLabV3+ ResNet-101-V1c (ImageNet pretrain), the
# cheaper network of the WSSS literature, trained on COCO 2014 train (81 classes) with a seed folder
# as labels (the leaf's seed_dir) and evaluated on the val ground truth. Consumes data/coco2014
# (tools/prepare_coco.py) + seeds; produces checkpoints, logs and metrics_*.json in the work dir.
_base_ = ["mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py"]
custom_imports = dict(imports=["fma.mmseg_ext"], allow_failed_imports=False)

num_classes = 81
crop_size = (512, 512)
data_root = "data/coco2014"
seed_dir = None  # the leaf sets the folder of seed PNGs (absolute, or relative to the cwd)
# Offline: put the file here; tools/train.py downloads it (sha256-checked) when it is missing.
pretrained = "checkpoints/resnet101_v1c-e67eebb6.pth"

data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(init_cfg=dict(type="Pretrained", checkpoint=pretrained)),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes),
)

train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="RandomResize", scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(2048, 512), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="PackSegInputs"),
]
tta_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(
        type="TestTimeAug",
        transforms=[
            [
                dict(type="Resize", scale_factor=0.5, keep_ratio=True),
                dict(type="Resize", scale_factor=0.75, keep_ratio=True),
                dict(type="Resize", scale_factor=1.0, keep_ratio=True),
                dict(type="Resize", scale_factor=1.25, keep_ratio=True),
                dict(type="Resize", scale_factor=1.5, keep_ratio=True),
                dict(type="Resize", scale_factor=1.75, keep_ratio=True),
            ],
            [
                dict(type="RandomFlip", prob=0.0, direction="horizontal"),
                dict(type="RandomFlip", prob=1.0, direction="horizontal"),
            ],
            [dict(type="LoadAnnotations", reduce_zero_label=False)],
            [dict(type="PackSegInputs")],
        ],
    ),
]
tta_model = dict(type="SegTTAModel")

# Total batch 16 (4 GPUs x 4, mmseg's 4xb4 recipe): tools/train.py holds it on any number of
# processes (per-process batch or gradient accumulation, fma/engine/total_batch.py).
total_batch = 16
train_dataloader = dict(
    _delete_=True,  # replaces mmseg's VOC loader whole
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    dataset=dict(
        type="COCOObjectDataset",
        data_root=data_root,
        split="train",
        seed_dir=seed_dir,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type="COCOObjectDataset", data_root=data_root, split="val", pipeline=test_pipeline
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type="SegMetric", dataset="coco14", split="val")
test_evaluator = val_evaluator

param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=80000, by_epoch=False)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=80000, val_interval=8000)
default_hooks = dict(
    checkpoint=dict(
        type="CheckpointHook", by_epoch=False, interval=8000, save_best="mIoU", max_keep_ckpts=2
    )
)
custom_hooks = [dict(type="SeedProvenanceHook")]
# No fixed visualizer name (mmseg names it "visualizer"): each run then gets its own instance,
# named after the run, so several runs in one process (tests, the pipeline) keep their logs apart.
visualizer = dict(
    _delete_=True, type="SegLocalVisualizer", vis_backends=[dict(type="LocalVisBackend")]
)
randomness = dict(seed=0)
