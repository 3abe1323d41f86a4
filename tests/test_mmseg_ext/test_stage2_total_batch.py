"""Stage II holds its total batch on one process by gradient accumulation: the batch is recorded in
the checkpoints, the validation metrics and the metrics of tools/test.py, and a resumed
accumulating run ends bit for bit like an uninterrupted one."""

from __future__ import annotations

import json

import pytest
from stage2_helpers import TINY, assert_same_weights, run_tool, state_dict, train_options

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

pytestmark = pytest.mark.slow

WANT = {
    "total_batch": 4, "world_size": 1, "batch_size": 2, "accumulative_counts": 2,
    "config_batch_size": 2, "total_from": "--cfg-options",
}  # fmt: skip


def test_accumulated_total_is_recorded_and_resumes(stage2_voc, tmp_path):
    voc, seeds = stage2_voc["voc"], stage2_voc["seeds_no_255"]
    config = TINY["deeplabv3plus"]  # total_batch = 2 with batch_size 2: 4 needs 2 micro-batches
    work = tmp_path / "work"
    assert run_tool("train", [config, *train_options(voc, seeds, work), "total_batch=4"]) == 0
    assert state_dict(work / "iter_2.pth")["meta"]["fma_batch"] == WANT
    val = json.loads((work / "metrics_val_iter_2.json").read_text())
    assert val["batch"] == WANT and val["iteration"] == 2

    resumed = tmp_path / "resumed"
    opts = [*train_options(voc, seeds, resumed, iters=1), "total_batch=4"]
    assert run_tool("train", [config, *opts]) == 0
    opts = [*train_options(voc, seeds, resumed, iters=2), "total_batch=4", "--resume"]
    assert run_tool("train", [config, *opts]) == 0
    assert_same_weights(work / "iter_2.pth", resumed / "iter_2.pth")

    ev = tmp_path / "eval"
    argv = [config, work / "iter_2.pth", "--work-dir", ev, "--cfg-options",
            f"test_dataloader.dataset.data_root={voc}"]  # fmt: skip
    assert run_tool("test", argv) == 0
    metrics = json.loads((ev / "metrics_val.json").read_text())
    assert metrics["batch"] == WANT and metrics["trained_on"][0]["dir"] == str(seeds)
