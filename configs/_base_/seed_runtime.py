# Stage II runtime (tools/train.py, tools/test.py): mmseg's runtime with its validation and test
# loops and hooks, checkpoints kept by val mIoU, the seed provenance hook (metrics_*.json name the
# seeds a network was trained on) and a fixed seed. A stage II config sets the checkpoint
# interval with its schedule. Consumes nothing; produces logs and checkpoints in the work dir.
_base_ = ["mmseg::_base_/default_runtime.py"]

val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, save_best="mIoU", max_keep_ckpts=2),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    visualization=dict(type="SegVisualizationHook"),
)
custom_hooks = [dict(type="SeedProvenanceHook")]
# No fixed visualizer name (mmseg names it "visualizer"): each run then gets its own instance,
# named after the run, so several runs in one process (tests, the pipeline) keep their logs apart.
visualizer = dict(
    _delete_=True, type="SegLocalVisualizer", vis_backends=[dict(type="LocalVisBackend")]
)
randomness = dict(seed=0)
