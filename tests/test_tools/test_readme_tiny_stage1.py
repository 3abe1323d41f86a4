"""The "Stage I without weights" commands of docs/stages.md, run as written (tiny CLIP, CPU).

The bash block of that section is parsed (continuation lines joined, comments dropped) and every
command runs, with this test's interpreter in place of ``.venv/bin/python``, in a scratch folder
that links ``configs/``, ``tools/`` and ``tests/`` of the repository, so the relative paths of the
page and of the config work unchanged and ``work_dirs/`` lands in the scratch folder.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fma.io import read_manifest
from fma.io.cams import load_cam

REPO = Path(__file__).resolve().parents[2]
STEM = "fma-cls_prompt-clip-tiny_1xb2-20it_synthetic"


def readme_commands(section: str = "### Stage I without weights") -> list[list[str]]:
    text = (REPO / "docs" / "stages.md").read_text(encoding="utf-8")
    body = text[text.index(section) :]
    block = body[body.index("```bash\n") + len("```bash\n") :]
    block = block[: block.index("```")].replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_commands_train_and_write_cams(tmp_path) -> None:
    commands = readme_commands()
    assert [c[:2] for c in commands] == [
        [".venv/bin/python", "tools/demo.py"], [".venv/bin/python", "tools/prepare_voc.py"],
        [".venv/bin/python", "tools/train.py"], [".venv/bin/python", "tools/test.py"],
    ]  # fmt: skip
    for name in ("configs", "tools", "tests"):
        (tmp_path / name).symlink_to(REPO / name)
    for cmd in commands:
        proc = subprocess.run(
            [sys.executable, *cmd[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, (
            f"{shlex.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
        assert "Traceback" not in proc.stderr
    work = tmp_path / "work_dirs" / STEM
    assert (work / "iter_10.pth").is_file() and (work / "iter_20.pth").is_file()
    cams = work / "cams" / "train"
    man = read_manifest(cams, format="cams", version=1, dataset="voc12", split="train")
    assert man.count == 12 and man.params["complete"] is True
    assert man.params["cam_dtype"] == "float32"
    ids = (tmp_path / "work_dirs/demo/data/VOC2012/ImageSets/Segmentation/train.txt").read_text()
    for image_id in ids.split():
        rec = load_cam(cams / f"{image_id}.npz")
        assert rec.cam.dtype == np.float32 and np.isfinite(rec.cam).all()
        assert rec.cam.shape[0] == len(rec.fg_cls) >= 1
