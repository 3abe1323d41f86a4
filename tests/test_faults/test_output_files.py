"""Output files: modes follow the umask; one writer per output folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fma.io import write_label_map
from fma.io.atomic import atomic_path, write_bytes_atomic
from fma.io.manifest import LOCK_NAME, FolderLockedError, folder_lock
from fma.io.masks.records import save_sam_masks


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600),
                                            (0o002, 0o664)])  # fmt: skip
def test_atomic_write_follows_umask(tmp_path, umask, mask, mode):
    umask(mask)
    target = tmp_path / "a.bin"
    write_bytes_atomic(target, b"x")
    assert target.stat().st_mode & 0o777 == mode
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"y")
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]  # no temporaries
    # the same as a file created the plain way
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert plain.stat().st_mode & 0o777 == mode


def test_stage_writers_follow_umask(tmp_path, umask):
    umask(0o022)
    write_label_map(tmp_path / "l.png", np.zeros((2, 3), np.uint8))
    save_sam_masks(tmp_path / "m.json.gz", "m", 2, 3, [])
    save_sam_masks(tmp_path / "m.npz", "m", 2, 3, [])
    for name in ("l.png", "m.json.gz", "m.npz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_folder_lock_names_holder_and_is_released(tmp_path):
    out = tmp_path / "out"
    with folder_lock(out) as lock_file:
        assert lock_file == out / LOCK_NAME
        assert lock_file.read_text().strip() == str(os.getpid())
        with (
            pytest.raises(FolderLockedError, match=rf"pid {os.getpid()}\b.*another output"),
            folder_lock(out),
        ):
            pass
    with folder_lock(out):  # released on exit
        pass


def test_folder_lock_held_by_other_process_and_freed_by_its_death(tmp_path):
    out = tmp_path / "out"
    code = textwrap.dedent(f"""
        import sys, time
        from fma.io.manifest import folder_lock
        with folder_lock({str(out)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with (
            pytest.raises(FolderLockedError, match=rf"pid {proc.pid}\b"),
            folder_lock(out, wait_s=0.3),
        ):
            pass
        proc.kill()  # a killed holder leaves no stale lock
        proc.wait(timeout=10)
        t0 = time.monotonic()
        with folder_lock(out, wait_s=5):
            assert time.monotonic() - t0 < 5
    finally:
        proc.kill()
        proc.wait(timeout=10)


_SLOW_CHECK_RUN = """
import sys, time
import fma.apis.sam_masks as run
orig = run._warn_other_suffix
def slow(*a, **k):  # widen the window between the settings check and the manifest write
    print("checked", flush=True)
    time.sleep(float(sys.argv[3]))
    return orig(*a, **k)
run._warn_other_suffix = slow
from fma.io.manifest import FolderLockedError
try:
    run.run_sam_masks(sys.argv[1], image_dir=sys.argv[2], source="superpixels",
                      preset=sys.argv[4], progress=False)
except (FolderLockedError, ValueError) as exc:
    print("refused:", exc, flush=True)
    sys.exit(3)
print("done", flush=True)
"""


def test_two_runs_with_other_settings_never_mix_files(tmp_path):
    """Run B (slic) starts while run A (felzenszwalb) sits between its settings check and its
    manifest write; B must be refused, and the folder must hold A's masks only."""
    from PIL import Image

    from fma.apis.sam_masks import run_sam_masks
    from fma.io import read_manifest
    from fma.io.masks.records import read_sam_records

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(imgs / f"{i}.png")
    wd = tmp_path / "wd"
    a = subprocess.Popen([sys.executable, "-c", _SLOW_CHECK_RUN, str(wd), str(imgs), "3",
                          "felzenszwalb"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert a.stdout.readline().strip() == "checked"
        b = subprocess.run([sys.executable, "-c", _SLOW_CHECK_RUN, str(wd), str(imgs), "0",
                            "slic"], capture_output=True, text=True, timeout=120)  # fmt: skip
        out_a, _ = a.communicate(timeout=120)
    finally:
        a.kill()
        a.wait(timeout=10)
    assert b.returncode == 3, b.stdout + b.stderr
    assert f"pid {a.pid}" in b.stdout
    assert "done" in out_a
    man = read_manifest(wd / "masks" / "all")
    assert man.params["preset"] == "felzenszwalb"
    ref = run_sam_masks(tmp_path / "ref", image_dir=imgs, source="superpixels",
                        preset="felzenszwalb", progress=False).out_dir  # fmt: skip
    for i in range(3):
        got = read_sam_records(wd / "masks" / "all" / f"{i}.npz")["masks"]
        want = read_sam_records(ref / f"{i}.npz")["masks"]
        assert got == want
