"""Compatibility repairs for the CPU stack: one explicit call, :func:`install` (``fma.setup()``).

It repairs two install-level gaps of the tested version set (see README "Installation") and leaves
a stack alone where the real compiled extensions are present, so a CUDA install is untouched:

1. **torchvision without its compiled ops.** PyPI's torchvision 0.28.0 wheel is a CUDA build; next
   to the CPU torch its ``_C`` extension cannot load, and ``import torchvision`` then fails in
   ``_meta_registrations`` (``operator torchvision::nms does not exist``). That breaks open_clip,
   timm, segment_anything and mmengine's Runner. When ``_C`` does not load, :func:`install`
   defines the ``torchvision::nms`` and ``::qnms`` operators with :mod:`torch.library` (a
   pure-PyTorch CPU kernel, the greedy algorithm of torchvision's ``nms_kernel.cpp``) *before*
   importing torchvision, then lets torchvision's ops run without ``_C``. Other compiled
   torchvision ops (roi_pool, deform_conv2d, image decoding) stay unavailable; roi_align uses
   torchvision's Python fallback.
2. **mmcv-lite without ``mmcv._ext``.** Every ``mmseg.models``/``mmseg.apis`` import goes through
   ``mmcv.ops``, which loads the compiled ``mmcv._ext``. When no real ``mmcv/_ext*`` module
   exists, :func:`install` registers a stand-in module in :data:`sys.modules` whose functions
   raise :class:`NotImplementedError` naming the op when called. Its ``__spec__`` has
   ``loader=None`` so that mmengine's ``mmcv_full_available()`` correctly answers False.

Nothing happens at import: ``import fma`` imports neither torch nor torchvision nor mmcv, and no
import hook is installed. Whoever is about to import torchvision, open_clip, segment_anything,
mmseg or mmengine's Runner calls ``fma.setup()`` first (the tools that use them, ``python -m
fma.env``, the test session, a notebook's first cell). The call is idempotent and cheap once done;
the first call imports torch and torchvision (when installed), since the operators must exist
before torchvision's own import registers their meta kernels. A torchvision already imported
before the call is repaired only where that still helps (its ops run without ``_C``).

It also offers :func:`mmengine_checkpoint_globals`, a *scoped* allowlist for loading checkpoints
that an mmengine run wrote itself under torch's ``weights_only=True`` loader (they contain
mmengine's ``HistoryBuffer`` and numpy scalars). Third-party weights (CLIP, SAM, backbones) are
always loaded with the default ``weights_only=True`` and no extra globals; the process-wide
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` switch is never set.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
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


def _torchvision_c_loads(locations: list[str]) -> bool:
    """Whether torchvision's compiled ``_C`` loads, tried the way ``torchvision.extension`` does.

    Loading it here is harmless: torchvision's own load of the same file finds it loaded.
    """
    import torch

    spec = importlib.machinery.PathFinder.find_spec("torchvision._C", locations)
    if spec is None or not spec.origin:
        return False
    try:
        torch.ops.load_library(spec.origin)
    except (ImportError, OSError):
        return False
    return True


def _define_torchvision_ops() -> None:
    """Define ``torchvision::nms`` / ``::qnms`` with the pure-PyTorch kernel (CPU)."""
    import torch

    if hasattr(torch.ops.torchvision, "nms"):
        return
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", nms_reference, "CPU")
    lib.impl("qnms", _qnms_reference, "QuantizedCPU")
    _keepalive.append(lib)


def _allow_ops_without_c(ext: Any) -> None:
    """Let torchvision's ops run although ``_C`` did not load (``ext``: torchvision.extension).

    ``_has_ops`` stays False, so torchvision keeps its Python fallbacks (roi_align) and skipped
    the meta/autograd registrations of ops that do not exist. nms only asserts that ops exist:
    every module that imported ``_assert_has_ops`` by name gets a no-op instead.
    """
    if ext._has_ops():  # the compiled ops loaded: nothing to do
        return
    original = ext._assert_has_ops

    def _assert_has_ops() -> None:
        return None

    for name, module in list(sys.modules.items()):
        if name.startswith("torchvision") and getattr(module, "_assert_has_ops", None) is original:
            module._assert_has_ops = _assert_has_ops  # type: ignore[attr-defined]
    ext._assert_has_ops = _assert_has_ops
    _status["torchvision_nms_shim"] = True


def _repair_torchvision() -> None:
    """Make ``import torchvision`` work without ``_C`` (no-op where torchvision is absent)."""
    if "torchvision" not in sys.modules:
        spec = importlib.util.find_spec("torchvision")
        if spec is None or not spec.submodule_search_locations:
            return
        if not _torchvision_c_loads(list(spec.submodule_search_locations)):
            _define_torchvision_ops()
    import torchvision.extension

    _allow_ops_without_c(torchvision.extension)


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


def _stand_in_for_mmcv_ext(locations: list[str] | None = None) -> None:
    """Register the ``mmcv._ext`` stand-in when mmcv is installed without a real ``_ext``.

    Args:
        locations: mmcv's package folders; None: found without importing mmcv.
    """
    if "mmcv._ext" in sys.modules:
        return
    if locations is None:
        spec = importlib.util.find_spec("mmcv")
        if spec is None or not spec.submodule_search_locations:
            return  # no mmcv: nothing to stand in for
        locations = list(spec.submodule_search_locations)
    if importlib.machinery.PathFinder.find_spec("mmcv._ext", locations) is not None:
        return  # a full mmcv build: the real extension will load
    stub = _MissingMmcvExt("mmcv._ext", "fma stand-in for mmcv's compiled ops (not available)")
    stub.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", loader=None)
    sys.modules["mmcv._ext"] = stub
    if "mmcv" in sys.modules:
        sys.modules["mmcv"]._ext = stub  # type: ignore[attr-defined]
    _status["mmcv_ext_stub"] = True


# --------------------------------------------------------------------------------------------
# the explicit call
# --------------------------------------------------------------------------------------------
def install() -> dict[str, bool]:
    """Apply the repairs this stack needs (idempotent; ``fma.setup()`` calls it).

    Call it before importing torchvision, open_clip, segment_anything, mmseg or mmengine's
    Runner. The first call imports torch and torchvision when torchvision is installed.

    Returns:
        Which repairs are active (:func:`status`).
    """
    global _installed
    with _lock:
        if not _installed:
            _stand_in_for_mmcv_ext()
            _repair_torchvision()
            _installed = True
    return status()


def status() -> dict[str, bool]:
    """Which repairs are active in this process (values become True once applied)."""
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
