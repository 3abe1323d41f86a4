"""``python -m fma.env``: the installed stack, the install recipe it matches, what it lacks.

The recipes (README "Installation"): ``cpu`` (``./run setup``: CPU torch, mmcv-lite),
``gpu-cu121-mmcv`` (``requirements/gpu-cu121-mmcv.txt``: torch 2.1 + CUDA 12.1 with OpenMMLab's
compiled mmcv 2.1.0) and ``gpu-lite`` (``requirements/gpu-lite.txt``: any CUDA torch with
mmcv-lite 2.1.0 and fma's compatibility layer). :func:`diagnose` is a pure function of a
:class:`Stack` (what is installed); :func:`gather_stack` reads it from this environment. Exit
code 0 when the recipe is complete, 1 when something is missing or mismatched (each listed with
the command that fixes it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.machinery
import importlib.metadata as md
import importlib.util
import platform
import re
import sys
import warnings
from collections.abc import Callable, Mapping

__all__ = ["Diagnosis", "Problem", "Stack", "collect_env", "diagnose", "gather_stack", "main"]

# fmt: off
_PACKAGES = ("torch", "torchvision", "numpy", "open_clip_torch", "segment-anything", "mmengine",
             "mmcv", "mmcv-lite", "mmsegmentation", "mmdet", "pycocotools", "setuptools",
             "opencv-python", "scikit-image", "ftfy", "regex")
# fmt: on

MMCV_CU121_INDEX = "https://download.openmmlab.com/mmcv/dist/cu121/torch2.1/index.html"
TORCH_CU121 = (
    "pip install torch==2.1.2 torchvision==0.16.2 "
    "--index-url https://download.pytorch.org/whl/cu121"
)
MMCV_CU121 = (
    "pip uninstall -y mmcv mmcv-lite && "
    f"pip install mmcv==2.1.0 --only-binary mmcv -f {MMCV_CU121_INDEX}"
)
SETUPTOOLS_SPEC = '"setuptools>=61,<81"'
NUMPY1 = 'pip install "numpy<2" "opencv-python<4.12"'
#: The pins the three recipes share (requirements/gpu-*.txt, requirements/cpu-lock.txt).
_PINS = {
    "mmengine": "mmengine==0.10.7",
    "mmsegmentation": "mmsegmentation==1.2.2",
    "mmdet": "mmdet==3.3.0",
    "open_clip_torch": "open_clip_torch==3.3.0",
    "segment-anything": "segment-anything==1.0",
    "ftfy": "ftfy",
    "regex": "regex",
    "pycocotools": "pycocotools",
}


@dataclasses.dataclass(frozen=True)
class Stack:
    """What is installed (tests build one by hand).

    Attributes:
        python: the interpreter version, e.g. ``"3.11.7"``.
        versions: distribution name -> version (``"2.1.2+cu121"``); absent = not installed.
        torch_cuda: ``torch.version.cuda`` (``"12.1"``), None for a CPU build or without torch.
        mmcv_ext: ``"compiled"`` (mmcv's ``_ext`` loads), ``"absent"`` (mmcv-lite, or no mmcv)
            or ``"broken: <error>"`` (present but does not load: built for another torch).
        pkg_resources: ``import pkg_resources`` works (mmengine needs it for ``mmseg::`` configs).
        deform_attn_fallback: mmcv has ``multi_scale_deformable_attn_pytorch`` and the
            ``MultiScaleDeformableAttnFunction`` that fma replaces on CUDA without compiled ops.
        import_errors: module -> error, for torch / torchvision / mmcv imports that failed.
    """

    python: str
    versions: Mapping[str, str]
    torch_cuda: str | None = None
    mmcv_ext: str = "absent"
    pkg_resources: bool = True
    deform_attn_fallback: bool = True
    import_errors: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One missing or mismatched part and the command that fixes it."""

    what: str
    fix: str


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """The recipe a :class:`Stack` matches and what it lacks (complete: no ``problems``)."""

    recipe: str  # "cpu" | "gpu-cu121-mmcv" | "gpu-lite" | "unknown"
    problems: tuple[Problem, ...]

    @property
    def complete(self) -> bool:
        return not self.problems


def _release(version: str) -> tuple[int, ...]:
    """``"2.1.2+cu121"`` -> (2, 1, 2); ``"2.0.0rc4"`` -> (2, 0, 0)."""
    out = []
    for part in version.split("+", 1)[0].split("."):
        m = re.match(r"\d+", part)
        if m is None:
            break
        out.append(int(m.group()))
        if m.end() < len(part):
            break
    return tuple(out)


def _local_tag(version: str) -> str:
    return version.split("+", 1)[1] if "+" in version else ""


def _in_range(version: str, low: tuple[int, ...], high: tuple[int, ...]) -> bool:
    return low <= _release(version) < high


def _torch_cuda(stack: Stack) -> str | None:
    """``torch.version.cuda``, else (torch did not import) read from a ``+cu121`` tag."""
    if stack.torch_cuda is not None:
        return stack.torch_cuda
    tag = _local_tag(stack.versions.get("torch", ""))
    if re.fullmatch(r"cu\d{3,}", tag):
        return f"{tag[2:-1]}.{tag[-1]}"
    return None


def identify(stack: Stack) -> str:
    """The recipe ``stack`` was installed with: the torch build and the mmcv flavour decide."""
    v = stack.versions
    if "torch" not in v or _local_tag(v["torch"]).startswith("rocm"):
        return "unknown"
    if _torch_cuda(stack) is None:
        return "cpu"
    full, lite = "mmcv" in v, "mmcv-lite" in v
    if full and not lite:
        return "gpu-cu121-mmcv"
    if lite and not full:
        return "gpu-lite"
    return "unknown"


def _missing_or(stack: Stack, name: str, ok: Callable[[str], bool], want: str) -> str | None:
    """What is wrong with distribution ``name`` (None: installed and ``ok(version)``)."""
    have = stack.versions.get(name)
    if have is None:
        return f"{name} is not installed ({want})"
    return None if ok(have) else f"{name} {have} does not fit ({want})"


def _any(version: str) -> bool:
    return True


def _cuda_tag(cuda: str | None) -> str:
    """``"12.1"`` -> ``"cu121"`` (the name of PyTorch's wheel index)."""
    return "cu" + (cuda or "XXX").replace(".", "")


# One Problem per statement reads better unwrapped.
# fmt: off
def _common(stack: Stack) -> list[Problem]:
    """Checks every recipe shares: setuptools/pkg_resources, the mm stack, numpy vs torch."""
    v, out = stack.versions, []

    def need(name: str, ok: Callable[[str], bool], want: str, fix: str) -> None:
        what = _missing_or(stack, name, ok, want)
        if what is not None:
            out.append(Problem(what, fix))

    need("setuptools", lambda x: _release(x) < (81,), "< 81: mmengine imports pkg_resources",
         f"pip install {SETUPTOOLS_SPEC}")
    if "setuptools" in v and _release(v["setuptools"]) < (81,) and not stack.pkg_resources:
        out.append(Problem("import pkg_resources fails",
                           f"pip install --force-reinstall {SETUPTOOLS_SPEC}"))
    if "mmcv" in v and "mmcv-lite" in v:
        out.append(Problem(f"both mmcv {v['mmcv']} and mmcv-lite {v['mmcv-lite']} are installed "
                           "(they share the mmcv/ folder)",
                           "pip uninstall -y mmcv mmcv-lite, then install the recipe's one"))
    for flavour in ("mmcv", "mmcv-lite"):
        if flavour in v and not _in_range(v[flavour], (2, 0, 0), (2, 2, 0)):
            fix = MMCV_CU121 if flavour == "mmcv" else "pip install mmcv-lite==2.1.0"
            out.append(Problem(f"{flavour} {v[flavour]}: mmsegmentation 1.2.2 and mmdet 3.3.0 "
                               "need 2.0.0rc4 <= mmcv < 2.2.0", fix))
    if "mmcv" not in v and "mmcv-lite" not in v:
        out.append(Problem("mmcv is not installed (mmcv 2.1.0 or mmcv-lite 2.1.0)",
                           f"pip install mmcv-lite==2.1.0 (gpu-cu121-mmcv: {MMCV_CU121})"))
    for name, low, high, want in (
        ("mmengine", (0, 10), (1, 0), ">=0.10,<1.0"),
        ("mmsegmentation", (1, 2), (1, 3), "1.2.x"),
        ("mmdet", (3, 0), (3, 4), ">=3.0,<3.4"),
    ):
        need(name, lambda x, lo=low, hi=high: lo <= _release(x) < hi, want,
             f"pip install {_PINS[name]}")
    for name in ("open_clip_torch", "segment-anything", "ftfy", "regex", "pycocotools"):
        need(name, _any, "needed by fma", f"pip install {_PINS[name]}")
    numpy_major = _release(v.get("numpy", "0"))[:1]
    if "torch" in v and numpy_major >= (2,) and _release(v["torch"]) < (2, 3):
        out.append(Problem(f"numpy {v['numpy']} with torch {v['torch']}: torch < 2.3 is built "
                           "against numpy 1.x", NUMPY1))
    cv = v.get("opencv-python")
    if numpy_major == (1,) and cv is not None and _release(cv) >= (4, 12):
        out.append(Problem(f"opencv-python {cv} needs numpy>=2 but numpy {v['numpy']} is "
                           "installed", 'pip install "opencv-python<4.12"'))
    for module, error in stack.import_errors.items():
        out.append(Problem(f"import {module} fails: {error}",
                           "reinstall it with the recipe's command (README: Installation)"))
    return out


def _recipe_checks(stack: Stack, recipe: str) -> list[Problem]:
    """The checks of one recipe (and the reason an ``unknown`` stack matches none)."""
    v, out = stack.versions, []
    torch_v, cuda = v.get("torch", ""), _torch_cuda(stack)
    broken = stack.mmcv_ext[8:] if stack.mmcv_ext.startswith("broken") else None
    if recipe == "gpu-cu121-mmcv":
        if not (3, 10) <= _release(stack.python)[:2] <= (3, 11):
            out.append(Problem(f"Python {stack.python}: torch 2.1 and OpenMMLab's mmcv 2.1.0 "
                               "wheels need 3.10 or 3.11 (fma needs >= 3.10)",
                               "python3.11 -m venv .venv, then requirements/gpu-cu121-mmcv.txt"))
        if _release(torch_v)[:2] != (2, 1) or cuda != "12.1":
            out.append(Problem(f"torch {torch_v} (CUDA {cuda}): mmcv 2.1.0's prebuilt ops are "
                               "built for torch 2.1 + CUDA 12.1", TORCH_CU121))
        what = _missing_or(stack, "torchvision", lambda x: _release(x)[:2] == (0, 16),
                           "0.16.x pairs with torch 2.1")
        if what is not None:
            out.append(Problem(what, TORCH_CU121))
        if stack.mmcv_ext == "absent":
            out.append(Problem(f"mmcv {v.get('mmcv')} has no compiled ops (no mmcv._ext: a build "
                               "without ops)", MMCV_CU121))
        elif broken is not None:
            out.append(Problem(f"mmcv._ext does not load ({broken}): built for another "
                               "torch/CUDA", MMCV_CU121))
        return out
    if recipe in ("gpu-lite", "cpu"):
        index = f"https://download.pytorch.org/whl/{_cuda_tag(cuda)}"
        fix = "./run setup" if recipe == "cpu" else (
            f"pip install torch=={torch_v.split('+', 1)[0]} torchvision --index-url {index}")
        what = _missing_or(stack, "torchvision", _any, "the build that pairs with torch")
        if what is not None:
            out.append(Problem(what, fix))
        if recipe == "gpu-lite" and not stack.deform_attn_fallback:
            out.append(Problem(f"mmcv-lite {v.get('mmcv-lite')} lacks "
                               "multi_scale_deformable_attn_pytorch or "
                               "MultiScaleDeformableAttnFunction: no PyTorch fallback for "
                               "Mask2Former's deformable attention on CUDA",
                               "pip install --force-reinstall mmcv-lite==2.1.0"))
        if broken is not None:
            out.append(Problem(f"mmcv._ext does not load ({broken})",
                               "pip install --force-reinstall mmcv-lite==2.1.0"))
        return out
    if "torch" not in v:
        why = "torch is not installed"
    elif _local_tag(torch_v).startswith("rocm"):
        why = f"torch {torch_v} is a ROCm build"
    else:
        why = "a CUDA torch with both or neither of mmcv and mmcv-lite"
    return [Problem(f"the installed set matches no recipe ({why})",
                    "follow requirements/gpu-cu121-mmcv.txt or requirements/gpu-lite.txt (GPU), "
                    "./run setup (CPU)")]
# fmt: on


def diagnose(stack: Stack) -> Diagnosis:
    """Which recipe ``stack`` matches and every missing or mismatched part (a pure function)."""
    recipe = identify(stack)
    by_fix: dict[str, list[str]] = {}  # one entry per command, in the order found
    for p in _recipe_checks(stack, recipe) + _common(stack):
        whats = by_fix.setdefault(p.fix, [])
        if p.what not in whats:
            whats.append(p.what)
    return Diagnosis(recipe, tuple(Problem("; ".join(w), fix) for fix, w in by_fix.items()))


def _mmcv_ext_state() -> str:
    spec = importlib.util.find_spec("mmcv")
    if spec is None or not spec.submodule_search_locations:
        return "absent"
    locations = list(spec.submodule_search_locations)
    ext = importlib.machinery.PathFinder.find_spec("mmcv._ext", locations)
    if ext is None:
        return "absent"
    try:
        import torch  # noqa: F401  (mmcv._ext links against libtorch)

        importlib.import_module("mmcv._ext")
    except Exception as exc:  # an ABI mismatch shows as ImportError / OSError
        return f"broken: {type(exc).__name__}: {exc}"
    return "compiled"


def _deform_attn_fallback() -> bool:
    try:
        msda = importlib.import_module("mmcv.ops.multi_scale_deform_attn")
    except Exception:
        return False
    return hasattr(msda, "multi_scale_deformable_attn_pytorch") and hasattr(
        msda, "MultiScaleDeformableAttnFunction"
    )


def gather_stack() -> Stack:
    """Read :class:`Stack` from this environment (imports torch, and mmcv when installed)."""
    import fma

    # The compatibility repairs, as the tools apply them. A failure here shows again below, as
    # the import error of the module at fault.
    with contextlib.suppress(Exception):
        fma.setup()
    versions: dict[str, str] = {}
    for name in _PACKAGES:
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    errors: dict[str, str] = {}
    torch_cuda = None
    for module in ("torch", "torchvision", "mmcv"):
        if importlib.util.find_spec(module) is None:
            continue
        try:
            mod = importlib.import_module(module)
        except Exception as exc:
            errors[module] = f"{type(exc).__name__}: {exc}"
            continue
        if module == "torch":
            torch_cuda = mod.version.cuda
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pkg_resources  # noqa: F401

            has_pkg_resources = True
        except Exception:
            has_pkg_resources = False
    has_mmcv = "mmcv" in versions or "mmcv-lite" in versions
    return Stack(
        python=platform.python_version(),
        versions=versions,
        torch_cuda=torch_cuda,
        mmcv_ext=_mmcv_ext_state() if has_mmcv else "absent",
        pkg_resources=has_pkg_resources,
        deform_attn_fallback=_deform_attn_fallback() if has_mmcv else False,
        import_errors=errors,
    )


def collect_env(stack: Stack | None = None) -> dict[str, str]:
    """Versions of the stack, the CUDA state and the active compatibility patches."""
    import fma
    from fma import _compat

    stack = gather_stack() if stack is None else stack
    info = {
        "python": f"{sys.version.split()[0]} ({sys.executable})",
        "platform": platform.platform(),
        "fma": fma.__version__,
    }
    for name in _PACKAGES:
        info[name] = stack.versions.get(name, "not installed")
    try:
        import torch

        info["cuda"] = f"{torch.version.cuda} (available: {torch.cuda.is_available()})"
    except ImportError:
        info["cuda"] = "torch not installed"
    info["mmcv._ext"] = stack.mmcv_ext
    info["pkg_resources"] = "importable" if stack.pkg_resources else "missing"
    for module, error in stack.import_errors.items():
        info[f"import {module}"] = f"failed: {error}"
    for key, active in _compat.status().items():
        info[f"compat.{key}"] = "active" if active else "off"
    return info


def format_diagnosis(diagnosis: Diagnosis) -> list[str]:
    """The recipe line, a status line and one ``problem`` + ``  fix`` pair per problem."""
    lines = [f"{'recipe':32s} {diagnosis.recipe}"]
    n = len(diagnosis.problems)
    lines.append(f"{'status':32s} " + ("complete" if n == 0 else f"{n} missing or mismatched"))
    for p in diagnosis.problems:
        lines.append(f"{'problem':32s} {p.what}")
        lines.append(f"{'  fix':32s} {p.fix}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the stack and the diagnosis; 0 when the recipe is complete, 1 otherwise."""
    stack = gather_stack()
    for key, value in collect_env(stack).items():
        print(f"{key:32s} {value}")
    diagnosis = diagnose(stack)
    for line in format_diagnosis(diagnosis):
        print(line)
    return 0 if diagnosis.complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
