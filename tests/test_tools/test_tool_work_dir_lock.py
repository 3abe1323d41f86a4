"""One writer per work dir for tools/train.py and tools/test.py: a second run into a folder that
another process holds stops at once with one line naming that pid (also under torchrun, where
rank 0 alone takes the lock), and the lock is gone once its holder is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stage1_tiny import REPO, VOC_CLS, labelled_synthetic_voc, voc_options
from tool_modules import free_port

# Holds the folder's lock (as a running training would) until it is killed.
_HOLDER = (
    "import sys, time\n"
    "from fma.io.manifest import folder_lock\n"
    "with folder_lock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return labelled_synthetic_voc(tmp_path_factory.mktemp("voc"))


def _hold(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _tool(name: str, args: list, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "tools" / f"{name}.py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _one_line(proc: subprocess.CompletedProcess, *parts: str) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.mark.slow
def test_second_training_into_a_busy_work_dir_stops_naming_the_pid(tmp_path, voc) -> None:
    work = tmp_path / "work"
    holder = _hold(work)
    try:
        proc = _tool("train", [VOC_CLS, "--work-dir", work, "--cfg-options", *voc_options(voc)])
        assert proc.returncode == 1, proc.stderr
        _one_line(proc, str(work), f"pid {holder.pid}", "--work-dir")
        # Stopped before anything was built or written: only the lock file is there.
        assert sorted(p.name for p in work.iterdir()) == [".fma.lock"]
    finally:
        holder.kill()  # kill -9: the kernel frees the lock
        holder.wait()
    proc = _tool("train", [VOC_CLS, "--work-dir", work, "--cfg-options", *voc_options(voc)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "iter_2.pth").is_file()
    assert (work / ".fma.lock").read_text() == ""  # released on exit: no holder recorded


@pytest.mark.slow
def test_cam_inference_into_a_busy_folder_stops_naming_the_pid(tmp_path, voc) -> None:
    import torch

    ckpt = tmp_path / "prompts.pth"
    torch.save({"state_dict": {"prompt_learner.ctx": torch.zeros(4, 32)}}, ckpt)
    cams = tmp_path / "cams"
    argv = [VOC_CLS, ckpt, "--work-dir", tmp_path / "wd", "--out", cams, "--cfg-options"]
    holder = _hold(cams)
    try:
        proc = _tool("test", [*argv, *voc_options(voc)])
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait()
    assert proc.returncode == 1, proc.stderr
    _one_line(proc, str(cams), f"pid {holder.pid}")
    assert sorted(p.name for p in cams.iterdir()) == [".fma.lock"]


def test_only_rank_zero_takes_the_lock(tmp_path, monkeypatch) -> None:
    from fma.engine.config import launcher_rank, output_lock
    from fma.io.manifest import folder_lock

    assert launcher_rank("pytorch", {"RANK": "1"}) == 1
    assert launcher_rank("slurm", {"SLURM_PROCID": "3"}) == 3
    assert launcher_rank("none", {"RANK": "1"}) == 0
    with folder_lock(tmp_path / "busy"):
        monkeypatch.setenv("RANK", "1")  # another rank: never waits on, never takes the lock
        with output_lock([tmp_path / "busy"], launcher="pytorch", option="--work-dir"):
            pass
        monkeypatch.setenv("RANK", "0")
        lock = output_lock([tmp_path / "busy"], launcher="pytorch", option="--work-dir")
        with pytest.raises(SystemExit) as exc, lock:
            pass
        assert exc.value.code == 1


@pytest.mark.slow
def test_torchrun_training_into_a_busy_work_dir_stops_every_rank(tmp_path, voc) -> None:
    """Rank 0 is refused before the process group exists; torchrun then ends rank 1, which
    would otherwise wait for rank 0 in the rendezvous."""
    work = tmp_path / "work"
    holder = _hold(work)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(REPO),
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(REPO / "tools" / "train.py"), str(VOC_CLS), "--work-dir", str(work),
        "--launcher", "pytorch", "--cfg-options", *voc_options(voc),
    ]  # fmt: skip
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=REPO)
    finally:
        holder.kill()
        holder.wait()
    took = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and f"pid {holder.pid}" in lines[0], out[-3000:]  # rank 0 only
    assert sorted(p.name for p in work.iterdir()) == [".fma.lock"]
    assert took < 120, took  # no rank waited for the rendezvous timeout
