"""Inputs that used to end in a traceback or a silently wrong run of tools/test.py and
tools/train.py, each refused with one ``error:`` line naming the file and the fix (exit 2): an
empty, damaged or code-holding checkpoint, a checkpoint folder, a stage I prompt checkpoint of
another n_ctx, a folder as CLIP weights, and a dict literal in --cfg-options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from stage1_tiny import REPO, VOC_CLS, labelled_synthetic_voc, voc_options
from tool_modules import load_tool

from fma.engine.checkpoints import CheckpointError, check_checkpoint_file, check_state_dict_fit


class _Marker:
    """Unpickling it would create a file (code that must never run)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return labelled_synthetic_voc(tmp_path_factory.mktemp("voc"))


def _refused(capfd, tool: str, argv: list, *parts: str, code: int = 2) -> str:
    """Run ``tools/<tool>.py`` in this process; it must exit with ``code`` and one ``error:``
    line holding every part."""
    with pytest.raises(SystemExit) as exc:
        load_tool(tool).main([str(a) for a in argv])
    assert exc.value.code == code
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def _prompts(path: Path, ctx: torch.Tensor, **extra) -> Path:
    torch.save({"meta": {}, "state_dict": {"prompt_learner.ctx": ctx}, **extra}, path)
    return path


# ------------------------------------------------------------------------- file checks
def test_empty_checkpoint(tmp_path, voc, capfd) -> None:
    ckpt = tmp_path / "iter_2.pth"
    ckpt.write_bytes(b"")  # was: a bare EOFError from torch.load
    argv = [VOC_CLS, ckpt, "--out", tmp_path / "cams", "--cfg-options", *voc_options(voc)]
    _refused(capfd, "test", argv, str(ckpt), "empty", "earlier iter_N.pth")
    assert not (tmp_path / "cams").exists()


def test_checkpoint_folder(tmp_path, voc, capfd) -> None:
    folder = tmp_path / "run"
    _prompts(folder.mkdir() or folder / "iter_2.pth", torch.zeros(4, 32))
    argv = [VOC_CLS, folder, "--out", tmp_path / "cams", "--cfg-options", *voc_options(voc)]
    # was: "checkpoint <folder> does not exist"
    _refused(capfd, "test", argv, str(folder), "is a folder", str(folder / "iter_2.pth"))


def test_damaged_checkpoint(tmp_path, voc, capfd) -> None:
    ckpt = tmp_path / "iter_2.pth"
    ckpt.write_bytes(b"hello world" * 10)  # was: KeyError: 101 after 300 lines
    argv = [VOC_CLS, ckpt, "--out", tmp_path / "cams", "--cfg-options", *voc_options(voc)]
    _refused(capfd, "test", argv, str(ckpt), "not a readable PyTorch checkpoint", "damaged")


def test_checkpoint_holding_code_is_refused_in_one_line(tmp_path, voc) -> None:
    """Through the command line (was: 30 lines of mmengine/torch traceback); the code it holds
    never runs."""
    marker = tmp_path / "ran"
    ckpt = _prompts(tmp_path / "iter_2.pth", torch.zeros(4, 32), extra=_Marker(str(marker)))
    argv = [VOC_CLS, ckpt, "--out", tmp_path / "cams", "--cfg-options", *voc_options(voc)]
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "test.py"), *map(str, argv)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert str(ckpt) in lines[0] and "Python code or objects" in lines[0], lines[0]
    assert "open" in lines[0] and "re-save only its tensors" in lines[0], lines[0]
    assert not marker.exists()


def test_resume_from_an_empty_last_checkpoint(tmp_path, voc, capfd) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "iter_1.pth").write_bytes(b"")
    (work / "last_checkpoint").write_text(str(work / "iter_1.pth"))
    argv = [VOC_CLS, "--work-dir", work, "--resume", "--cfg-options", *voc_options(voc)]
    _refused(capfd, "train", argv, str(work / "iter_1.pth"), "(--resume)", "empty")


def test_file_checks_pass_run_checkpoints_and_remote_locations(tmp_path) -> None:
    import numpy as np
    from mmengine.logging import HistoryBuffer

    ckpt = _prompts(tmp_path / "ok.pth", torch.zeros(4, 32))
    check_checkpoint_file(ckpt)
    # What mmengine writes besides tensors (its message hub, numpy scalars) is allowed.
    hub = {"log_scalars": {"loss": HistoryBuffer([1.0, 2.0], [1, 1])}, "best": np.float64(0.5)}
    check_checkpoint_file(_prompts(tmp_path / "run.pth", torch.zeros(4, 32), message_hub=hub))
    check_checkpoint_file("https://example.org/weights.pth")  # left to mmengine's loaders
    with pytest.raises(CheckpointError, match="not found"):
        check_checkpoint_file(tmp_path / "missing.pth", option="load_from")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint"):
        check_checkpoint_file(tmp_path / "list.pth")


