"""Print the installed stack and what the compatibility layer patched: ``python -m fma.env``."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import platform
import sys

__all__ = ["collect_env", "main"]

_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "open_clip_torch",
    "segment-anything",
    "mmengine",
    "mmcv",
    "mmcv-lite",
    "mmsegmentation",
    "mmdet",
    "pycocotools",
)


def collect_env() -> dict[str, str]:
    """Versions of the stack, the CUDA state and the active compatibility patches."""
    import fma
    from fma import _compat

    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "fma": fma.__version__,
    }
    for name in _PACKAGES:
        try:
            info[name] = md.version(name)
        except md.PackageNotFoundError:
            info[name] = "not installed"
    try:
        import torch

        info["cuda"] = f"{torch.version.cuda} (available: {torch.cuda.is_available()})"
    except ImportError:
        info["cuda"] = "torch not installed"
    for mod in ("torchvision", "mmcv"):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            info[f"import {mod}"] = f"failed: {exc}"
    for key, active in _compat.status().items():
        info[f"compat.{key}"] = "active" if active else "off"
    return info


def main() -> None:
    for key, value in collect_env().items():
        print(f"{key:32s} {value}")


if __name__ == "__main__":
    main()
