"""The registry nodes of fma (the only module that constructs a ``Registry``).

Child nodes of mmengine's root registries with ``scope='fma'``; ``locations`` lists the modules
that register into each node, so ``default_scope='fma'`` (or a ``fma.`` prefix on a type name)
imports them on first use. Only Runner-built objects are registered: the stage I model and its
data preprocessor, the stage I datasets and transforms, the CAM metric, the stage I optimizer
wrapper and the test-loop progress bar.
"""

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

__all__ = ["DATASETS", "HOOKS", "METRICS", "MODELS", "OPTIM_WRAPPERS", "TRANSFORMS"]

MODELS = Registry(
    "model",
    parent=MMENGINE_MODELS,
    scope="fma",
    locations=["fma.models.prompt_clip", "fma.models.data_preprocessor"],
)
DATASETS = Registry(
    "dataset",
    parent=MMENGINE_DATASETS,
    scope="fma",
    locations=["fma.datasets.voc", "fma.datasets.coco"],
)
TRANSFORMS = Registry(
    "transform", parent=MMENGINE_TRANSFORMS, scope="fma", locations=["fma.datasets.transforms"]
)
METRICS = Registry(
    "metric", parent=MMENGINE_METRICS, scope="fma", locations=["fma.evaluation.metrics"]
)
OPTIM_WRAPPERS = Registry(
    "optim_wrapper",
    parent=MMENGINE_OPTIM_WRAPPERS,
    scope="fma",
    locations=["fma.models.optim_wrapper"],
)
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope="fma", locations=["fma.engine.progress"])