# --------------------------------------------------------------------------- fit checks
@pytest.mark.slow
def test_stage1_checkpoint_of_another_n_ctx(tmp_path, voc, capfd) -> None:
    ckpt = _prompts(tmp_path / "nctx8.pth", torch.zeros(8, 32))  # was: exit 0, random prompts
    cams = tmp_path / "cams"
    argv = [VOC_CLS, ckpt, "--work-dir", tmp_path / "wd", "--out", cams, "--cfg-options"]
    line = _refused(capfd, "test", [*argv, *voc_options(voc)], str(ckpt), str(VOC_CLS))
    assert "prompt_learner.ctx is 8x32 in the checkpoint, 4x32 in the model" in line
    assert not list(cams.glob("*.npz")) and not (cams / "manifest.json").exists()
    # The same contexts with the model's shape are scored: CAM files for the 4 images.
    ok = _prompts(tmp_path / "nctx4.pth", torch.zeros(4, 32))
    argv = [VOC_CLS, ok, "--work-dir", tmp_path / "wd", "--out", cams, "--cfg-options"]
    assert load_tool("test").main([str(a) for a in [*argv, *voc_options(voc)]]) == 0
    assert len(list(cams.glob("*.npz"))) == 4


@pytest.mark.slow
def test_training_from_a_prompt_checkpoint_of_another_n_ctx(tmp_path, voc, capfd) -> None:
    ckpt = _prompts(tmp_path / "nctx8.pth", torch.zeros(8, 32))
    work = tmp_path / "work"
    argv = [VOC_CLS, "--work-dir", work, "--cfg-options", *voc_options(voc), f"load_from={ckpt}"]
    _refused(capfd, "train", argv, str(ckpt), "1 key of another shape")
    assert not list(work.glob("iter_*.pth"))


def test_fit_names_a_few_keys_of_each_kind_then_counts() -> None:
    model = {f"head.w{i}": (21, 16) for i in range(6)} | {"backbone.a": (3,), "backbone.b": (4,)}
    ckpt = {f"module.head.w{i}": torch.zeros(81, 16) for i in range(6)}  # DDP prefix revised
    ckpt |= {"backbone.a": torch.zeros(3), "extra.x": torch.zeros(1)}
    with pytest.raises(CheckpointError) as exc:
        check_state_dict_fit(model, {"state_dict": ckpt}, source="c.pth", config="cfg.py")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("c.pth: does not fit the model of cfg.py")
    assert "6 keys of another shape (head.w0 is 81x16 in the checkpoint, 21x16 in the model" in msg
    assert "also head.w1, head.w2, head.w3 and 2 more" in msg
    assert "1 key missing (backbone.b)" in msg and "1 key not in the model (extra.x)" in msg
    check_state_dict_fit({"a": (2,)}, {"a": torch.zeros(2)}, source="bare.pth")  # a bare dict


# ------------------------------------------------------------------------ other inputs
def test_clip_weights_folder(tmp_path, voc, capfd) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "ViT-B-16.pt").write_bytes(b"weights")
    options = [o for o in voc_options(voc) if not o.startswith("model.clip.pretrained")]
    argv = [VOC_CLS, "--work-dir", tmp_path / "w", "--cfg-options", *options]
    argv.append(f"model.clip.pretrained={folder}")  # was: "file not found" for a folder
    _refused(capfd, "train", argv, str(folder), "is a folder", str(folder / "ViT-B-16.pt"))


@pytest.mark.parametrize(
    ("value", "dotted"),
    [
        ("model=dict(n_ctx=4,csc=True)", "model.n_ctx=4 model.csc=True"),  # was RecursionError
        ("model={'n_ctx':4}", "model.n_ctx=4"),  # was a TypeError deep in the Runner
        ("model.clip=dict(pretrained=None)", "model.clip.pretrained=None"),
    ],
)
@pytest.mark.parametrize("tool", ["train", "test"])
def test_dict_literal_in_cfg_options(tmp_path, capfd, tool, value, dotted) -> None:
    ckpt = _prompts(tmp_path / "p.pth", torch.zeros(4, 32))
    argv = [VOC_CLS, *([ckpt] if tool == "test" else []), "--cfg-options", value]
    _refused(capfd, tool, argv, f"--cfg-options {value}", f"dotted form instead: {dotted}")


def test_merge_refuses_dict_text_kept_by_other_parsers() -> None:
    from mmengine.config import Config

    from fma.engine.config import ConfigValueError, merge_cfg_options

    cfg = Config(dict(model=dict(n_ctx=16, clip=dict(pretrained=None))))
    for value in ("dict(n_ctx=4)", ["{'n_ctx':4", "'csc':True}"]):
        with pytest.raises(ConfigValueError, match="dotted form"):
            merge_cfg_options(cfg, {"model": value})
    assert cfg.model.n_ctx == 16
    merge_cfg_options(cfg, {"model.n_ctx": 4})
    assert cfg.model.n_ctx == 4


@pytest.mark.parametrize(
    "tool", ["make_seeds", "gen_sam_masks", "sweep_seed_gamma", "export_voc_test"]
)
def test_every_tool_names_a_dict_literal_in_one_line(tool, capsys):
    """mmengine's DictAction recurses without end on ``dict(a=1,b=2)``; every tool says the
    dotted form instead."""
    from tool_modules import load_tool

    args = ["x.py", "--cfg-options", "seeding=dict(gamma=0.5,norm=True)"]
    if tool == "export_voc_test":
        args.insert(1, "ckpt.pth")
    with pytest.raises(SystemExit) as info:
        load_tool(tool).parse_args(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seeding.gamma=0.5 seeding.norm=True" in err[0], err
