# Stage I schedule (method-fma 5): SGD 1e-3, momentum 0.9, wd 5e-4; a constant 1e-5 warm-up
# (ConstantLR factor 0.01), then cosine annealing to 0. Leaves set the iteration counts.
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=1e-3, momentum=0.9, weight_decay=5e-4),
)
param_scheduler = [
    dict(type="ConstantLR", factor=0.01, begin=0, end=500, by_epoch=False),
    dict(type="CosineAnnealingLR", T_max=1300, eta_min=0.0, begin=500, end=1800, by_epoch=False),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=1800, val_interval=10**9)
