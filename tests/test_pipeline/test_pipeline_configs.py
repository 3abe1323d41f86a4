"""Every real pipeline config would be accepted step by step, and the metafile points at them.

For each step of ``configs/pipelines/*.py``: the tool exists and its own argument parser accepts
the arguments (plus ``--launcher pytorch`` for distributed steps); every config named in the
arguments loads, and every ``--cfg-options`` key exists in it (a typo would fail the run hours
in); every input comes from an earlier step or from a var (data root, weights).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pytest
from tool_modules import load_tool

from fma.engine.config import merge_cfg_options
from fma.pipeline.config import check_wiring, load_pipeline
from fma.pipeline.fingerprint import module_file
from fma.pipeline.leaderboard import load_metafile, validate_metafile

REPO = Path(__file__).resolve().parents[2]
PIPELINES = sorted((REPO / "configs" / "pipelines").glob("*.py"))
UNSET = {"pseudo_labels": "data/pseudo_labels/transcam"}  # vars a user must give


class _ParserError(Exception):
    pass


def _parser(tool: str, monkeypatch) -> argparse.ArgumentParser:
    """The argparse parser a tool builds, captured when its parse_args() runs."""
    module = load_tool(Path(tool).stem)
    got = {}

    def capture(self, args=None, namespace=None):
        got["parser"] = self
        raise _ParserError

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", capture)
        with pytest.raises(_ParserError):
            module.parse_args([])
    return got["parser"]


def _cfg_options(args: list[str]) -> dict[str, str]:
    if "--cfg-options" not in args:
        return {}
    out = {}
    for item in args[args.index("--cfg-options") + 1 :]:
        if item.startswith("--"):
            break
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _load(path: Path):
    from mmengine.config import Config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Config.fromfile(str(path), import_custom_modules=False)


def test_there_are_pipelines():
    names = {p.stem for p in PIPELINES}
    assert {"fma_voc12", "fma_coco14", "sepl_voc12", "fma_sepl_voc12"} <= names


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_every_step_would_be_accepted(path, monkeypatch):
    from mmengine.config import Config

    raw = Config.fromfile(str(path)).get("vars") or {}
    overrides = {k: UNSET.get(k, f"data/{k}") for k, v in raw.items() if v is None}
    pipeline = load_pipeline(path, root=REPO, overrides=overrides)
    assert check_wiring(pipeline) == []
    parsers: dict[str, argparse.ArgumentParser] = {}
    for step in pipeline.steps:
        if not step.enabled:
            continue
        assert step.error is None, step.error
        if step.module is not None:  # python -m: it must be importable from the root
            assert module_file(step.module, REPO) is not None, f"{step.name}: {step.module}"
            continue
        assert (REPO / step.tool).is_file(), f"{step.name}: {step.tool}"
        if step.tool not in parsers:
            parsers[step.tool] = _parser(step.tool, monkeypatch)
        argv = step.args + (["--launcher", "pytorch"] if step.distributed else [])
        try:
            parsers[step.tool].parse_args(argv)
        except SystemExit as exc:  # argparse printed the reason
            pytest.fail(f"{path.stem}:{step.name}: {step.tool} refuses {argv} ({exc})")
        configs = [a for a in step.args if a.endswith(".py") and a.startswith("configs/")]
        for cfg_path in configs:
            assert (REPO / cfg_path).is_file(), f"{step.name}: {cfg_path}"
        options = _cfg_options(step.args)
        if options:
            assert configs, f"{step.name}: --cfg-options without a config"
            merge_cfg_options(_load(REPO / configs[0]), options)  # unknown keys raise
        if step.metrics:
            assert any(step.metrics == o or step.metrics.startswith(o + "/") for o in step.outputs)


def test_step_outputs_land_under_the_work_dir():
    for path in PIPELINES:
        if path.stem not in ("fma_voc12", "fma_coco14", "fma_sepl_voc12", "sepl_voc12"):
            continue
        pipeline = load_pipeline(path, root=REPO, overrides=None if path.stem != "sepl_voc12"
                                 else UNSET)  # fmt: skip
        for step in pipeline.steps:
            for out in step.outputs:
                assert out.startswith(pipeline.work_dir + "/"), (path.stem, step.name, out)


def test_metafile_entries_point_at_existing_pipelines_and_steps():
    metafile = REPO / "configs" / "metafile.yml"
    assert validate_metafile(metafile, REPO) == []
    entries = load_metafile(metafile)
    by_name = {e["name"]: e for e in entries}
    assert by_name["fma_seeds_voc12_paper"]["expected"] == 74.2
    assert by_name["fma_seeds_voc12_rerun"]["expected"] == 73.9
    assert by_name["fma_seeds_coco14"]["expected"] == 47.5
    assert by_name["fma_m2f_voc12_val_paper"]["expected"] == 82.6
    assert by_name["fma_m2f_voc12_val_rerun"]["expected"] == 83.1
    assert by_name["fma_m2f_voc12_test"]["verify"] == "server"
    assert by_name["fma_m2f_coco14_val"]["expected"] == 55.4
    for entry in entries:
        assert entry["source"].strip()
