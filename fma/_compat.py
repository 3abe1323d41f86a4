"""Compatibility layer for the CPU stack, installed by ``import fma`` before anything else.

It repairs two install-level gaps of the tested version set (see README "Installation") and turns
itself off where the real compiled extensions are present, so a CUDA install is left untouched:

1. **torchvision without its compiled ops.** PyPI's torchvision 0.28.0 wheel is a CUDA build; next
   to the CPU torch its ``_C`` extension cannot load, and ``import torchvision`` then fails in
   ``_meta_registrations`` (``operator torchvision::nms does not exist``). That breaks open_clip,
   timm, segment_anything and mmengine's Runner. After ``torchvision.extension`` has run, and only
   when it reports that ``_C`` did not load, we define the ``torchvision::nms`` and ``::qnms``
   operators with :mod:`torch.library` and register a pure-PyTorch CPU kernel (the greedy
   algorithm of torchvision's ``nms_kernel.cpp``). Other compiled torchvision ops (roi_pool,
   deform_conv2d, image decoding) stay unavailable; roi_align uses torchvision's Python fallback.
2. **mmcv-lite without ``mmcv._ext``.** Every ``mmseg.models``/``mmseg.apis`` import goes through
   ``mmcv.ops``, which loads the compiled ``mmcv._ext``. After ``mmcv`` is imported, and only when
   no real ``mmcv/_ext*`` module exists, we register a stand-in module whose functions raise
   :class:`NotImplementedError` naming the op when called. Its ``__spec__`` has ``loader=None``
   so that mmengine's ``mmcv_full_available()`` correctly answers False.

Both patches are applied lazily through a :data:`sys.meta_path` hook, so ``import fma`` itself
imports neither torch nor torchvision nor mmcv.

It also offers :func:`mmengine_checkpoint_globals`, a *scoped* allowlist for loading checkpoints
that an mmengine run wrote itself under torch's ``weights_only=True`` loader (they contain
mmengine's ``HistoryBuffer`` and numpy scalars). Third-party weights (CLIP, SAM, backbones) are
always loaded with the default ``weights_only=True`` and no extra globals; the process-wide
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` switch is never set.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["install", "mmengine_checkpoint_globals", "nms_reference", "status"]

_lock = threading.Lock()
_installed = False
# What was patched, for diagnostics (`python -m fma.env`) and tests.
_status: dict[str, bool] = {"torchvision_nms_shim": False, "mmcv_ext_stub": False}
_keepalive: list[Any] = []  # torch.library.Library objects must outlive the registration


# --------------------------------------------------------------------------------------------
# torchvision::nms in pure PyTorch
# --------------------------------------------------------------------------------------------
def nms_reference(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Greedy non-maximum suppression, the algorithm of torchvision's CPU ``nms_kernel.cpp``.

    Args:
        boxes: (N, 4) float tensor, (x1, y1, x2, y2).
        scores: (N,) float tensor.
        iou_threshold: boxes whose IoU with a kept, higher-scoring box is > threshold are dropped.

    Returns:
        (K,) int64 tensor of kept indices, by decreasing score (ties: lower index first).
    """
    import numpy as np
    import torch

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes.detach().cpu()[order].numpy()
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    n = b.shape[0]
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    thr = np.asarray(iou_threshold, dtype=b.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(n):
            if suppressed[i]:
                continue
            keep.append(i)
            j = slice(i + 1, n)
            w = np.maximum(0, np.minimum(x2[i], x2[j]) - np.maximum(x1[i], x1[j]))
            h = np.maximum(0, np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j]))
            inter = w * h
            ovr = inter / (areas[i] + areas[j] - inter)
            suppressed[j] |= ovr > thr
    kept = torch.as_tensor(keep, dtype=torch.int64)
    return order.cpu()[kept].to(boxes.device)


def _qnms_reference(dets: Any, scores: Any, iou_threshold: float) -> Any:
    # Quantized boxes share one scale and zero point; IoU and score order are invariant to it.
    return nms_reference(dets.int_repr().float(), scores.int_repr().float(), iou_threshold)


