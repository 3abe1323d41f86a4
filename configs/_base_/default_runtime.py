# Runtime shared by the stage I configs (tools/train.py, tools/test.py): fma registry scope,
# hooks, logging and seeding. Consumes nothing; produces logs under the work dir.
default_scope = "fma"
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)
log_processor = dict(by_epoch=False)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0)
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=1000),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
# A progress bar with ETA over the test loop (CAM inference); the logger above logs every 50.
custom_hooks = [dict(type="ProgressBarHook")]
vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(type="Visualizer", vis_backends=vis_backends)
