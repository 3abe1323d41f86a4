"""Stage configs parsed once per runner process, and the runner's per-step decisions.

A two-step pipeline whose steps name the same stage config (with a ``_base_``): one training
step (the preflight reads its batch and iterations) and one other step. A dry run and a real run
each parse that config once, and the digests the cache gives equal a fresh parse's. The step
tool is a tiny script; no fma stage runs.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from mmengine.config import Config

from fma.pipeline.config import load_pipeline
from fma.pipeline.costs import PreflightReport
from fma.pipeline.fingerprint import HashCache, config_digest, step_fingerprint
from fma.pipeline.plan import Invocation, plan_step
from fma.pipeline.runner import run_pipeline
from fma.pipeline.stage_config import StageConfigs
from fma.pipeline.step_process import Launcher

TRAIN = """
import pathlib, sys
out = pathlib.Path(sys.argv[sys.argv.index("--work-dir") + 1])
out.mkdir(parents=True, exist_ok=True)
(out / "done.txt").write_text(sys.argv[1])
"""

PIPELINE = """
pipeline = dict(name="cfgs", description="two steps, one stage config")
work_dir = "wd"
vars = dict(data_root="data", cfg="configs/stage.py", later=None, on="true")
steps = [
    dict(name="train", tool="tools/train.py", args=["{cfg}", "--work-dir", "{work_dir}/train"],
         inputs=["{data_root}/list.txt"], outputs=["{work_dir}/train"]),
    dict(name="again", tool="tools/train.py", args=["{cfg}", "--work-dir", "{work_dir}/again"],
         inputs=["{work_dir}/train"], outputs=["{work_dir}/again"]),
    dict(name="unset", tool="tools/train.py", args=["{later}", "--work-dir", "{work_dir}/u"],
         inputs=["{work_dir}/again"], outputs=["{work_dir}/u"], enabled="{on}"),
]
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "train.py").write_text(TRAIN)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.py").write_text(
        "train_cfg = dict(max_iters=4)\ntrain_dataloader = dict(batch_size=2)\n"
    )
    (tmp_path / "configs" / "stage.py").write_text('_base_ = ["./base.py"]\nlr = 0.1\n')
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "list.txt").write_text("a\nb\n")
    (tmp_path / "pipe.py").write_text(PIPELINE)
    return tmp_path


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Config.fromfile calls by file name (the pipeline config itself left out)."""
    counts: Counter[str] = Counter()
    original = Config.fromfile

    def counted(filename, *args, **kwargs):
        if Path(filename).name != "pipe.py":
            counts[Path(filename).name] += 1
        return original(filename, *args, **kwargs)

    monkeypatch.setattr(Config, "fromfile", staticmethod(counted))
    return counts


def _load(root: Path, **overrides: str):
    return load_pipeline(root / "pipe.py", root=root, overrides=overrides or None)


def test_dry_run_parses_each_stage_config_once(root, parses):
    out = io.StringIO()
    assert run_pipeline(_load(root, on="false"), dry_run=True, out=out) == 0
    assert "[1/3] train (train): would run" in out.getvalue()
    assert parses == {"stage.py": 1}


def test_real_run_parses_each_stage_config_once_and_records_the_fresh_digest(root, parses):
    out = io.StringIO()
    assert run_pipeline(_load(root, on="false"), out=out) == 0, out.getvalue()
    assert parses == {"stage.py": 1}  # preflight, fingerprints before and after both steps
    record = json.loads((root / "wd" / "pipeline" / "train.json").read_text())
    fresh = config_digest(root / "configs" / "stage.py")
    assert record["parts"]["config:configs/stage.py"] == fresh
    assert fresh.startswith("merged:")
    parses.clear()
    out = io.StringIO()
    assert run_pipeline(_load(root, on="false"), out=out) == 0
    assert out.getvalue().count(": skip -- up to date") == 2
    assert parses == {"stage.py": 1}


def test_stage_configs_digest_and_load(root, parses):
    configs = StageConfigs()
    path = root / "configs" / "stage.py"
    cfg = configs.load(path)
    assert cfg["train_cfg"] == {"max_iters": 4} and cfg["lr"] == 0.1
    cfg["train_cfg"]["max_iters"] = 99  # a copy: the next load is the file's
    assert configs.load(path)["train_cfg"] == {"max_iters": 4}
    assert configs.digest(path) == config_digest(path)
    assert parses["stage.py"] == 2  # once in the cache, once by the fresh config_digest
    script = root / "tools" / "train.py"  # not an mmengine config: the bytes decide
    assert configs.digest(script) == config_digest(script) and configs.digest(script).startswith(
        "file:"
    )
    with pytest.raises(Exception):  # noqa: B017 (whatever mmengine raises for a script)
        configs.load(script)
    with pytest.raises(Exception):  # noqa: B017
        configs.load(script)
    assert parses["train.py"] == 2  # the failure is kept: parsed once per cache


def test_fingerprint_with_and_without_the_cache(root):
    kwargs = dict(tool="tools/train.py", module=None, args=["configs/stage.py"],
                  inputs=["data/list.txt"], root=root, cache=HashCache(None))  # fmt: skip
    assert step_fingerprint(**kwargs) == step_fingerprint(**kwargs, configs=StageConfigs())


def test_plan_step_decisions(root):
    pipeline = _load(root)
    inv = Invocation(pipeline=pipeline, selected={"train", "unset"}, forced=None,
                     report=PreflightReport(step_args={"train": ["--x", "1"]}),
                     cache=HashCache(None), configs=StageConfigs(), launcher=Launcher(),
                     out=io.StringIO(), dry_run=True)  # fmt: skip
    train, again, unset = pipeline.steps
    first = plan_step(inv, train)
    assert (first.action, first.world) == ("run", None)
    assert first.reason == "no record: first run, or the last run did not finish (it resumes)"
    assert first.resolved is not None and first.resolved.args[-2:] == ["--x", "1"]
    assert train.args[-2:] != ["--x", "1"]  # the step itself is left as it is
    assert first.command[1:] == ["tools/train.py", *first.resolved.args]
    assert plan_step(inv, again).action == "not run"  # not selected
    cannot = plan_step(inv, unset)
    assert cannot.action == "cannot run" and cannot.reason.startswith("vars.later is not set")
    inv.code = 2
    assert plan_step(inv, train).action == "run"  # a dry run goes on after a failure
    inv.dry_run = False
    assert plan_step(inv, train).action == "not run"  # a real run stops
    unset.enabled = False
    off = plan_step(inv, unset)
    assert (off.action, off.reason) == ("off", "disabled by the pipeline's vars")
