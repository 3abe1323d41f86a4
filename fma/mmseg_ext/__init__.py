"""Stage II plug-in for MMSegmentation, loaded by configs through ``custom_imports``.

``custom_imports = dict(imports=['fma.mmseg_ext', 'mmdet.models'], allow_failed_imports=False)``
registers into mmseg's own registry nodes (no fork, no vendored code):

* datasets :class:`VOCSeedDataset` and :class:`COCOObjectDataset` (seed folders as labels);
* the metric :class:`SegMetric` (confusion-matrix mIoU, per-class table, palette PNGs, panels,
  metrics JSON naming its seeds);
* the hook :class:`SeedProvenanceHook` (seeds in logs, checkpoints and metrics; bit-exact
  resume; on CUDA without compiled mmcv ops, mmcv's pure-PyTorch deformable attention, or a
  clear error with ``--require-compiled-ops``).

``fma.setup()`` runs first so that the compatibility repairs are in place before ``mmcv.ops`` or
torchvision load, also when mmseg's own ``tools/train.py`` imports this package.
"""

# ruff: noqa: E402
import fma

fma.setup()  # first: the repairs before mmcv.ops / torchvision load

from fma.mmseg_ext.datasets import COCOObjectDataset, VOCSeedDataset, resolve_seed_dir
from fma.mmseg_ext.hooks import (
    MmcvOpsMissingError,
    SeedProvenanceHook,
    check_compiled_ops,
    describe_seeds,
)
from fma.mmseg_ext.metrics import SegMetric

__all__ = [
    "COCOObjectDataset",
    "MmcvOpsMissingError",
    "SeedProvenanceHook",
    "SegMetric",
    "VOCSeedDataset",
    "check_compiled_ops",
    "describe_seeds",
    "resolve_seed_dir",
]
