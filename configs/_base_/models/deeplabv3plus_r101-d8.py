# Stage II model (tools/train.py, tools/test.py): DeepLabV3+ ResNet-101-V1c (ImageNet pretrain),
# the cheaper network of the WSSS literature, with mmseg's SGD optimizer. Model only: a stage II
# config adds a dataset base (configs/_base_/datasets/*_seed.py), configs/_base_/seed_runtime.py
# and its schedule and number of classes (configs/stage2/*.py).
_base_ = ["mmseg::_base_/models/deeplabv3plus_r50-d8.py"]
custom_imports = dict(imports=["fma.mmseg_ext"], allow_failed_imports=False)

# Offline: put the file here; tools/train.py downloads it (sha256-checked) when it is missing.
pretrained = "checkpoints/resnet101_v1c-e67eebb6.pth"
# 512x512 crops (configs/_base_/datasets/seed_512x512.py): batches padded to that size.
data_preprocessor = dict(size=(512, 512))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(depth=101, init_cfg=dict(type="Pretrained", checkpoint=pretrained)),
)
optimizer = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type="OptimWrapper", optimizer=optimizer, clip_grad=None)
# Total batch 16 (4 GPUs x 4, mmseg's 4xb4 recipe): tools/train.py holds it on any number of
# processes (per-process batch or gradient accumulation, fma/engine/total_batch.py).
total_batch = 16
