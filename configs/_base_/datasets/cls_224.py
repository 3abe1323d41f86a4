# Stage I data shared by the image-level label datasets (configs/_base_/datasets/*_cls.py;
# tools/train.py, tools/test.py): training on random 224x224 crops of rescaled, colour-jittered,
# flipped images in batches of 16; inference on whole images rounded up to multiples of 16, with
# CAM files and CAM mIoU written by CAMMetric. A dataset base sets the dataset type, root and
# split of both loaders, the evaluator's dataset and the rescale range of its images.
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="RandomColorJitter"),
    dict(type="RandomRescale", low=288, high=480, short_min=224),
    dict(type="RandomCrop", size=224),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackClsInputs"),
]
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="ResizeToMultiple", divisor=16),
    dict(type="PackClsInputs"),
]
# Total batch of the recipe (one GPU x 16 images, as the original): tools/train.py holds it on any
# number of processes (per-process batch or gradient accumulation, fma/engine/total_batch.py).
total_batch = 16
# Loaders sized for a GPU step of 26-42 ms per batch of 16 (docs/benchmarks.md, "GPU"): the
# training pipeline costs about 40-55 ms per image on one CPU core (colour jitter of the whole
# image most of it), so a batch of 16 takes 10 workers to keep the Runner loop within 1.5x of
# the model step; fewer cores than workers only share them. pin_memory speeds the host-to-GPU
# copy and does nothing without CUDA. The worker count draws the augmentations (per-worker RNG
# seeds): runs with another --cfg-options train_dataloader.num_workers=N are not bit-identical.
train_dataloader = dict(
    batch_size=16,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type="InfiniteSampler", shuffle=True, seed=0),
    dataset=dict(pipeline=train_pipeline),
)
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    pin_memory=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(with_gt=True, test_mode=True, pipeline=test_pipeline),
)
# cam float32 as the original; cam_dtype="float16" makes the files smaller (README, Stage I).
test_evaluator = dict(type="CAMMetric", cam_dtype="float32")
test_cfg = dict(type="TestLoop")
