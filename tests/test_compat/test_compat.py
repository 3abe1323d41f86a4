"""The compatibility repairs (``fma.setup()``): torchvision nms, mmcv._ext, checkpoint globals."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch

import fma
from fma import _compat


def _nms_cpp_port(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Literal port of torchvision's nms_kernel.cpp (scalar loops), the reference."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    suppressed = [False] * len(scores)
    keep = []
    for a, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[a + 1 :]:
            if suppressed[j]:
                continue
            xx1, yy1 = max(boxes[i][0], boxes[j][0]), max(boxes[i][1], boxes[j][1])
            xx2, yy2 = min(boxes[i][2], boxes[j][2]), min(boxes[i][3], boxes[j][3])
            inter = max(0.0, xx2 - xx1) * max(0.0, yy2 - yy1)
            union = areas[i] + areas[j] - inter
            if union > 0 and inter / union > thr:
                suppressed[j] = True
    return keep


def test_nms_reference_hand_case():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 (0.95) wins; box 0 is identical (IoU 1) -> dropped; box 1 overlaps box 3 with
    # IoU 81/119 = 0.68 > 0.5 -> dropped; box 2 is disjoint -> kept.
    assert _compat.nms_reference(boxes, scores, 0.5).tolist() == [3, 2]
    assert _compat.nms_reference(boxes, scores, 0.7).tolist() == [3, 1, 2]


def test_nms_reference_matches_cpp_port_on_random_boxes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 60))
        xy = rng.uniform(0, 50, size=(n, 2))
        wh = rng.uniform(1, 30, size=(n, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        scores = rng.uniform(size=n).astype(np.float32)
        thr = float(rng.uniform(0.1, 0.9))
        got = _compat.nms_reference(torch.from_numpy(boxes), torch.from_numpy(scores), thr)
        assert got.tolist() == _nms_cpp_port(boxes.tolist(), scores.tolist(), thr)


def test_nms_reference_empty():
    out = _compat.nms_reference(torch.zeros((0, 4)), torch.zeros((0,)), 0.5)
    assert out.shape == (0,) and out.dtype == torch.int64


def test_torchvision_imports_and_nms_works():
    import torchvision
    from torchvision.ops import batched_nms, nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    # different categories never suppress each other
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1, 2]
    ext = sys.modules["torchvision.extension"]
    # The shim is on exactly when torchvision's own compiled ops did not load.
    assert _compat.status()["torchvision_nms_shim"] is (not ext._has_ops())
    assert torchvision.__version__


def test_torchvision_patch_is_off_when_ops_loaded():
    ext = types.SimpleNamespace(_has_ops=lambda: True, _assert_has_ops="untouched")
    _compat._allow_ops_without_c(ext)
    assert ext._assert_has_ops == "untouched"


def test_mmcv_stub_present_and_raises_named_error():
    import mmcv
    from mmengine.utils.dl_utils import mmcv_full_available

    real = importlib.machinery.PathFinder.find_spec("mmcv._ext", list(mmcv.__path__))
    if real is not None:
        pytest.skip("a full mmcv build is installed; the stand-in is not used")
    ext = sys.modules["mmcv._ext"]
    assert _compat.status()["mmcv_ext_stub"]
    assert ext.__spec__.loader is None
    assert mmcv_full_available() is False
    with pytest.raises(NotImplementedError, match="nms"):
        ext.nms(None)
    with pytest.raises(AttributeError):
        _ = ext.__path__


def test_mmcv_patch_is_off_when_real_ext_exists(tmp_path, monkeypatch):
    pkg = tmp_path / "fakemmcv"
    pkg.mkdir()
    (pkg / "_ext.py").write_text("REAL = True\n")
    monkeypatch.delitem(sys.modules, "mmcv._ext", raising=False)
    _compat._stand_in_for_mmcv_ext([str(pkg)])
    assert "mmcv._ext" not in sys.modules


def test_mmcv_stand_in_when_ext_is_absent(tmp_path, monkeypatch):
    pkg = tmp_path / "litemmcv"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    monkeypatch.delitem(sys.modules, "mmcv._ext", raising=False)
    monkeypatch.setitem(_compat._status, "mmcv_ext_stub", False)
    _compat._stand_in_for_mmcv_ext([str(pkg)])
    stub = sys.modules["mmcv._ext"]
    assert isinstance(stub, _compat._MissingMmcvExt) and _compat._status["mmcv_ext_stub"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


def test_import_fma_is_cheap_and_changes_nothing():
    out = _run(
        """
        import sys
        finders, modules = list(sys.meta_path), set(sys.modules)
        import fma
        heavy = ("torch", "numpy", "torchvision", "mmengine", "mmcv", "mmcv._ext")
        heavy = [m for m in heavy if m in sys.modules]
        assert not heavy, heavy
        assert sys.meta_path == finders, sys.meta_path
        print("ok", fma.__version__)
        """
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == f"ok {fma.__version__}"


def test_setup_makes_the_frameworks_importable():
    out = _run(
        """
        import sys
        import fma
        finders = list(sys.meta_path)
        status = fma.setup()
        assert sys.meta_path == finders  # an explicit repair, no import hook
        import mmseg.models, mmseg.apis  # need the mmcv._ext stand-in on mmcv-lite
        import open_clip, segment_anything  # need torchvision
        print("ok", sorted(k for k, v in status.items() if v))
        """
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok ")


def test_setup_after_torchvision_was_imported_keeps_nms_working():
    """A torchvision imported before ``fma.setup()`` still gets a working nms when it loaded."""
    out = _run(
        """
        import fma
        fma.setup()
        import torch, torchvision
        from fma import _compat
        _compat._installed = False  # a second, late call must not redefine or break anything
        fma.setup()
        from torchvision.ops import nms
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11.0]])
        print(nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist())
        """
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[0]"


def test_without_setup_torchvision_fails_on_this_stack():
    """Why the repair exists: without it, torchvision lacking ``_C`` cannot even be imported."""
    if not _compat.status()["torchvision_nms_shim"]:
        pytest.skip("torchvision's compiled ops load here; nothing to repair")
    out = _run("import torch, torchvision")
    assert out.returncode != 0
    assert "torchvision::nms does not exist" in out.stderr


def test_scoped_checkpoint_globals(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer

    buf = HistoryBuffer()
    buf.update(1.5)
    ckpt = {"message_hub": {"loss": buf}, "meta": {"seed": np.int64(3), "arr": np.arange(3)}}
    path = tmp_path / "own.pth"
    torch.save(ckpt, path)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)
    with _compat.mmengine_checkpoint_globals():
        loaded = torch.load(path, weights_only=True)
    assert loaded["message_hub"]["loss"].current() == 1.5
    assert loaded["meta"]["arr"].tolist() == [0, 1, 2]
    # the allowlist does not leak out of the block
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)


def test_checkpoint_globals_without_an_allowlist_api(monkeypatch):
    """torch < 2.5 (the gpu-cu121-mmcv recipe's torch 2.1) has no safe_globals: the block adds
    nothing (its torch.load defaults to weights_only=False) instead of failing."""
    import torch

    monkeypatch.delattr(torch.serialization, "safe_globals")
    entered = []
    with _compat.mmengine_checkpoint_globals():
        entered.append(True)
    assert entered == [True]


def test_setup_is_idempotent():
    finders = list(sys.meta_path)
    libraries = len(_compat._keepalive)
    assert fma.setup() == fma.setup() == _compat.status()
    assert sys.meta_path == finders and len(_compat._keepalive) == libraries
