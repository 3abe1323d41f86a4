"""The demo pipeline end to end with minimal sizes, through ``tools/reproduce.py``.

``configs/pipelines/demo.py`` runs with a smaller synthetic set and a shorter tiny CLIP
pretraining (``--set``); every step's outputs, the metrics of the four evaluations and the
report are checked, and a rerun skips every step.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config
from tool_modules import scaled_timeout

REPO = Path(__file__).resolve().parents[2]
SMALL = ["num_train=16", "num_val=4", "clip_steps=20", "clip_corpus=64"]
AGREED_KEYS = {"name", "tool", "module", "args", "inputs", "outputs", "distributed", "metrics",
               "label"}  # fmt: skip


def _expand(text: str, env: dict[str, str]) -> str:
    for _ in range(5):
        new = re.sub(r"\{(\w+)\}", lambda m: env.get(m.group(1), m.group(0)), text)
        if new == text:
            return new
        text = new
    return text


def test_pipeline_config_has_the_agreed_format():
    cfg = Config.fromfile(REPO / "configs/pipelines/demo.py")
    assert cfg.pipeline["name"] == "demo" and cfg.work_dir == "work_dirs/demo"
    assert {"data_root", "clip", "sam"} <= set(cfg.vars)
    names = [s["name"] for s in cfg.steps]
    assert len(names) == len(set(names))
    for step in cfg.steps:
        assert set(step) <= AGREED_KEYS, step["name"]
        assert ("tool" in step) != ("module" in step)
        if "tool" in step:
            assert (REPO / step["tool"]).is_file()
        for arg in step["args"]:
            for key in re.findall(r"\{(\w+)\}", arg):
                assert key == "work_dir" or key in cfg.vars, (step["name"], key)
            if arg.startswith("configs/"):
                assert (REPO / arg).is_file()


@pytest.mark.slow
def test_demo_chain_end_to_end(tmp_path):
    cfg = Config.fromfile(REPO / "configs/pipelines/demo.py")
    env = {"work_dir": str(tmp_path), **{k: str(v) for k, v in cfg.vars.items()}}
    env = {k: _expand(v, env) for k, v in env.items()}
    argv = [sys.executable, "tools/reproduce.py", "configs/pipelines/demo.py", "--work-dir",
            str(tmp_path), *[a for v in SMALL for a in ("--set", v)]]  # fmt: skip
    proc = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=scaled_timeout(900)
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    for step in cfg.steps:
        for out in step.get("outputs", []):
            assert Path(_expand(out, env)).exists(), (step["name"], out)
    again = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=scaled_timeout(300)
    )
    assert again.returncode == 0 and again.stdout.count(": skip -- ") == len(cfg.steps)
    metrics = {
        s["name"]: json.loads(Path(_expand(s["metrics"], env)).read_text())["mIoU"]
        for s in cfg.steps
        if s.get("metrics")
    }
    assert set(metrics) == {"eval_cams", "eval_seeds_coarse", "eval_seeds_fine", "stage2_test"}
    assert all(0 <= v <= 100 for v in metrics.values())
    html = (tmp_path / "report/index.html").read_text()
    assert "Not a result" in html and html.count("base64,") == 4 * 6 + 4 * 2
    assert "missing" not in html.split("Metrics per stage")[1].split("</table>")[0]
    assert html.count("SAMS on the classification CAMs; mIoU ") == 4  # per-image seed scores
    assert "improve on the CAMs" in html and "zero-shot segmentation" in html
