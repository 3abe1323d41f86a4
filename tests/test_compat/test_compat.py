"""The compatibility layer: torchvision nms shim, mmcv._ext stand-in, scoped checkpoint loading."""

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
    _compat._patch_torchvision_extension(ext)  # type: ignore[arg-type]
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
    fake = types.ModuleType("mmcv")
    fake.__path__ = [str(pkg)]  # type: ignore[attr-defined]
    monkeypatch.delitem(sys.modules, "mmcv._ext", raising=False)
    _compat._patch_mmcv(fake)
    assert "mmcv._ext" not in sys.modules
    assert not hasattr(fake, "_ext")


def test_import_fma_is_cheap_and_mmseg_models_import():
    code = textwrap.dedent(
        """
        import sys
        import fma
        heavy = ("torch", "numpy", "torchvision", "mmengine", "mmcv")
        heavy = [m for m in heavy if m in sys.modules]
        assert not heavy, heavy
        import mmseg.models, mmseg.apis  # needs the mmcv._ext stand-in on mmcv-lite
        import open_clip, segment_anything  # need torchvision
        print("ok", fma.__version__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == f"ok {fma.__version__}"


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


def test_install_is_idempotent():
    before = sum(isinstance(f, _compat._PostImportFinder) for f in sys.meta_path)
    fma._compat.install()
    assert sum(isinstance(f, _compat._PostImportFinder) for f in sys.meta_path) == before == 1
