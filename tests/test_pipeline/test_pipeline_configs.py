"""Every real pipeline config would be accepted step by step, and the metafile points at them.

For each step of ``configs/pipelines/*.py``: the tool exists and its own argument parser accepts
the arguments (plus ``--launcher pytorch`` for distributed steps); every config named in the
arguments loads, and every ``--cfg-options`` key exists in it (a typo would fail the run hours
in); every input comes from an earlier step or from a var (data root, weights).
"""

from __future__ import annotations

import argparse
import dataclasses
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


# Stage II configs: (model base, dataset base) and the values their merge must give, as the
# configs held them before the bases were split by model and dataset: classes, loader types and
# splits, validation split, iterations, validation / checkpoint interval, PolyLR eta_min, batch
# per process, total batch, optimizer.
STAGE2 = {
    "deeplabv3plus_r101-d8_4xb4-40k_voc12aug-seed-512x512.py": (
        "deeplabv3plus_r101-d8", "voc12aug_seed", 21, "VOCSeedDataset", "train_aug", "val",
        40000, 4000, 1e-4, 4, 16, "SGD",
    ),
    "deeplabv3plus_r101-d8_4xb4-80k_coco14-seed-512x512.py": (
        "deeplabv3plus_r101-d8", "coco14_seed", 81, "COCOObjectDataset", "train", "val",
        80000, 8000, 1e-4, 4, 16, "SGD",
    ),
    "mask2former_swin-l-in22k_2xb2-80k_voc12aug-seed-512x512.py": (
        "mask2former_swin-l-in22k", "voc12aug_seed", 21, "VOCSeedDataset", "train_aug", "val",
        80000, 5000, 0, 2, 4, "AdamW",
    ),
    "mask2former_swin-l-in22k_2xb2-100k_coco14-seed-512x512.py": (
        "mask2former_swin-l-in22k", "coco14_seed", 81, "COCOObjectDataset", "train", "val_5000",
        100000, 5000, 0, 2, 4, "AdamW",
    ),
}  # fmt: skip


def _bases(path: Path) -> list[str]:
    import ast

    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_base_":
            return list(ast.literal_eval(node.value))
    return []


@pytest.mark.parametrize("name", sorted(STAGE2))
def test_stage2_config_is_a_model_a_dataset_and_the_runtime(name):
    model, data, classes, kind, train_split, val_split, iters, every, eta, batch, total, opt = (
        STAGE2[name]
    )
    path = REPO / "configs" / "stage2" / name
    assert _bases(path) == [
        f"../_base_/models/{model}.py",
        f"../_base_/datasets/{data}.py",
        "../_base_/seed_runtime.py",
    ]
    cfg = _load(path)
    assert cfg.model.decode_head.num_classes == classes
    train, val, test = (cfg[f"{s}_dataloader"].dataset for s in ("train", "val", "test"))
    assert (train.type, val.type, test.type) == (kind, kind, kind)
    assert (train.split, val.split, test.split) == (train_split, "val", "val")
    assert (cfg.val_evaluator.split, cfg.test_evaluator.split) == (val_split, "val")
    assert (
        cfg.val_evaluator.dataset
        == cfg.test_evaluator.dataset
        == data.removesuffix("_seed").removesuffix("aug")
    )
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (iters, every)
    assert cfg.param_scheduler == [
        dict(type="PolyLR", eta_min=eta, power=0.9, begin=0, end=iters, by_epoch=False)
    ]
    checkpoint = cfg.default_hooks.checkpoint
    assert (checkpoint.interval, checkpoint.save_best, checkpoint.max_keep_ckpts) == (
        every, "mIoU", 2
    )  # fmt: skip
    assert (cfg.train_dataloader.batch_size, cfg.total_batch) == (batch, total)
    assert cfg.optim_wrapper.optimizer.type == opt
    assert cfg.data_root == train.data_root == val.data_root
    assert train.seed_dir == cfg.seed_dir and cfg.seed_dir.startswith("work_dirs/sams-fine_")
    assert [h.type for h in cfg.custom_hooks] == ["SeedProvenanceHook"]
    assert cfg.randomness == dict(seed=0) and cfg.default_scope == "mmseg"


def _code(text: str) -> list[str]:
    """The lines of Python source that are not comments or blank."""
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _python_blocks(doc: str, heading: str) -> list[str]:
    section = (REPO / "docs" / doc).read_text().split(heading, 1)[1].split("\n## ", 1)[0]
    return [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]


def test_docs_show_a_stage2_config_and_its_dataset_base_as_they_are():
    config, base = _python_blocks("datasets.md", "## 6. Stage II configs")
    stage2 = REPO / "configs/stage2/deeplabv3plus_r101-d8_4xb4-80k_coco14-seed-512x512.py"
    assert _code(config) == _code(stage2.read_text())
    assert _code(base) == _code((REPO / "configs/_base_/datasets/coco14_seed.py").read_text())


def test_docs_pipeline_of_vars_runs_the_custom_steps(tmp_path):
    (block,) = _python_blocks("pipelines.md", "## The pipeline config format")[1:]
    custom = REPO / "configs" / "pipelines" / "fma_custom.py"
    path = tmp_path / "fma_pets.py"
    path.write_text(block.replace('"./fma_custom.py"', repr(str(custom))))
    pets = load_pipeline(path, root=REPO)
    base = load_pipeline(custom, root=REPO, overrides={"data_root": "data/pets"},
                         work_dir="work_dirs/pipelines/fma_pets")  # fmt: skip
    assert (pets.name, pets.work_dir) == ("fma_pets", "work_dirs/pipelines/fma_pets")
    assert pets.vars == base.vars and pets.vars["data_root"] == "data/pets"
    assert [dataclasses.astuple(s) for s in pets.steps] == [
        dataclasses.astuple(s) for s in base.steps
    ]


def _plain(obj):
    """Config values as plain Python (no ``_scope_``, tuples as lists) for comparison."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if k != "_scope_"}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def test_mask2former_base_holds_mmseg_s_optimizer():
    """The Mask2Former model base writes mmseg's Swin-L optimizer out; it must stay mmseg's."""
    mmseg = pytest.importorskip("mmseg")
    name = "mask2former/mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py"
    upstream = _load(Path(mmseg.__file__).parent / ".mim" / "configs" / name)
    for leaf in [n for n in STAGE2 if n.startswith("mask2former")]:
        cfg = _load(REPO / "configs" / "stage2" / leaf)
        assert _plain(cfg.optim_wrapper) == _plain(upstream.optim_wrapper), leaf
        assert (
            len(cfg.optim_wrapper.paramwise_cfg.custom_keys) == 35
        )  # 8 + 24 block + 3 downsample norms
        assert _plain(cfg.model.backbone) == _plain(upstream.model.backbone) | {
            "init_cfg": dict(type="Pretrained", checkpoint=cfg.pretrained)
        }
