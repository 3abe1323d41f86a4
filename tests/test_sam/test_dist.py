"""Sharding: two --shard runs and a 2-process torchrun (gloo, CPU) equal a single run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fma.apis.sam_masks import run_sam_masks
from fma.io import read_manifest
from fma.io.masks.records import read_sam_records

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "gen_sam_masks.py"
TINY = dict(source="sam", model_type="tiny", preset="fast", device="cpu",
            preset_overrides=dict(points_per_side=4))  # fmt: skip


def _docs(folder: Path) -> dict[str, dict]:
    """{image id: JSON document} of the ``<id>.npz`` mask files (none may be missing)."""
    docs = {p.name[: -len(".npz")]: read_sam_records(p) for p in folder.glob("*.npz")}
    assert docs, f"no mask files in {folder}"
    return dict(sorted(docs.items()))


def test_two_shards_union_equals_single_run(tmp_path, write_images):
    ids = write_images(tmp_path / "imgs", 5)
    kw = dict(image_dir=tmp_path / "imgs", progress=False, **TINY)
    single = run_sam_masks(tmp_path / "single", **kw)
    a = run_sam_masks(tmp_path / "sharded", shard="0/2", **kw)
    mid = read_manifest(a.out_dir)
    assert mid.count == 3 and mid.params["complete"] is False and mid.params["shard"] == "0/2"
    b = run_sam_masks(tmp_path / "sharded", shard=(1, 2), **kw)
    assert a.report.done == ids[0::2] and b.report.done == ids[1::2]
    assert not set(a.report.done) & set(b.report.done)
    assert _docs(a.out_dir) == _docs(single.out_dir)
    man = read_manifest(a.out_dir)
    assert man.count == 5 and man.params["complete"] is True


def test_torchrun_two_processes(tmp_path, write_images, write_config):
    ids = write_images(tmp_path / "imgs", 5)
    cfg = write_config(tmp_path / "cfg.py", image_dir=str(tmp_path / "imgs"), **TINY)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(TOOL), str(cfg), "--launcher", "pytorch", "--work-dir", str(tmp_path / "wd"),
           "--no-progress", "--show-dir", str(tmp_path / "show")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "wd" / "masks" / "all"
    single = run_sam_masks(tmp_path / "single", image_dir=tmp_path / "imgs", progress=False, **TINY)
    assert _docs(folder) == _docs(single.out_dir)
    man = read_manifest(folder)
    assert man.count == 5 and man.params["complete"] and man.params["world_size"] == 2
    assert man.params["finished"] is True
    # rank 0 prints the summary of its own shard (ids 0, 2, 4)
    assert "3 written, 0 already done, 0 failed" in proc.stdout
    assert sorted(p.stem for p in (tmp_path / "show").glob("*.png")) == ids
