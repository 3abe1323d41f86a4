"""fma: foundation-model assisted weakly supervised semantic segmentation.

``import fma`` is cheap and changes nothing: it exports the version and :func:`setup`. Call
``fma.setup()`` before importing torchvision, open_clip, segment_anything, mmseg or mmengine's
Runner (the tools that use them do it first thing); see :mod:`fma._compat`.
"""

from fma.version import __version__

__all__ = ["__version__", "setup"]


def setup() -> dict[str, bool]:
    """Apply the compatibility repairs the installed stack needs (idempotent).

    On the CPU stack (PyPI's CUDA torchvision next to the CPU torch, mmcv-lite) it defines
    torchvision's ``nms`` operators in pure PyTorch and stands in for mmcv's compiled ``_ext``;
    a stack with the real compiled extensions is left alone. The first call imports torch and
    torchvision (when installed).

    Returns:
        Which repairs are active, e.g. ``{"torchvision_nms_shim": True, "mmcv_ext_stub": True}``.
    """
    from fma import _compat

    return _compat.install()
