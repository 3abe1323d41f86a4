"""tools/reproduce.py on a toy pipeline: skip, rerun on change, --from/--only, dry run, failures,
launcher pass-through, summary and --verify (steps are tiny scripts, no fma stage runs)."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path

import pytest

from fma.pipeline.config import PipelineError, load_pipeline, parse_set_options
from fma.pipeline.leaderboard import format_checks, verify
from fma.pipeline.preflight import PreflightError
from fma.pipeline.runner import Launcher, format_summary, records_summary, run_pipeline

TOY = r"""
import json, pathlib, sys
args = sys.argv[1:]
name = args[0]
pathlib.Path("calls.txt").open("a").write(name + "\n")
if "--fail" in args and pathlib.Path(args[args.index("--fail") + 1]).exists():
    print("boom: step", name, "fails")
    sys.exit(3)
out = pathlib.Path(args[1])
if name == "metrics":
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"mIoU": 71.5, "dataset": "voc12", "split": "train",
                               "n_images": 1464}))
    sys.exit(0)
out.mkdir(parents=True, exist_ok=True)
(out / "data.txt").write_text(" ".join(args))
calls = pathlib.Path("calls.txt").read_text().count("\n")
(out / "manifest.json").write_text(json.dumps({"format": "toy", "run": calls}))
print("wrote", out)
"""

PIPELINE = """
pipeline = dict(name="toy", description="a toy chain")
work_dir = "wd"
vars = dict(data_root="data", cfg="cfg.py", fail="fail_b")
steps = [
    dict(name="a", label="first", tool="toy.py", args=["a", "{work_dir}/a", "{cfg}"],
         inputs=["{data_root}/list.txt"], outputs=["{work_dir}/a"]),
    dict(name="b", tool="toy.py", args=["b", "{work_dir}/b", "--fail", "{fail}"],
         inputs=["{work_dir}/a"], outputs=["{work_dir}/b"], distributed=True),
    dict(name="c", tool="toy.py", args=["metrics", "{work_dir}/eval/m.json"],
         inputs=["{work_dir}/b"], outputs=["{work_dir}/eval/m.json"],
         metrics="{work_dir}/eval/m.json"),
]
"""


@pytest.fixture
def toy(tmp_path):
    (tmp_path / "toy.py").write_text(TOY)
    (tmp_path / "cfg.py").write_text("x = 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "list.txt").write_text("img1\nimg2\n")
    (tmp_path / "pipe.py").write_text(PIPELINE)
    return tmp_path


def _run(root: Path, **kwargs):
    overrides = kwargs.pop("overrides", None)
    pipeline = load_pipeline(root / "pipe.py", root=root, overrides=overrides)
    out = io.StringIO()
    calls = root / "calls.txt"
    before = calls.read_text().split() if calls.exists() else []
    code = run_pipeline(pipeline, out=out, **kwargs)
    after = calls.read_text().split() if calls.exists() else []
    return code, after[len(before) :], out.getvalue()


def test_run_all_then_rerun_skips_everything(toy):
    code, calls, text = _run(toy)
    assert code == 0 and calls == ["a", "b", "metrics"], text
    for name in "abc":
        rec = json.loads((toy / "wd" / "pipeline" / f"{name}.json").read_text())
        assert (
            rec["exit_status"] == 0 and rec["fingerprint"] and rec["command"][0] == sys.executable
        )
    assert "wrote wd/a" in (toy / "wd" / "pipeline" / "logs" / "a.log").read_text()
    assert "71.50" in text.splitlines()[-1]  # the summary row of c carries its mIoU
    code, calls, text = _run(toy)
    assert code == 0 and calls == []
    assert text.count("skip -- up to date") == 3
    assert "skipped" in text


def test_changed_config_reruns_that_step_and_later_ones(toy):
    _run(toy)
    (toy / "cfg.py").write_text("x = 2\n")
    code, calls, text = _run(toy)
    assert code == 0 and calls == ["a", "b", "metrics"]
    assert "a (first): run -- changed: config cfg.py" in text
    assert "b (b): run -- it reads the output of a, which runs again" in text
    assert (toy / "wd" / "a.stale" / "data.txt").is_file()  # the old output is kept aside
    assert "moving the old output" in text


def test_changed_input_file_reruns(toy):
    _run(toy)
    (toy / "data" / "list.txt").write_text("img1\n")
    _code, calls, text = _run(toy)
    assert calls == ["a", "b", "metrics"]
    assert "changed: input data/list.txt" in text


def test_upstream_manifest_change_is_seen_by_the_next_step(toy):
    _run(toy)
    (toy / "wd" / "a" / "manifest.json").write_text('{"format": "toy", "run": 99}')
    _code, calls, text = _run(toy)
    assert calls == ["b", "metrics"]
    assert "changed: input wd/a" in text


def test_missing_output_reruns(toy):
    _run(toy)
    (toy / "wd" / "eval" / "m.json").unlink()
    _code, calls, text = _run(toy)
    assert calls == ["metrics"] and "outputs missing: wd/eval/m.json" in text


def test_from_and_only(toy):
    _run(toy)
    code, calls, text = _run(toy, start="b")
    assert code == 0 and calls == ["b", "metrics"]
    assert "selected by --from" in text
    code, calls, _ = _run(toy, only="b")
    assert calls == ["b"]
    code, calls, _ = _run(toy)  # c reads b's new output
    assert calls == ["metrics"]


def test_unknown_step_and_var_are_clear_errors(toy):
    pipeline = load_pipeline(toy / "pipe.py", root=toy)
    with pytest.raises(PipelineError, match="no step 'x'; the steps are: a, b, c"):
        run_pipeline(pipeline, only="x", out=io.StringIO())
    with pytest.raises(PipelineError, match=r"no var 'data_rot' \(its vars: cfg, data_root"):
        load_pipeline(toy / "pipe.py", root=toy, overrides={"data_rot": "x"})
    with pytest.raises(PipelineError, match="KEY=VALUE"):
        parse_set_options(["novalue"])
    (toy / "bad.py").write_text(PIPELINE.replace("{cfg}", "{cgf}"))
    with pytest.raises(PipelineError, match=r"unknown placeholder \{cgf\}"):
        load_pipeline(toy / "bad.py", root=toy)


LIST_VARS = """
pipeline = dict(name="lists", description="list vars")
work_dir = "wd"
vars = dict(root="data", opts=["x.root={root}", "x.size=2"], none=[], extra=["{root}/b"])
steps = [
    dict(name="a", tool="toy.py", args=["a", "{opts}", "--", "{none}", "end"],
         inputs=["{root}/a", "{extra}"], outputs=["{work_dir}/a"]),
]
"""


def test_a_list_var_stands_for_its_items(tmp_path):
    (tmp_path / "pipe.py").write_text(LIST_VARS)
    step = load_pipeline(tmp_path / "pipe.py", root=tmp_path).steps[0]
    assert step.args == ["a", "x.root=data", "x.size=2", "--", "end"]
    assert step.inputs == ["data/a", "data/b"]
    pipe = load_pipeline(tmp_path / "pipe.py", root=tmp_path,
                         overrides={"none": "y.z=1 'y.w=a b'", "root": "r"})  # fmt: skip
    assert pipe.steps[0].args == ["a", "x.root=r", "x.size=2", "--", "y.z=1", "y.w=a b", "end"]
    assert pipe.vars["opts"] == ["x.root=r", "x.size=2"] and pipe.vars["root"] == "r"
    (tmp_path / "bad.py").write_text(LIST_VARS.replace('"{opts}"', '"--opts={opts}"'))
    with pytest.raises(
        PipelineError, match=r"step 1 \(a\): .*vars.opts is a list: it stands alone"
    ):
        load_pipeline(tmp_path / "bad.py", root=tmp_path)


def test_shipped_method_pipelines_share_one_step_list():
    """fma_voc12, fma_coco14 and fma_custom are the step list of configs/pipelines/_base_/fma.py
    with their vars: the same steps, and VOC's commands as written out before the base existed."""
    repo = Path(__file__).resolve().parents[2]
    names = {}
    for name in ("fma_voc12", "fma_coco14", "fma_custom"):
        pipe = load_pipeline(repo / f"configs/pipelines/{name}.py", root=repo,
                             overrides={"data_root": "/d"})  # fmt: skip
        names[name] = [s.name for s in pipe.steps]
    assert names["fma_voc12"] == names["fma_coco14"] == names["fma_custom"]
    voc = load_pipeline(repo / "configs/pipelines/fma_voc12.py", root=repo,
                        overrides={"data_root": "/d"})  # fmt: skip
    seg = voc.step("seg_prompts")
    assert seg.args == [
        "configs/stage1/fma-seg_prompt-clip-vit-b16_1xb16-17k_voc12.py", "--work-dir",
        "work_dirs/pipelines/fma_voc12/seg_prompts", "--resume", "--cfg-options",
        "train_dataloader.dataset.data_root=/d",
        "train_dataloader.dataset.seed_dir=work_dirs/pipelines/fma_voc12/coarse_seeds/seeds/train_aug",
        "model.clip.pretrained=pretrains/ViT-B-16.pt",
    ]  # fmt: skip
    assert seg.inputs == [
        "/d/ImageSets/Segmentation/train_aug.txt", "/d/cls_labels/train_aug.json",
        "work_dirs/pipelines/fma_voc12/coarse_seeds/seeds/train_aug", "pretrains/ViT-B-16.pt",
    ]  # fmt: skip
    assert voc.step("fine_seeds_eval").metrics == (
        "work_dirs/pipelines/fma_voc12/eval/fine_seeds_train_aug.json"
    )


