"""A stage II checkpoint that does not fit the config's model (81 classes for a 21-class
DeepLabV3+) stops tools/test.py, tools/train.py load_from and --resume with one line naming the
keys, before any weight is copied (mmengine alone loads it with strict=False, logs "size
mismatch" and scores a randomly initialised head)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stage2_helpers import TINY, data_options, run_tool, state_dict, train_options

pytest.importorskip("mmseg", reason="stage II needs mmsegmentation (pip install fma[seg])")

import torch

pytestmark = pytest.mark.slow

CONFIG = TINY["deeplabv3plus"]


@pytest.fixture(scope="module")
def checkpoints(stage2_voc, tmp_path_factory) -> dict[str, Path]:
    """A 1-iteration 21-class checkpoint and the same with 81-class heads."""
    work = tmp_path_factory.mktemp("fit_train")
    argv = [CONFIG, *train_options(stage2_voc["voc"], stage2_voc["seeds_no_255"], work, iters=1)]
    assert run_tool("train", argv) == 0
    ckpt = state_dict(work / "iter_1.pth")
    heads = {k: torch.zeros((81, *v.shape[1:])) for k, v in ckpt["state_dict"].items()
             if ".conv_seg." in k}  # fmt: skip
    assert sorted(heads) == [
        "auxiliary_head.conv_seg.bias", "auxiliary_head.conv_seg.weight",
        "decode_head.conv_seg.bias", "decode_head.conv_seg.weight",
    ]  # fmt: skip
    c81 = work / "coco_heads.pth"
    torch.save({"meta": ckpt["meta"], "state_dict": {**ckpt["state_dict"], **heads}}, c81)
    return {"c21": work / "iter_1.pth", "c81": c81}


def _refused(capfd, tool: str, argv: list, source: Path) -> str:
    with pytest.raises(SystemExit) as exc:
        run_tool(tool, argv)
    assert exc.value.code == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"error: {source}: does not fit the model of {CONFIG}"), line
    assert "4 keys of another shape (decode_head.conv_seg.weight is 81x16x1x1 in the " in line
    assert "checkpoint, 21x16x1x1 in the model; also decode_head.conv_seg.bias" in line
    return line


def test_test_tool_refuses_an_81_class_checkpoint(checkpoints, stage2_voc, tmp_path, capfd):
    work = tmp_path / "eval"
    opts = ["--work-dir", work, "--cfg-options", *data_options(stage2_voc["voc"], Path("-"))]
    _refused(capfd, "test", [CONFIG, checkpoints["c81"], *opts], checkpoints["c81"])
    assert not (work / "metrics_val.json").exists()  # was: mIoU of a random head, exit 0
    # With --tta the model is wrapped in mmseg's SegTTAModel; the keys are compared inside it.
    _refused(capfd, "test", [CONFIG, checkpoints["c81"], "--tta", *opts], checkpoints["c81"])
    assert not (work / "metrics_val_tta.json").exists()
    # The fitting checkpoint is evaluated: 21 per-class IoUs.
    assert run_tool("test", [CONFIG, checkpoints["c21"], *opts]) == 0
    assert len(json.loads((work / "metrics_val.json").read_text())["IoU"]) == 21


def test_training_refuses_to_start_from_or_resume_an_81_class_checkpoint(
    checkpoints, stage2_voc, tmp_path, capfd
):
    voc, seeds = stage2_voc["voc"], stage2_voc["seeds_no_255"]
    work = tmp_path / "load_from"
    opts = train_options(voc, seeds, work, iters=2)
    _refused(capfd, "train", [CONFIG, *opts, f"load_from={checkpoints['c81']}"], checkpoints["c81"])
    assert not list(work.glob("iter_*.pth"))
    work = tmp_path / "resume"
    work.mkdir()
    (work / "last_checkpoint").write_text(str(checkpoints["c81"]))
    opts = train_options(voc, seeds, work, iters=2)
    _refused(capfd, "train", [CONFIG, *opts, "--resume"], checkpoints["c81"])
    assert not list(work.glob("iter_*.pth"))
