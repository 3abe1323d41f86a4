"""fma.stage under faults: dying workers, signals, orphans, outputs that cannot be written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fma.io import write_text_atomic
from fma.io.atomic import OutputError
from fma.stage import StageStoppedError, run_per_image


def _faulty(image_id: str, out_dir: str) -> None:
    if image_id == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if image_id == "oom":
        raise MemoryError
    write_text_atomic(Path(out_dir) / f"{image_id}.txt", image_id)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_dying_worker_fails_its_image_only(tmp_path, workers):
    ids = ["a", "segv", "b", "oom", "c", "d"]
    rep = run_per_image(ids, _faulty, (str(tmp_path),), workers=workers, progress=False,
                        output_path=lambda i: tmp_path / f"{i}.txt")  # fmt: skip
    assert sorted(rep.done) == ["a", "b", "c", "d"]
    assert sorted(rep.failed) == ["oom", "segv"]
    assert "SIGSEGV" in rep.failed["segv"] and "native code" in rep.failed["segv"]
    assert rep.failed["oom"].startswith("MemoryError")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "c.txt", "d.txt"]


def _disk_full_at_c(image_id: str, out_dir: str) -> None:
    if image_id >= "c":
        raise OutputError(Path(out_dir) / f"{image_id}.txt", 28, "no space left", "free space")
    write_text_atomic(Path(out_dir) / f"{image_id}.txt", image_id)


@pytest.mark.parametrize("workers", [0, 1])
def test_an_output_error_stops_the_run_and_keeps_finished_files(tmp_path, workers):
    ids = ["a", "b", "c", "d", "e", "f"]
    with pytest.raises(StageStoppedError) as info:
        run_per_image(ids, _disk_full_at_c, (str(tmp_path),), workers=workers, progress=False)
    rep = info.value.report
    assert rep.done == ["a", "b"] and list(rep.failed) == ["c"]
    msg = str(info.value)
    assert f"{tmp_path / 'c.txt'}: no space left; free space" in msg
    assert "2 images written in this run are kept" in msg and "rerun the same command" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


# A stage run of 40 slow images in 2 workers, as a tool would run it.
_SLOW_RUN = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from fma.io import write_text_atomic
    from fma.stage import run_per_image, tool_exit

    def slow(image_id, out_dir):
        time.sleep(0.4)
        write_text_atomic(Path(out_dir) / f"{image_id}.txt", image_id * 1000)

    def main():
        out = sys.argv[1]
        ids = [f"{i:03d}" for i in range(40)]
        rep = run_per_image(ids, slow, (out,), workers=2, progress=False,
                            output_path=lambda i: Path(out) / f"{i}.txt")
        print(rep.summary(), flush=True)
        return 0

    if __name__ == "__main__":
        sys.exit(tool_exit(main))
""")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return True
        # reap nothing here: the group's members are not our children (only the leader is)
        time.sleep(0.1)
    return False


def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "slow_run.py"
    script.write_text(_SLOW_RUN)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(out.glob("*.txt")):  # the workers are busy
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never wrote a file"
        time.sleep(0.05)
    return proc, out


def _check_kept_files(out: Path) -> list[str]:
    names = sorted(p.name for p in out.iterdir())
    assert all(not n.startswith(".") for n in names), names  # no temporary file left
    for n in names:
        assert (out / n).read_text() == n[:-4] * 1000  # every file complete
    return names


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_main_process_leaves_no_process_of_its_group(tmp_path, sig):
    proc, out = _start(tmp_path)
    try:
        os.kill(proc.pid, sig)  # the main process only, not its group
        proc.wait(timeout=30)
        assert _wait_group_gone(proc.pid, 10), "workers or the resource tracker outlived the run"
        _check_kept_files(out)
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_worker_run_quickly_and_says_how_to_resume(tmp_path, sig):
    proc, out = _start(tmp_path)
    try:
        t0 = time.monotonic()
        os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C: the whole group
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
        assert proc.returncode == 128 + sig, err
        # 40 images of 0.4 s in 2 workers take 8 s; the stop must not wait for them
        assert took < 4.0, took
        assert f"stopped by {signal.Signals(sig).name}" in err and "rerun the same command" in err
        assert _wait_group_gone(proc.pid, 10)
        names = _check_kept_files(out)
        assert 0 < len(names) < 40
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()
