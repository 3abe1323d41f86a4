"""``python -m fma.env``: which install recipe a set of installed versions is, and what it lacks.

The installed-version lookup is faked with hand-written :class:`fma.env.Stack` values (the
versions pip resolved for each recipe); one test reads this environment for real.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md

import pytest

from fma import env
from fma.env import Stack, diagnose

COMMON = {
    "mmengine": "0.10.7",
    "mmsegmentation": "1.2.2",
    "mmdet": "3.3.0",
    "open_clip_torch": "3.3.0",
    "segment-anything": "1.0",
    "pycocotools": "2.0.11",
    "setuptools": "80.10.2",
    "scikit-image": "0.26.0",
    "ftfy": "6.3.1",
    "regex": "2026.11.15",
}
# requirements/cpu-lock.txt
CPU = Stack(
    python="3.11.7",
    versions={**COMMON, "torch": "2.13.0+cpu", "torchvision": "0.28.0", "numpy": "2.4.6",
              "mmcv-lite": "2.1.0", "opencv-python": "5.0.0.93"},
    torch_cuda=None,
    mmcv_ext="absent",
)  # fmt: skip
# requirements/gpu-cu121-mmcv.txt (pip's resolution, torch from PyTorch's cu121 index)
CU121 = Stack(
    python="3.11.7",
    versions={**COMMON, "torch": "2.1.2+cu121", "torchvision": "0.16.2+cu121",
              "numpy": "1.26.4", "mmcv": "2.1.0", "opencv-python": "4.11.0.86"},
    torch_cuda="12.1",
    mmcv_ext="compiled",
)  # fmt: skip
# requirements/gpu-lite.txt after PyPI's torch 2.13.0 (a CUDA 13.0 build without a local tag)
LITE = Stack(
    python="3.12.3",
    versions={**COMMON, "torch": "2.13.0", "torchvision": "0.28.0", "numpy": "2.4.6",
              "mmcv-lite": "2.1.0", "opencv-python": "5.1.0.95"},
    torch_cuda="13.0",
    mmcv_ext="absent",
)  # fmt: skip


def with_versions(stack: Stack, drop: tuple[str, ...] = (), **changes: str) -> Stack:
    versions = {k: v for k, v in stack.versions.items() if k not in drop}
    versions.update({k.replace("_", "-"): v for k, v in changes.items()})
    return dataclasses.replace(stack, versions=versions)


def fixes(stack: Stack) -> list[str]:
    return [p.fix for p in diagnose(stack).problems]


def whats(stack: Stack) -> str:
    return " | ".join(p.what for p in diagnose(stack).problems)


@pytest.mark.parametrize(
    ("stack", "recipe"), [(CPU, "cpu"), (CU121, "gpu-cu121-mmcv"), (LITE, "gpu-lite")]
)
def test_each_recipe_is_recognised_and_complete(stack, recipe):
    d = diagnose(stack)
    assert d.recipe == recipe
    assert d.problems == () and d.complete


def test_pypi_torch_without_a_local_tag_is_a_cuda_build():
    # PyPI's Linux torch 2.1.2 is the CUDA 12.1 build; its version has no "+cu121"
    stack = with_versions(CU121, torch="2.1.2", torchvision="0.16.2")
    assert diagnose(stack).recipe == "gpu-cu121-mmcv" and diagnose(stack).complete


def test_torch_that_failed_to_import_is_placed_by_its_tag():
    stack = dataclasses.replace(CU121, torch_cuda=None, import_errors={"torch": "OSError: x"})
    d = diagnose(stack)
    assert d.recipe == "gpu-cu121-mmcv"
    assert [p.what for p in d.problems] == ["import torch fails: OSError: x"]


def test_numpy2_with_torch21_is_a_mismatch():
    stack = with_versions(CU121, numpy="2.4.6")
    assert 'pip install "numpy<2" "opencv-python<4.12"' in fixes(stack)
    assert "torch < 2.3 is built against numpy 1.x" in whats(stack)
    # the same numpy with a current torch is fine
    assert diagnose(LITE).complete


def test_opencv_that_needs_numpy2_next_to_numpy1():
    stack = with_versions(CU121, opencv_python="4.12.0.88")
    assert fixes(stack) == ['pip install "opencv-python<4.12"']


@pytest.mark.parametrize("stack", [CPU, CU121, LITE])
def test_setuptools_81_or_missing(stack):
    assert fixes(with_versions(stack, setuptools="81.0.0")) == ['pip install "setuptools>=61,<81"']
    # a Python 3.12 venv has no setuptools at all
    missing = with_versions(stack, drop=("setuptools",))
    assert fixes(missing) == ['pip install "setuptools>=61,<81"']
    assert "setuptools is not installed" in whats(missing)


def test_pkg_resources_not_importable():
    stack = dataclasses.replace(LITE, pkg_resources=False)
    assert whats(stack) == "import pkg_resources fails"


def test_mmcv_22_is_refused_by_mmseg_and_mmdet():
    full = with_versions(CU121, mmcv="2.2.0")
    assert diagnose(full).recipe == "gpu-cu121-mmcv"
    assert "mmcv 2.2.0: mmsegmentation 1.2.2 and mmdet 3.3.0 need" in whats(full)
    assert any("pip install mmcv==2.1.0 --only-binary mmcv -f https://" in f for f in fixes(full))
    lite = with_versions(LITE, mmcv_lite="2.2.0")
    assert fixes(lite) == ["pip install mmcv-lite==2.1.0"]


@pytest.mark.parametrize("stack", [CPU, CU121, LITE])
def test_missing_mmdet(stack):
    stripped = with_versions(stack, drop=("mmdet",))
    assert diagnose(stripped).recipe == diagnose(stack).recipe
    assert fixes(stripped) == ["pip install mmdet==3.3.0"]
    assert whats(stripped) == "mmdet is not installed (>=3.0,<3.4)"


def test_missing_clip_sam_and_ftfy_each_named():
    stack = with_versions(LITE, drop=("open_clip_torch", "segment-anything", "ftfy"))
    assert fixes(stack) == [
        "pip install open_clip_torch==3.3.0",
        "pip install segment-anything==1.0",
        "pip install ftfy",
    ]


def test_cuda_torch_with_mmcv_lite_without_the_fallback():
    stack = dataclasses.replace(LITE, deform_attn_fallback=False)
    d = diagnose(stack)
    assert d.recipe == "gpu-lite"
    assert [p.fix for p in d.problems] == ["pip install --force-reinstall mmcv-lite==2.1.0"]
    assert "no PyTorch fallback" in d.problems[0].what
    # the CPU recipe never needs it (mmcv runs the PyTorch function off CUDA itself)
    assert diagnose(dataclasses.replace(CPU, deform_attn_fallback=False)).complete


def test_cu121_recipe_without_compiled_ops_or_with_broken_ones():
    no_ops = dataclasses.replace(CU121, mmcv_ext="absent")
    assert "has no compiled ops" in whats(no_ops)
    assert fixes(no_ops) == [env.MMCV_CU121]
    broken = dataclasses.replace(CU121, mmcv_ext="broken: ImportError: undefined symbol: _ZN3c10")
    assert "mmcv._ext does not load (ImportError: undefined symbol" in whats(broken)
    assert fixes(broken) == [env.MMCV_CU121]


def test_cu121_recipe_with_another_torch_or_python():
    stack = with_versions(CU121, torch="2.5.1+cu124", torchvision="0.20.1+cu124")
    stack = dataclasses.replace(stack, torch_cuda="12.4")
    assert diagnose(stack).recipe == "gpu-cu121-mmcv"
    assert fixes(stack) == [env.TORCH_CU121]  # torch and torchvision: one command
    assert "torch 2.5.1+cu124 (CUDA 12.4)" in whats(stack)
    py312 = dataclasses.replace(CU121, python="3.12.3")
    assert "Python 3.12.3" in whats(py312) and len(fixes(py312)) == 1


def test_both_mmcv_flavours_or_no_torch_match_no_recipe():
    both = with_versions(LITE, mmcv="2.1.0")
    d = diagnose(both)
    assert d.recipe == "unknown"
    assert "both mmcv 2.1.0 and mmcv-lite 2.1.0 are installed" in whats(both)
    no_torch = dataclasses.replace(with_versions(CPU, drop=("torch",)), torch_cuda=None)
    assert diagnose(no_torch).recipe == "unknown"
    assert "torch is not installed" in whats(no_torch)


def test_gpu_lite_missing_torchvision_gets_the_matching_cuda_index():
    stack = with_versions(LITE, drop=("torchvision",))
    assert fixes(stack) == [
        "pip install torch==2.13.0 torchvision --index-url https://download.pytorch.org/whl/cu130"
    ]
    assert fixes(with_versions(CPU, drop=("torchvision",))) == ["./run setup"]


def test_release_parsing():
    assert env._release("2.1.2+cu121") == (2, 1, 2)
    assert env._release("2.0.0rc4") == (2, 0, 0)
    assert env._release("2026.11.15") == (2026, 11, 15)
    assert env._release("1.0") == (1, 0)


def test_main_prints_the_recipe_and_exits_by_completeness(monkeypatch, capsys):
    monkeypatch.setattr(env, "gather_stack", lambda: CU121)
    assert env.main([]) == 0
    out = capsys.readouterr().out
    assert "recipe                           gpu-cu121-mmcv" in out
    assert "status                           complete" in out
    monkeypatch.setattr(env, "gather_stack", lambda: with_versions(CU121, drop=("mmdet",)))
    assert env.main([]) == 1
    lines = capsys.readouterr().out.splitlines()
    i = lines.index("problem                          mmdet is not installed (>=3.0,<3.4)")
    assert lines[i + 1] == "  fix                            pip install mmdet==3.3.0"
    assert "status                           1 missing or mismatched" in lines


def test_this_environment_is_read_as_it_is():
    import fma
    from fma import _compat

    stack = env.gather_stack()
    assert stack.versions["torch"] == md.version("torch")
    assert ("mmcv-lite" in stack.versions) == ("mmcv-lite" in {d.metadata["Name"] for d in
                                                               md.distributions()})  # fmt: skip
    if _compat.status()["mmcv_ext_stub"]:  # mmcv-lite: fma's stand-in, no real _ext
        assert stack.mmcv_ext == "absent" and stack.deform_attn_fallback
    d = diagnose(stack)
    assert d.recipe in {"cpu", "gpu-lite", "gpu-cu121-mmcv"}
    info = env.collect_env(stack)
    assert info["fma"] == fma.__version__ and info["mmcv._ext"] == stack.mmcv_ext