def test_dry_run_runs_nothing_and_prints_the_commands(toy):
    code, calls, text = _run(toy, dry_run=True)
    assert code == 0 and calls == []
    assert not (toy / "wd" / "pipeline").exists()
    assert "a (first): would run -- no record" in text
    assert f"{sys.executable} toy.py a wd/a cfg.py" in text
    assert "dry run: nothing was run" in text
    _run(toy)
    (toy / "cfg.py").write_text("x = 3\n")
    code, calls, text = _run(toy, dry_run=True)
    assert calls == [] and "would run -- changed: config cfg.py" in text
    assert "would move the old output" in text and not (toy / "wd" / "a.stale").exists()


def test_failure_writes_no_record_and_rerun_continues(toy):
    (toy / "fail_b").write_text("")
    code, calls, text = _run(toy)
    assert code == 3 and calls == ["a", "b"]
    records = toy / "wd" / "pipeline"
    assert (records / "a.json").is_file() and not (records / "b.json").exists()
    assert "error: step b failed (exit 3)" in text
    assert f"log: {records / 'logs' / 'b.log'}" in text
    assert "boom: step b fails" in (records / "logs" / "b.log").read_text()
    assert "failed" in text and "not run" in text  # summary rows of b and c
    (toy / "fail_b").unlink()
    code, calls, text = _run(toy)
    assert code == 0 and calls == ["b", "metrics"]
    assert "b (b): run -- no record" in text and not (toy / "wd" / "b.stale").exists()


