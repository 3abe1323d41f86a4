"""tools/demo.py: the thin wrapper around tools/reproduce.py configs/pipelines/demo.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("demo_tool", REPO / "tools" / "demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_reproduce_command_passes_the_options_on():
    demo = _tool()
    cmd = demo.reproduce_command(demo.parse_args([]))
    assert cmd[1:] == ["tools/reproduce.py", "configs/pipelines/demo.py", "--work-dir",
                       "work_dirs/demo", "--quiet"]  # fmt: skip
    assert "--quiet" not in demo.reproduce_command(demo.parse_args(["--verbose"]))
    cmd = demo.reproduce_command(
        demo.parse_args(["--data-root", "D", "--clip", "C.pt", "--sam", "S.pth", "--set", "a=1"])
    )
    joined = " ".join(cmd)
    assert "--data-root D" in joined and "--clip C.pt" in joined and "--sam S.pth" in joined
    for item in ("a=1", "clip_model=ViT-B-16", "clip_config=None",
                 "masks_config=configs/demo/masks_sam-vit-h_demo.py"):  # fmt: skip
        assert f"--set {item}" in joined


def test_data_only_writes_the_small_synthetic_set(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "tools/demo.py"), "--work-dir", str(tmp_path), "--data-only",
         "--num-images", "3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    voc = tmp_path / "data" / "VOC2012"
    ids = (voc / "ImageSets/Segmentation/train.txt").read_text().split()
    assert ids == ["synth_000", "synth_001", "synth_002"]
    assert all((voc / "JPEGImages" / f"{i}.jpg").is_file() for i in ids)
