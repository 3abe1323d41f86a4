"""tools/reproduce.py under faults: the runner killed mid-step, two runners on one work dir, and
data roots whose names ``--cfg-options`` would change.

* ``kill -9``, SIGTERM or SIGINT of the runner while a step sleeps leaves no process of the step
  (nor of its children, nor of torchrun's workers) within 5 s, writes no record, and the same
  command run at once continues from that step;
* a second runner on a busy work dir stops at once naming the first one's pid; ``--dry-run``
  and ``--summary`` still work beside it, and the lock is gone when its holder is killed;
* a data root with a space (or a comma, or a work dir with a space) is refused by the preflight
  before any step, naming the var and a symlink; a non-ASCII one goes through the whole tiny
  custom pipeline (``configs/pipelines/fma_custom_tiny.py``) on real mini VOC images.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from custom_folder import voc_to_custom
from tool_modules import free_port, load_tool

from fma.io.manifest import FolderLockedError, folder_lock
from fma.pipeline.config import load_pipeline
from fma.pipeline.preflight import PreflightError
from fma.pipeline.runner import run_pipeline

REPO = Path(__file__).resolve().parents[2]

# A step that records its pid (and its child's), then sleeps, unless the file "fast" exists
# next to it. With --child it starts a child in its own process group, as a tool's helper
# process would be.
NAP = r"""
import os, pathlib, subprocess, sys, time
out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
here = pathlib.Path(__file__).parent
with open(here / "calls.txt", "a") as f:
    f.write("nap\n")
if (here / "fast").exists():
    (out / "done.txt").write_text("done")
    sys.exit(0)
pids = [os.getpid()]
if "--child" in sys.argv:
    marker = sys.argv[2] + "-child"
    child = [sys.executable, "-c", "import time; time.sleep(120)", marker]
    pids.append(subprocess.Popen(child).pid)
rank = os.environ.get("LOCAL_RANK", "x")
(out / f"pids.{rank}.tmp").write_text(" ".join(map(str, pids)))
os.replace(out / f"pids.{rank}.tmp", out / f"pids.{rank}")
print("napping", flush=True)
time.sleep(120)
"""

PIPE = """
pipeline = dict(name="nap", description="one step that sleeps")
work_dir = "wd"
vars = dict(nap="{nap}", marker="{marker}", data_root="{data}", extra="")
steps = [
    dict(name="nap", tool="{{nap}}", args=["{{work_dir}}/nap", "{{marker}}", "{{extra}}",
         "--cfg-options", "x.data_root={{data_root}}", "x.out={{work_dir}}/nap",
         "x.size=[64, 64]"],
         inputs=["{{data_root}}"], outputs=["{{work_dir}}/nap"], distributed={distributed}),
]
"""


def _toy(tmp_path: Path, *, distributed: bool = False) -> Path:
    (tmp_path / "nap.py").write_text(NAP)
    (tmp_path / "data").mkdir(exist_ok=True)
    marker = f"fma-test-marker-{os.getpid()}-{tmp_path.name}"
    pipe = tmp_path / "pipe.py"
    pipe.write_text(PIPE.format(nap=tmp_path / "nap.py", marker=marker, data=tmp_path / "data",
                                distributed=distributed))  # fmt: skip
    return pipe


def _state(pid: int) -> str | None:
    """The process state letter, or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[0]