def test_launcher_options_reach_distributed_steps_only(toy):
    launcher = Launcher("pytorch", nproc_per_node=2, nnodes=2, node_rank=0, master_port=29511)
    _code, _, text = _run(toy, dry_run=True, launcher=launcher)
    lines = [line.strip() for line in text.splitlines() if line.startswith(f"  {sys.executable}")]
    a, b, c = lines
    assert "torch.distributed.run" not in a and "torch.distributed.run" not in c
    assert b == (
        f"{sys.executable} -m torch.distributed.run --nnodes=2 --node_rank=0 "
        "--master_addr=127.0.0.1 --master_port=29511 --nproc_per_node=2 toy.py b wd/b --fail "
        "fail_b --launcher pytorch"
    )


def test_processes_of_a_distributed_step_are_in_its_fingerprint(toy):
    import hashlib

    _run(toy)
    records = toy / "wd" / "pipeline"
    rec_b = json.loads((records / "b.json").read_text())
    assert rec_b["parts"]["world_size"] == 1
    assert "world_size" not in json.loads((records / "a.json").read_text())["parts"]
    two = Launcher("pytorch", nproc_per_node=2, master_port=29512)
    _code, calls, text = _run(toy, dry_run=True, launcher=two)
    assert calls == [] and "a (first): skip -- up to date" in text
    assert "b (b): would run -- changed: processes 1 -> 2" in text
    # A record written before the part existed counts as its launcher's processes.
    parts = {k: v for k, v in rec_b["parts"].items() if k != "world_size"}
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()
    (records / "b.json").write_text(json.dumps({**rec_b, "parts": parts, "fingerprint": digest}))
    _code, calls, text = _run(toy)
    assert calls == [] and text.count("skip -- up to date") == 3
    _code, calls, text = _run(toy, dry_run=True, launcher=two)
    assert "b (b): would run -- changed: processes 1 -> 2" in text


