"""tools/demo.py: the thread settings it gives the pipeline on a busy and an idle machine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("demo_tool", REPO / "tools/demo.py")
demo_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_tool)


def test_busy_machine_gets_one_passive_thread_per_step():
    env, note = demo_tool.thread_env({"PATH": "/bin"}, None, load=3.0, cpus=2)
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    assert note.startswith("busy machine (load 3.0 on 2 CPUs)")


def test_idle_machine_gets_one_thread_and_user_settings_are_left_alone():
    env, note = demo_tool.thread_env({"PATH": "/bin"}, None, load=0.5, cpus=2)
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "1"} and note.startswith("OMP_NUM")
    for user in ({"OMP_NUM_THREADS": "2"}, {"OMP_WAIT_POLICY": "ACTIVE"}):
        assert demo_tool.thread_env(user, None, load=9.0, cpus=2) == (user, None)


def test_threads_option_always_wins():
    env, note = demo_tool.thread_env({"OMP_NUM_THREADS": "4"}, 2, load=0.0, cpus=2)
    assert env == {"OMP_NUM_THREADS": "2"} and note == "OMP_NUM_THREADS=2 (--threads)"


def test_a_work_dir_of_an_earlier_demo_version_is_named_before_anything_runs(tmp_path, capsys):
    from fma.demo.data import FORMAT, VERSION, make_demo_voc
    from fma.io import Manifest, write_manifest

    assert demo_tool.stale_demo(tmp_path) is None  # nothing there yet
    make_demo_voc(tmp_path / "data", num_train=2, num_val=1, size=32)
    assert demo_tool.stale_demo(tmp_path) is None  # this version's set
    old = Manifest(format=FORMAT, version=VERSION - 1, count=3, dataset="voc12", params={})
    write_manifest(tmp_path / "data", old)
    assert demo_tool.main(["--work-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"version {VERSION - 1} of the demo images" in err and f"rm -rf {tmp_path}" in err
