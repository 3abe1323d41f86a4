# Stage I schedule (method-fma 5): SGD 1e-3, momentum 0.9, wd 5e-4; a constant 1e-5 warm-up
# (ConstantLR factor 0.01), then cosine annealing to 0. Leaves set the iteration counts.
# Mixed precision as the original (fp16 autocast, GradScaler with initial scale 2**16) when CUDA
# is available; plain fp32 on CPU (fma.models.optim_wrapper.CudaAmpOptimWrapper). For fp32 on a
# GPU as well: --cfg-options optim_wrapper.amp=False.
optim_wrapper = dict(
    type="CudaAmpOptimWrapper",
    loss_scale=dict(init_scale=2.0**16),
    dtype="float16",
    amp=True,
    optimizer=dict(type="SGD", lr=1e-3, momentum=0.9, weight_decay=5e-4),
)
param_scheduler = [
    dict(type="ConstantLR", factor=0.01, begin=0, end=500, by_epoch=False),
    dict(type="CosineAnnealingLR", T_max=1300, eta_min=0.0, begin=500, end=1800, by_epoch=False),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=1800, val_interval=10**9)