def test_module_steps_and_globs(toy):
    (toy / "toymod.py").write_text("import sys, pathlib; pathlib.Path(sys.argv[1]).write_text('m')")
    (toy / "pipe.py").write_text(
        PIPELINE
        + textwrap.dedent("""
        steps.append(dict(name="d", module="toymod", args=["{work_dir}/d.txt"],
                          inputs=["{work_dir}/a/*.txt"], outputs=["{work_dir}/d.txt"]))
        steps.append(dict(name="e", tool="toy.py", args=["e", "{work_dir}/e", "{work_dir}/a/*.txt"],
                          inputs=["{work_dir}/d.txt"], outputs=["{work_dir}/e"]))
    """)
    )
    code, _calls, text = _run(toy)
    assert code == 0 and (toy / "wd" / "d.txt").read_text() == "m"
    assert f"{sys.executable} -m toymod wd/d.txt" in text
    assert "wd/a/data.txt" in (toy / "wd" / "e" / "data.txt").read_text()  # glob resolved
    rec = json.loads((toy / "wd" / "pipeline" / "d.json").read_text())
    assert (
        rec["parts"]["tool"].startswith("module:toymod:") and "input:wd/a/data.txt" in rec["parts"]
    )


def test_disabled_steps_and_summary_from_records(toy):
    (toy / "pipe.py").write_text(
        PIPELINE.replace("distributed=True)", 'enabled="{on}")').replace(
            'fail="fail_b")', 'fail="fail_b", on="false")'
        )
    )
    # c reads the output of the disabled b: the wiring warns and the preflight stops the run.
    with pytest.raises(PreflightError, match="wd/b: not found") as info:
        _run(toy)
    assert "written by step b, which is off (the pipeline's vars)" in str(info.value)
    assert not (toy / "calls.txt").exists()
    (toy / "pipe.py").write_text(
        (toy / "pipe.py").read_text().replace('inputs=["{work_dir}/b"]', 'inputs=["{work_dir}/a"]')
    )
    _code, calls, text = _run(toy)
    assert calls == ["a", "metrics"] and "b (b): off" in text
    pipeline = load_pipeline(toy / "pipe.py", root=toy, overrides={"on": "true"})
    table = format_summary(pipeline, records_summary(pipeline))
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert " done " in rows["a"] and "not run" in rows["b"] and " done " in rows["c"]
    assert table.splitlines()[0].split() == ["step", "label", "status", "time", "mIoU", "outputs"]


def test_verify_pass_miss_and_missing(toy):
    metafile = toy / "metafile.yml"

    def entries(expected: float) -> None:
        metafile.write_text(
            textwrap.dedent(f"""
            entries:
              - {{name: toy_m, pipeline: pipe.py, step: c, dataset: voc12, split: train,
                  metric: mIoU, expected: {expected}, tolerance: 0.5, verify: local, source: test}}
              - {{name: toy_server, pipeline: pipe.py, dataset: voc12, split: test, metric: mIoU,
                  expected: 1.0, verify: server, source: test}}
        """)
        )

    entries(71.8)
    checks = verify(metafile, toy, pipeline=toy / "pipe.py")
    assert [c.status for c in checks] == ["MISSING", "not checked"]
    assert "not produced yet: run python tools/reproduce.py pipe.py" in checks[0].message
    _run(toy)
    checks = verify(metafile, toy)
    out = io.StringIO()
    format_checks(checks, out)
    assert checks[0].status == "ok" and not any(c.failed for c in checks)
    assert ["toy_m", "train", "mIoU", "71.80", "71.50", "-0.30", "0.50", "ok"] in [
        line.split() for line in out.getvalue().splitlines()
    ]
    entries(73.0)
    checks = verify(metafile, toy)
    assert checks[0].status == "MISS" and checks[0].failed
    metrics = toy / "wd" / "eval" / "m.json"
    metrics.write_text(json.dumps({"mIoU": 73.0, "dataset": "voc12", "split": "val"}))
    check = verify(metafile, toy)[0]
    assert check.status == "MISS" and "split 'val'" in check.message
