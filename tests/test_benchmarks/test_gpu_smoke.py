"""benchmarks/gpu.py: the smoke run on the CPU (tiny CLIP, tiny stage II configs, real mini VOC
images) writes one JSON row per stage and precision, and the GPU-hours of each pipeline follow
from the rows and the real configs' iterations (hand-computed cases)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu.py"
REAL_SAM = REPO / "benchmarks" / "_gpu_sam.py"

# Stands in for benchmarks/_gpu_sam.py where that file is absent: the same interface.
SAM_STAND_IN = """
def sam_rows(device, smoke, image_paths, checkpoint, precisions):
    return [{"stage": "sam_fma_preset", "precision": p, "s_per_img": 2.0, "peak_gib": None,
             "masks_per_img": 0.0, "note": f"stand-in, {len(image_paths)} images"}
            for p in precisions]
"""


def _module():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_hours_from_rows_and_configs() -> None:
    """Mask2Former VOC: 80,000 updates of total batch 4 at per-process batch 2 = 2 micro-batches;
    COCO: 100,000. DeepLabV3+ VOC: 40,000 x (16 / 4). SAM: s/img x images; CAMs: twice."""
    gpu = _module()
    rows = [
        {"stage": "sam_fma_preset", "precision": "fp32", "s_per_img": 1.8},
        {"stage": "stage I cls prompts", "precision": "fp16 amp", "s_per_iter": 0.02},
        {"stage": "stage I seg prompts", "precision": "fp16 amp", "s_per_iter": 0.036},
        {"stage": "CAMs (Softmax-GradCAM + CAA)", "precision": "fp16 amp", "s_per_img": 0.018},
        {"stage": "stage II deeplabv3plus", "precision": "fp32", "s_per_iter": 0.09},
        {"stage": "stage II mask2former", "precision": "fp32", "s_per_iter": 0.36},
        {"stage": "stage II mask2former", "precision": "bf16", "s_per_iter": 0.18},
    ]
    by = {(p["pipeline"].split()[0], p["precision"]): p for p in gpu.gpu_hours(rows)}
    voc = by[("voc12", "fp32")]["gpu_hours"]
    assert voc["sam masks"] == round(1.8 * 10582 / 3600, 2) == 5.29
    assert voc["stage I cls"] == round(0.02 * 1800 / 3600, 2) == 0.01
    assert voc["stage I seg"] == round(0.036 * 17000 / 3600, 2) == 0.17
    assert voc["CAMs x2"] == round(0.018 * 10582 * 2 / 3600, 2) == 0.11
    assert voc["stage II deeplabv3plus"] == round(0.09 * 40000 * 4 / 3600, 2) == 4.0
    assert voc["stage II mask2former"] == round(0.36 * 80000 * 2 / 3600, 2) == 16.0
    assert by[("voc12", "bf16")]["gpu_hours"]["stage II mask2former"] == 8.0
    assert set(by[("voc12", "bf16")]["missing"]) == {"sam masks", "stage II deeplabv3plus"}
    coco = by[("coco14", "fp32")]["gpu_hours"]
    assert coco["stage II mask2former"] == round(0.36 * 100000 * 2 / 3600, 2) == 20.0
    assert coco["sam masks"] == round(1.8 * 82081 / 3600, 2)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.realdata
def test_smoke_run_on_cpu_writes_rows(voc_mini, tmp_path) -> None:
    out = tmp_path / "gpu.json"
    argv = [sys.executable, str(SCRIPT), "--device", "cpu", "--smoke", "--voc-mini", str(voc_mini),
            "--json", str(out)]  # fmt: skip
    if not REAL_SAM.is_file():
        stand_in = tmp_path / "_gpu_sam.py"
        stand_in.write_text(SAM_STAND_IN)
        argv += ["--sam-module", str(stand_in)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True and result["device"] == "cpu"
    assert result["cudnn_benchmark"] is False
    rows = result["rows"]
    stages = {(r["stage"], r["precision"]) for r in rows}
    assert {("stage I cls prompts", "fp32"), ("stage I seg prompts", "fp32"),
            ("CAMs (Softmax-GradCAM + CAA)", "fp32")} <= stages  # fmt: skip
    for net in ("deeplabv3plus", "mask2former"):
        assert {(f"stage II {net}", "fp32"), (f"stage II {net}", "bf16")} <= stages
    sam = [r for r in rows if r["stage"].startswith("sam")]
    assert sam and all({"s_per_img", "peak_gib", "masks_per_img", "note"} <= set(r) for r in sam)
    for r in rows:
        if r["stage"].startswith("sam"):
            continue
        value = r.get("s_per_iter", r.get("s_per_img"))
        assert value is not None and 0 < r["step_s"] <= value + 1e-3, r  # a step within its loop
        assert r["iterations"] == 3 and r["peak_gib"] is None  # 1 warm-up + 2 timed; no CUDA
        assert (REPO / r["config"]).is_file()
    stage2 = [r for r in rows if r["stage"].startswith("stage II")]
    assert all("tiny" in r["config"] and "cudnn.benchmark off" in r["note"] for r in stage2)
    pipelines = {(p["pipeline"].split()[0], p["precision"]) for p in result["pipelines"]}
    assert pipelines == {(d, p) for d in ("voc12", "coco14") for p in ("fp32", "bf16")}
    assert "stage II mask2former" in result["pipelines"][0]["gpu_hours"]
    assert "GPU-hours" not in done.stdout and "| stage | precision |" in done.stdout
