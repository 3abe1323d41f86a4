"""Import layering: the pure core stays framework-free; each external dependency has one owner.

Two checks: a static scan of every ``import`` statement in ``fma/`` (function-level imports
included), and a subprocess that imports the core and inspects ``sys.modules``. CI also runs the
import-linter contracts of ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "fma"

FRAMEWORKS = {"mmengine", "mmseg", "mmcv", "mmdet", "open_clip", "segment_anything", "torchvision"}
# Pure core (architecture L0 and L1): no frameworks at all.
PURE = ("io", "datasets/meta.py", "datasets/labels.py", "datasets/custom_labels.py",
        "datasets/layout.py", "evaluation/confusion.py", "cam", "seeding", "stage.py")  # fmt: skip
# L0: not even torch.
NO_TORCH = ("io", "datasets/meta.py", "datasets/labels.py", "datasets/custom_labels.py",
            "datasets/layout.py", "evaluation/confusion.py", "stage.py", "__init__.py",
            "version.py")  # fmt: skip
# One owner per external dependency (the compatibility layer and env report are exempt).
OWNERS = {
    "open_clip": ("clip",),
    "segment_anything": ("sam",),
    "mmseg": ("mmseg_ext",),
    "mmcv": ("mmseg_ext",),
    "mmdet": ("mmseg_ext",),
    "pycocotools": (
        "io/masks/records.py",
        "io/masks/amg.py",
        "datasets/coco_annotations.py",
        "sam",
    ),
}
EXEMPT = ("_compat.py", "env.py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _files(prefixes: tuple[str, ...]) -> list[Path]:
    out = []
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG).as_posix()
        if any(rel == pre or rel.startswith(pre.rstrip("/") + "/") for pre in prefixes):
            out.append(p)
    return out


def test_pure_core_is_framework_free():
    files = _files(PURE)
    assert any(f.parent.name == "io" for f in files)  # the scan sees the core
    bad = {f.relative_to(PKG).as_posix(): sorted(_imports(f) & FRAMEWORKS) for f in files}
    assert not {k: v for k, v in bad.items() if v}


def test_l0_does_not_import_torch():
    bad = [f.relative_to(PKG).as_posix() for f in _files(NO_TORCH) if "torch" in _imports(f)]
    assert not bad


@pytest.mark.parametrize("dependency", sorted(OWNERS))
def test_each_dependency_has_one_owner(dependency):
    owners = OWNERS[dependency]
    offenders = []
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG).as_posix()
        if rel in EXEMPT or any(rel == o or rel.startswith(o + "/") for o in owners):
            continue
        if dependency in _imports(f):
            offenders.append(rel)
    assert not offenders, f"{dependency} imported outside {owners}: {offenders}"


def test_importing_the_core_loads_no_framework():
    code = textwrap.dedent(
        """
        import importlib, sys
        import fma
        assert "torch" not in sys.modules and "numpy" not in sys.modules, "import fma is heavy"
        for name in ("fma.io", "fma.datasets", "fma.evaluation.confusion", "fma.stage",
                     "fma.seeding", "fma.cam"):
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
        loaded = sorted(m for m in ("mmengine", "mmseg", "mmcv", "mmdet", "open_clip",
                                    "segment_anything", "torchvision") if m in sys.modules)
        print(",".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""


def test_import_linter_contracts_hold():
    """The import-linter contracts of pyproject.toml (the layers contract included) are kept."""
    pyproject = (PKG.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert 'type = "layers"' in pyproject
    cli = Path(sys.executable).with_name("lint-imports")
    cmd = [str(cli)] if cli.is_file() else [sys.executable, "-m", "importlinter.cli"]
    out = subprocess.run(
        [*cmd, "--no-cache"], cwd=PKG.parent, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Layers: imports flow downward only KEPT" in out.stdout
