"""The SAM rows of ``benchmarks/gpu.py`` (``benchmarks/_gpu_sam.py``) in smoke mode on CPU."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("_gpu_sam", REPO / "benchmarks/_gpu_sam.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_smoke_rows_on_cpu(tmp_path, write_images):
    ids = write_images(tmp_path, 2, size=(60, 80))
    paths = [tmp_path / f"{i}.png" for i in ids]
    rows = _module().sam_rows("cpu", True, paths, None, ["fp32", "bf16", "fp16"])
    assert [(r["stage"], r["precision"]) for r in rows] == [
        ("sam_encoder", "fp32"), ("sam_fma_preset", "fp32"),
        ("sam_encoder", "bf16"), ("sam_fma_preset", "bf16"),
        ("sam_encoder", "fp16"), ("sam_fma_preset", "fp16"),
    ]  # fmt: skip
    for r in rows:
        assert set(r) == {"stage", "precision", "s_per_img", "peak_gib", "masks_per_img", "note"}
        assert r["peak_gib"] is None  # CPU
        if r["precision"] == "fp16":  # CUDA only
            assert r["s_per_img"] is None and "needs a CUDA device" in r["note"]
            continue
        assert math.isfinite(r["s_per_img"]) and 0 < r["s_per_img"] < 60
        if r["stage"] == "sam_encoder":
            assert r["masks_per_img"] is None and "128x128" in r["note"]
        else:  # the tiny SAM's point-local masks: several per image
            assert r["masks_per_img"] > 0
            assert "crops per encoder call 1, points_per_batch 64" in r["note"]