def _marked(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and _state(int(proc.name)) not in (None, "Z"):
            found.append(int(proc.name))
    return found


def _wait_for(path_glob: tuple[Path, str], count: int, runner: subprocess.Popen) -> list[int]:
    folder, pattern = path_glob
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        files = sorted(folder.glob(pattern)) if folder.is_dir() else []
        if len(files) >= count:
            return [int(p) for f in files for p in f.read_text().split()]
        assert runner.poll() is None, runner.communicate()
        time.sleep(0.1)
    raise AssertionError(f"the step did not start: {runner.communicate()}")


def _start(pipe: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "tools/reproduce.py", str(pipe), "--work-dir", str(pipe.parent / "wd"),
           *extra]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _reproduce(pipe: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "tools/reproduce.py", str(pipe), "--work-dir", str(pipe.parent / "wd"),
           *extra]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def _gone_within(pids: list[int], marker: str, seconds: float) -> float:
    """Seconds until none of ``pids`` nor any process marked ``marker`` is alive (zombies
    count as gone); fails after ``seconds``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        left = sorted({p for p in pids if _state(p) not in (None, "Z")} | set(_marked(marker)))
        if not left:
            return time.monotonic() - t0
        time.sleep(0.05)
    for pid in set(left):  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"processes of the step still alive {seconds} s after: {left}")


CASES = {
    "kill-9": (signal.SIGKILL, [], -signal.SIGKILL, None),
    "term-with-child": (signal.SIGTERM, ["--set", "extra=--child"], 143, "stopped by SIGTERM"),
    "int-with-child": (signal.SIGINT, ["--set", "extra=--child"], 130, "interrupted"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_runner_stopped_mid_step_leaves_no_step_process(tmp_path, case):
    signum, extra, code, words = CASES[case]
    pipe = _toy(tmp_path)
    marker = f"fma-test-marker-{os.getpid()}-{tmp_path.name}"
    runner = _start(pipe, *extra)
    pids = _wait_for((tmp_path / "wd" / "nap", "pids.x"), 1, runner)
    assert len(pids) == (2 if extra else 1) and _marked(marker)
    t0 = time.monotonic()
    runner.send_signal(signum)
    out, err = runner.communicate(timeout=60)
    exited = time.monotonic() - t0
    seconds = exited + _gone_within(pids, marker, 5.0)
    print(f"{case}: runner exited after {exited:.2f} s, the step's processes were gone after "
          f"{seconds:.2f} s")  # fmt: skip
    assert runner.returncode == code, (out, err)
    if words is not None:
        assert f"error: step nap {words}" in out and "rerun the same command to continue" in out
    assert not (tmp_path / "wd" / "pipeline" / "nap.json").exists()  # no record
    # The same command at once continues from that step (and is not locked out).
    (tmp_path / "fast").write_text("")
    done = _reproduce(pipe, *extra)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "nap (nap): run -- no record" in done.stdout
    assert json.loads((tmp_path / "wd" / "pipeline" / "nap.json").read_text())["exit_status"] == 0


@pytest.mark.slow
def test_runner_killed_under_torchrun_leaves_no_worker(tmp_path):
    pipe = _toy(tmp_path, distributed=True)
    marker = f"fma-test-marker-{os.getpid()}-{tmp_path.name}"
    launcher = ["--launcher", "pytorch", "--nproc-per-node", "2", "--master-port", str(free_port())]
    runner = _start(pipe, *launcher)
    workers = _wait_for((tmp_path / "wd" / "nap", "pids.[01]"), 2, runner)
    assert len(_marked(marker)) == 3  # torchrun and its two workers (in sessions of their own)
    t0 = time.monotonic()
    runner.kill()
    runner.communicate(timeout=60)
    seconds = time.monotonic() - t0 + _gone_within(workers, marker, 5.0)
    print(f"torchrun: its workers were gone {seconds:.2f} s after the runner's kill -9")
    (tmp_path / "fast").write_text("")
    done = _reproduce(pipe, *launcher[:-1], str(free_port()))
    assert done.returncode == 0, (done.stdout, done.stderr)


@pytest.mark.slow
def test_second_runner_on_a_busy_work_dir_stops_at_once(tmp_path):
    pipe = _toy(tmp_path)
    first = _start(pipe)
    pids = _wait_for((tmp_path / "wd" / "nap", "pids.x"), 1, first)
    t0 = time.monotonic()
    second = _reproduce(pipe)
    seconds = time.monotonic() - t0
    print(f"the second runner stopped after {seconds:.1f} s (with its imports)")
    assert second.returncode == 1
    assert f"another run (pid {first.pid}) is writing to this folder" in second.stderr
    assert str(tmp_path / "wd" / "pipeline") in second.stderr
    assert (tmp_path / "calls.txt").read_text() == "nap\n"  # the second one ran nothing
    for reader in ("--dry-run", "--summary"):  # they only read: no lock
        assert _reproduce(pipe, reader).returncode == 0, reader
    first.kill()  # the kernel frees the lock with its holder
    first.communicate(timeout=60)
    _gone_within(pids, f"fma-test-marker-{os.getpid()}-{tmp_path.name}", 5.0)
    (tmp_path / "fast").write_text("")
    assert _reproduce(pipe).returncode == 0


def test_run_pipeline_refuses_a_locked_work_dir(tmp_path):
    pipe = _toy(tmp_path)
    (tmp_path / "fast").write_text("")
    pipeline = load_pipeline(pipe, root=tmp_path)
    with folder_lock(pipeline.records_dir):
        with pytest.raises(FolderLockedError, match=rf"another run \(pid {os.getpid()}\)"):
            run_pipeline(pipeline, out=io.StringIO())
        assert not (tmp_path / "calls.txt").exists()
        assert run_pipeline(pipeline, out=io.StringIO(), dry_run=True) == 0
    assert run_pipeline(pipeline, out=io.StringIO()) == 0  # released
    assert (tmp_path / "calls.txt").read_text() == "nap\n"


def test_dict_action_drops_spaces_whatever_the_quoting():
    """Why such paths are refused: mmengine's parser of --cfg-options values."""
    from mmengine.config import DictAction

    assert DictAction._parse_iterable("/x/my photos") == "/x/myphotos"
    assert DictAction._parse_iterable("'/x/my photos'") == "/x/myphotos"
    assert DictAction._parse_iterable('"/x/my photos"') == "/x/myphotos"
    assert DictAction._parse_iterable("/x/a,b") == ["/x/a", "b"]
    name = "/x/daten_\u00fcber"
    assert DictAction._parse_iterable(name) == name


@pytest.mark.parametrize(
    ("var", "name", "read", "link"),
    [
        ("data_root", "my photos", "myphotos", "my_photos"),
        ("data_root", "a,b", "['{}/a', 'b']", "a_b"),
        ("work_dir", "my work", "mywork", "my_work"),
    ],
)
def test_preflight_refuses_a_path_that_cfg_options_would_change(tmp_path, var, name, read, link):
    pipe = _toy(tmp_path)
    (tmp_path / "fast").write_text("")
    (tmp_path / name).mkdir()
    decoy = tmp_path / name.replace(" ", "")  # the folder the step would read instead
    decoy.mkdir(exist_ok=True)
    path = str(tmp_path / name)
    overrides = {"data_root": path} if var == "data_root" else None
    work_dir = path if var == "work_dir" else None
    pipeline = load_pipeline(pipe, root=tmp_path, overrides=overrides, work_dir=work_dir)
    for dry_run in (True, False):
        with pytest.raises(PreflightError) as info:
            run_pipeline(pipeline, out=io.StringIO(), dry_run=dry_run)
        text = str(info.value)
        flag = {"data_root": "--data-root", "work_dir": "--work-dir"}[var]
        key = {"data_root": "x.data_root", "work_dir": "x.out"}[var]
        assert f"{var}={path!r} ({flag}): a path with a " in text
        assert "cannot pass through --cfg-options (mmengine's DictAction " in text
        seen = read.format(tmp_path) if read.startswith("[") else repr(str(tmp_path / read))
        if var == "work_dir":
            seen = repr(str(tmp_path / read / "nap"))
        assert f"step nap would read {key}={seen}" in text, text
        assert f"e.g. a symlink: ln -s {shlex.quote(path)} {tmp_path / link}" in text
    assert not (tmp_path / "calls.txt").exists()  # no step ran, nothing was written
    assert not (tmp_path / "wd").exists() and list((tmp_path / name).iterdir()) == []


@pytest.mark.parametrize("name", ["daten_\u00fcber", "it's", "tab\there"])
def test_paths_that_arrive_intact_pass(tmp_path, name):
    pipe = _toy(tmp_path)
    (tmp_path / "fast").write_text("")
    (tmp_path / name).mkdir()
    pipeline = load_pipeline(pipe, root=tmp_path, overrides={"data_root": str(tmp_path / name)})
    assert run_pipeline(pipeline, out=io.StringIO()) == 0


@pytest.mark.slow
def test_tiny_custom_pipeline_with_a_non_ascii_data_root(voc_mini, tmp_path, capsys):
    src = voc_mini / "VOC2012"
    seg = src / "ImageSets" / "Segmentation"
    ids = (seg / "train.txt").read_text().split()[:4]
    val = (seg / "val.txt").read_text().split()[:2]
    root = voc_to_custom(src, ids, tmp_path / "daten_\u00fcber", val_ids=val)
    (root / "splits" / "train.txt").write_text("\n".join(ids) + "\n")
    work = tmp_path / "arbeit_\u00e9t\u00e9"
    reproduce = load_tool("reproduce")
    argv = ["configs/pipelines/fma_custom_tiny.py", "--data-root", str(root), "--work-dir",
            str(work)]  # fmt: skip
    assert reproduce.main(argv) == 0
    out = capsys.readouterr().out
    assert "training on 4 images (split 'train')" in out
    masks = json.loads((work / "sam" / "masks" / "train" / "manifest.json").read_text("utf-8"))
    assert masks["count"] == 4
    seeds = sorted(p.stem for p in (work / "fine_seeds" / "seeds" / "train").glob("*.png"))
    assert seeds == sorted(ids)
    metrics = json.loads((work / "stage2_eval" / "metrics_val.json").read_text("utf-8"))
    assert metrics["n_images"] == len(val) and metrics["dataset"] == "custom"
    record = json.loads((work / "pipeline" / "sam_masks.json").read_text("utf-8"))
    assert f"sam_masks.data_root={root}" in record["command"]
    # The same folder behind a name with a space is refused before any step.
    spaced = tmp_path / "daten \u00fcber"
    spaced.symlink_to(root)
    other = tmp_path / "work2"
    argv = ["configs/pipelines/fma_custom_tiny.py", "--data-root", str(spaced), "--work-dir",
            str(other)]  # fmt: skip
    assert reproduce.main(argv) == 1
    err = capsys.readouterr().err
    assert f"data_root={str(spaced)!r} (--data-root): a path with a space cannot pass" in err
    assert f"e.g. a symlink: ln -s {shlex.quote(str(spaced))} {shlex.quote(str(root))}" in err
    assert not other.exists()


def test_killing_the_demo_stops_its_runner(tmp_path):
    """``tools/demo.py`` runs the runner as a child: ``kill -9`` of the demo leaves no runner."""
    work = tmp_path / "demo_work_marker"
    demo = subprocess.Popen([sys.executable, "tools/demo.py", "--work-dir", str(work)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not _marked(f"{work}") or _marked(f"{work}") == [demo.pid]:
        assert demo.poll() is None and time.monotonic() < deadline, "the runner did not start"
        time.sleep(0.1)
    demo.kill()
    demo.wait()
    deadline = time.monotonic() + 20  # the runner's step gets SIGTERM first, then the runner ends
    while _marked(f"{work}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(f"{work}") == []
