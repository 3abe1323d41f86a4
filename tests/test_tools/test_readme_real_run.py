"""The README's "Real run on a GPU" commands run as written on a miniature VOC + SBD tree.

The commands are read from the README (the bash block after the ``real-run`` marker). What
differs from a user's machine: the weights download is not run (no network here; the download
tool has its own tests) and the weights are two tiny files under other names (the published
names would fail the sha256 check, as they should); the data paths point to a tiny VOC 2012 +
SBD tree; the pipeline commands get ``--work-dir`` in the test's folder, and the real run (GPUs)
runs with ``--dry-run``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("scipy.io")

from sbd_tree import TRAIN_AUG, make_tree

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- real-run", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def test_readme_real_run_commands(tmp_path):
    commands = _commands()
    assert any("tools/prepare_voc.py" in c and "--sbd" in c for c in commands)
    voc, bench = make_tree(tmp_path)
    clip, sam = tmp_path / "clip-tiny.pt", tmp_path / "sam-tiny.pth"
    clip.write_bytes(b"tiny clip")
    sam.write_bytes(b"tiny sam")
    swap = {
        "data/VOCdevkit/VOC2012": str(voc),
        "data/benchmark_RELEASE": str(bench),
        "pretrains/ViT-B-16.pt": str(clip),
        "pretrains/sam_vit_h_4b8939.pth": str(sam),
    }
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    results = {}
    for command in commands:
        for old, new in swap.items():
            command = command.replace(old, new)
        argv = shlex.split(command)
        assert argv[0] == ".venv/bin/python", command
        argv[0] = sys.executable
        if argv[1:3] == ["tools/download.py", "clip"]:
            continue  # the network; tests/test_tools/test_download_tool.py covers the tool
        if argv[1] == "tools/reproduce.py":
            argv += ["--work-dir", str(tmp_path / "work")]
            if "--launcher" in argv and "--dry-run" not in argv:
                argv.append("--dry-run")  # the real run needs GPUs: its plan only
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900,
                              env=env)  # fmt: skip
        results[command] = done
    outputs = list(results.values())
    env_check, prepare, dry, run, verify = outputs
    assert env_check.returncode == 0, env_check.stdout + env_check.stderr
    assert prepare.returncode == 0, prepare.stdout[-2000:] + prepare.stderr[-2000:]
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split() == TRAIN_AUG
    for done in (dry, run):
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        plan = done.stdout
        assert "train_aug: 5 images (the official train_aug has 10,582)" in plan
        assert plan.count("would run") >= 11 and "dry run: nothing was run" in plan
        lines = plan.splitlines()
        head = next(
            i for i, line in enumerate(lines) if line.split()[:3] == ["step", "work", "GPU-h"]
        )
        end = next(i for i in range(head, len(lines)) if lines[i].startswith("total"))
        rows = {line.split()[0]: line.split() for line in lines[head + 2 : end + 1]}
        assert rows["sam_masks"][1:3] == ["5", "images"]
        assert " ".join(rows["stage2_train"][1:10]) == "80,000 it, total 4 = 2 proc x 2"
        assert rows["total"][1] == "15"  # GPU-hours: 80k x 0.333 s x 2 processes, and the rest
    assert verify.returncode == 1
    assert "MISSING: not produced yet" in verify.stdout  # nothing was trained here
    assert "eval/fine_seeds_train_aug.json" in verify.stdout
