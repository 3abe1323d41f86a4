"""The README's "Your own data" walk-through runs as written on a small folder of photos.

The commands are read from the README (the bash block after the ``walkthrough`` marker). What
differs from a user's machine: ``cp ~/Pictures/pets/*.jpg`` copies three generated photos, the
weights are two tiny files under other names, and the pipeline commands
(``.venv/bin/python tools/...``, run with this test's interpreter) get ``--work-dir`` in the
test's folder; the last command (real weights, two GPUs) runs with ``--dry-run``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _walkthrough() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- walkthrough", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def test_readme_custom_walkthrough_runs(tmp_path):
    commands = _walkthrough()
    assert any("fma_custom_tiny.py" in c for c in commands)
    assert all(c.startswith(".venv/bin/python ") for c in commands if "tools/" in c)
    photos = tmp_path / "my_photos"
    # Tiny stand-ins for the weights (under other names: the published ones are hash-checked).
    weights = {"pretrains/ViT-B-16.pt": tmp_path / "clip-tiny.pt",
               "pretrains/sam_vit_h_4b8939.pth": tmp_path / "sam-tiny.pth"}  # fmt: skip
    for path in weights.values():
        path.write_bytes(b"tiny")
    rng = np.random.default_rng(0)
    outputs = []
    for command in commands:
        if command.startswith("cp ~/Pictures"):
            for i in range(1, 4):
                pixels = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(photos / "images" / f"{i:04d}.jpg")
            continue
        for old, new in weights.items():
            command = command.replace(old, str(new))
        argv = shlex.split(command.replace("my_photos", str(photos)))
        if argv[0] == ".venv/bin/python":
            argv[0] = sys.executable
            argv += ["--work-dir", str(tmp_path / Path(argv[2]).stem)]
            if "--clip" in argv and "--dry-run" not in argv:  # real weights and GPUs: the plan
                argv.append("--dry-run")
        elif argv[0] == "printf":  # the shell writes the redirect
            argv = ["bash", "-c", command.replace("my_photos", shlex.quote(str(photos)))]
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
        outputs.append(done.stdout)
    plan = outputs[-3]
    assert "2 classes; training on 3 images (split 'all')" in plan
    assert "80,000 it, total 4 = 2 proc x 2" in plan  # the plan with its estimates
    assert re.search(r"\nsam_masks +3 images ", plan)  # the photos, not the lines of classes.txt
    assert "no ground_truth/ folder" in plan and "coarse_seeds_eval" in plan
    run = tmp_path / "fma_custom_tiny"
    seeds = sorted(p.name for p in (run / "fine_seeds" / "seeds" / "all").glob("*.png"))
    assert seeds == ["0001.png", "0002.png", "0003.png"]
    assert (run / "stage2" / "iter_2.pth").is_file()
    record = json.loads((run / "pipeline" / "stage2_train.json").read_text())
    assert record["exit_status"] == 0
    assert not (run / "pipeline" / "stage2_eval.json").exists()  # no ground truth: off
    assert "would run" in outputs[-1] and "--nproc_per_node=2" in outputs[-1]
