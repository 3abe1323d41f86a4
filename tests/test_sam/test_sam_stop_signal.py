"""SIGTERM/SIGINT of a SAM mask run in the main process (``--workers 0``) stop it within about
one point batch, keep every finished file, leave no partial one and say how to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fma.apis.sam_masks import run_sam_masks
from fma.sam import level_masks
from fma.sam.level_masks import FmaMaskGenerator
from fma.stage import StageInterrupted
from fma.stage_workers import StopRun, check_stop, stop_signals

REPO = Path(__file__).resolve().parents[2]
# 2,304 one-point batches: one 384x512 image takes about 10 s on one CPU core.
SLOW = dict(points_per_side=48, points_per_batch=1, pred_iou_thresh=0.0)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in ("manifest.json", ".fma.lock"))


def test_check_stop_raises_only_after_a_signal_inside_stop_signals():
    check_stop()  # nothing pending: no-op
    with pytest.raises(StopRun) as err, stop_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        except KeyboardInterrupt:
            pass  # lost, as in a finaliser or code that catches everything
        check_stop()  # raises it again
        pytest.fail("check_stop did not raise")
    assert err.value.signum == signal.SIGTERM
    check_stop()  # cleared when the block ends


def test_a_lost_stop_is_honoured_at_the_next_point_batch(tmp_path, write_images, monkeypatch):
    """The signal arrives in code that swallows the KeyboardInterrupt (the third point batch
    of the second image): the run stops at the next batch, keeps the first image's file and
    writes nothing for the second; before, the run went on to the end and exited 0."""
    ids = write_images(tmp_path / "imgs", 2, size=(48, 64))
    batches = []
    process_batch = FmaMaskGenerator._process_batch

    def swallowing(self, *args, **kwargs):
        batches.append(1)
        if len(batches) == 16 + 3:  # 16 one-point batches per image at points_per_side=4
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except KeyboardInterrupt:
                pass
        return process_batch(self, *args, **kwargs)

    monkeypatch.setattr(FmaMaskGenerator, "_process_batch", swallowing)
    with pytest.raises(StageInterrupted) as err:
        run_sam_masks(
            tmp_path / "wd", image_dir=tmp_path / "imgs", source="sam", model_type="tiny",
            preset="fast", preset_overrides=dict(points_per_side=4, points_per_batch=1),
            device="cpu", progress=False,
        )  # fmt: skip
    assert err.value.signum == signal.SIGTERM
    assert len(batches) == 16 + 3  # no batch after the stop
    assert err.value.report.done == [ids[0]]
    assert _files(tmp_path / "wd" / "masks" / "all") == [f"{ids[0]}.npz"]
    assert "rerun the same command to resume" in str(err.value)


def test_chunked_whole_image_steps_give_the_same_masks(tiny_sam, synthetic_image, monkeypatch):
    image = synthetic_image(40, 56, seed=3)
    gen = FmaMaskGenerator(
        tiny_sam, points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0,
        min_mask_region_area=30, containment_thresh=0.3,
    )  # fmt: skip
    whole = gen.generate(image)
    monkeypatch.setattr(level_masks, "CHUNK_BYTES", 40 * 56 * 3)  # three masks a chunk
    chunked = gen.generate(image)
    monkeypatch.setattr(level_masks, "CHUNK_BYTES", 1)  # one mask a chunk
    single = gen.generate(image)
    assert len(whole) > 10
    assert chunked == whole and single == whole


def test_sigterm_mid_image_stops_within_seconds(tmp_path, write_images, write_config):
    sig = signal.SIGTERM
    ids = write_images(tmp_path / "imgs", 2, size=(384, 512))
    cfg = write_config(
        tmp_path / "sam_stop.py", image_dir=str(tmp_path / "imgs"), source="sam",
        model_type="tiny", preset="fast", device="cpu", preset_overrides=SLOW,
    )  # fmt: skip
    out = tmp_path / "wd" / "masks" / "all"
    cmd = [sys.executable, str(REPO / "tools" / "gen_sam_masks.py"), str(cfg), "--work-dir",
           str(tmp_path / "wd"), "--workers", "0", "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        t_first = time.monotonic()
        deadline = t_first + 300
        while not (out / f"{ids[0]}.npz").is_file():  # the first image is done
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the first image never finished"
            time.sleep(0.05)
        per_image = time.monotonic() - t_first  # an upper bound of one image's time
        time.sleep(1.0)  # well inside the second image's point batches
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    assert took < 5.0, (took, per_image)  # the image itself takes longer than per_image - 1
    assert f"stopped by {signal.Signals(sig).name}" in err and "rerun the same command" in err
    assert "Traceback" not in err, err
    assert _files(out) == [f"{ids[0]}.npz"]  # the finished file kept, no partial or temp file
    np.load(out / f"{ids[0]}.npz", allow_pickle=False).close()