def _patch_torchvision_extension(ext: types.ModuleType) -> None:
    """Run right after ``torchvision.extension``; define nms/qnms if ``_C`` did not load."""
    if ext._has_ops():  # the compiled ops loaded: nothing to do
        return
    import torch

    if not hasattr(torch.ops.torchvision, "nms"):
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.impl("nms", nms_reference, "CPU")
        lib.impl("qnms", _qnms_reference, "QuantizedCPU")
        _keepalive.append(lib)

    # `_has_ops` stays False, so torchvision keeps its Python fallbacks (roi_align) and skips
    # meta/autograd registrations of ops that do not exist. nms only asserts that ops exist.
    def _assert_has_ops() -> None:
        return None

    ext._assert_has_ops = _assert_has_ops
    _status["torchvision_nms_shim"] = True


# --------------------------------------------------------------------------------------------
# mmcv._ext stand-in
# --------------------------------------------------------------------------------------------
class _MissingMmcvExt(types.ModuleType):
    """Stand-in for mmcv's compiled ``_ext``: every op exists by name and raises when called."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def _missing(*args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError(
                f"mmcv op {name!r} needs mmcv's compiled extension, which mmcv-lite lacks. "
                "Choose a model that does not use it, or install a full mmcv build matching "
                "your torch (README: 'GPU install')."
            )

        _missing.__name__ = name
        return _missing


def _patch_mmcv(mmcv: types.ModuleType) -> None:
    """Run right after ``mmcv`` is imported; register the stand-in if there is no real ``_ext``."""
    if "mmcv._ext" in sys.modules:
        return
    if importlib.machinery.PathFinder.find_spec("mmcv._ext", list(mmcv.__path__)) is not None:
        return  # a full mmcv build: the real extension will load
    stub = _MissingMmcvExt("mmcv._ext", "fma stand-in for mmcv's compiled ops (not available)")
    stub.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", loader=None)
    sys.modules["mmcv._ext"] = stub
    mmcv._ext = stub  # type: ignore[attr-defined]
    _status["mmcv_ext_stub"] = True


# --------------------------------------------------------------------------------------------
# post-import hooks
# --------------------------------------------------------------------------------------------
_HOOKS: dict[str, Callable[[types.ModuleType], None]] = {
    "torchvision.extension": _patch_torchvision_extension,
    "mmcv": _patch_mmcv,
}


class _HookedLoader(importlib.abc.Loader):
    """Delegates to the real loader and runs a hook after the module body has executed."""

    def __init__(self, loader: Any, hook: Callable[[types.ModuleType], None]) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        self._hook(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds hooked modules through the remaining finders and wraps their loaders."""

    def find_spec(
        self, fullname: str, path: Any = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        hook = _HOOKS.get(fullname)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _HookedLoader(spec.loader, hook)
                return spec
        return None


def install() -> None:
    """Install the import hooks (idempotent, cheap: imports nothing heavy)."""
    global _installed
    with _lock:
        if _installed:
            return
        sys.meta_path.insert(0, _PostImportFinder())
        _installed = True
    # Modules imported before fma: patch now where it still helps.
    if "mmcv" in sys.modules:
        _patch_mmcv(sys.modules["mmcv"])


def status() -> dict[str, bool]:
    """Which patches are active in this process (values become True once applied)."""
    return dict(_status)


# --------------------------------------------------------------------------------------------
# scoped loading of mmengine's own checkpoints
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Allow, inside the ``with`` block only, the globals an mmengine checkpoint contains.

    mmengine 0.10 stores its message hub (``HistoryBuffer``) and numpy scalars in checkpoints,
    which torch's ``weights_only=True`` loader rejects. Use this only around loading checkpoints
    the run itself wrote (``--resume``, ``load_from`` of its own work dir); loading stays on the
    restricted unpickler, with this short allowlist added.
    """
    import numpy as np
    import torch
    from mmengine.logging.history_buffer import HistoryBuffer

    if not hasattr(torch.serialization, "safe_globals"):
        # torch < 2.5 (recipe gpu-cu121-mmcv: torch 2.1) has no allowlist, and its torch.load
        # defaults to weights_only=False, so mmengine's own loads need nothing added.
        yield
        return
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
    allowed: list[Any] = [
        HistoryBuffer,
        core.multiarray._reconstruct,
        core.multiarray.scalar,
        np.ndarray,
        np.dtype,
        getattr,
    ]
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    with torch.serialization.safe_globals(allowed):
        yield
