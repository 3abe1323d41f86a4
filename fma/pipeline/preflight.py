"""Preflight of a pipeline: everything a run needs that exists before it, checked at once.

Before the first step (``--dry-run`` included) :func:`preflight` checks, for the steps this
invocation selects:

* every input that no earlier selected step writes exists now: the data root's split and label
  files, weights files, and outputs of earlier runs (``--from``, ``--set``); a missing one names
  the var or the step that provides it;
* weights files known by name (``tools/download.py``'s table) have their published sha256;
* each training step can hold its config's ``total_batch`` on the number of processes
  (:func:`fma.engine.total_batch.plan_total_batch`: per-process batch or gradient accumulation;
  the plan shows ``total 4 = 1 proc x 2 x 2 acc``); a total that cannot be held is a problem
  unless the run accepts another (``allow_batch_change``: the step then gets
  ``--cfg-options total_batch=<batch_size x processes>`` through ``step_args``). A config without
  ``total_batch`` is compared with the batch its name gives (``4xb4``: 4 processes x 4 images);
* free disk space against an estimate of the outputs;

and returns every problem, a plan row per step (images or iterations, estimated GPU-hours and
disk from ``configs/costs.yml``), and notes. Dataset-specific checks (split counts, images,
labels, ground truth) are the config's ``checks`` (:mod:`fma.pipeline.checks`).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

from fma.pipeline.config import Pipeline, PipelineError, Step, under
from fma.pipeline.fingerprint import HashCache, expand

__all__ = ["PreflightError", "PreflightReport", "StepPlan", "format_plan", "preflight"]

_BATCH_NAME = re.compile(r"_(\d+)xb(\d+)[-_]")
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class PreflightError(PipelineError):
    """The preflight found problems; the message lists all of them."""


@dataclasses.dataclass
class StepPlan:
    """What one selected step will cost, as far as it is known."""

    step: str
    work: str  # "10,582 images", "80,000 it x 2 proc", or "" when unknown
    gpu_hours: float | None
    cpu_hours: float | None
    disk_bytes: int | None


@dataclasses.dataclass
class PreflightReport:
    """Problems (each naming its file or setting and the fix), notes and the plan."""

    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    plan: list[StepPlan] = dataclasses.field(default_factory=list)
    #: Arguments appended to a step's command (``--allow-batch-change``: the accepted total).
    step_args: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def _is_tag(value: str) -> bool:
    """A var value that names no file (an open_clip tag such as ``openai``)."""
    return "/" not in value and not value.lower().endswith(_WEIGHT_SUFFIXES)


#: Var values that mean "no file" (random weights in the smoke pipelines).
_NO_FILE = ("", "None")


def _var_of(pipeline: Pipeline, path: str) -> str | None:
    """The var whose value ``path`` is or lies under (the longest match)."""
    best = None
    for key, value in pipeline.vars.items():
        if key == "work_dir" or not isinstance(value, str) or not value:
            continue
        if under(path, value) and (best is None or len(value) > len(pipeline.vars[best])):
            best = key
    return best


def _reported(pipeline: Pipeline, item: str, problems: list[str]) -> bool:
    """True when a problem already names ``item`` or a folder above it (the dataset check's)."""
    path = pipeline.abspath(item)
    for problem in problems:
        head = problem.split(": ", 1)[0]
        if head and (path == Path(head) or Path(head) in path.parents):
            return True
    return False


def _flag(var: str) -> str:
    flags = {"data_root": "--data-root", "clip": "--clip", "sam": "--sam", "work_dir": "--work-dir"}
    return flags.get(var, f"--set {var}=...")


def _check_inputs(
    pipeline: Pipeline, steps: list[Step], report: PreflightReport, cache: HashCache
) -> None:
    """Inputs that exist before the run, weights hashes, tags."""
    from fma.weights import expected_sha256

    made: list[tuple[str, str]] = []  # (output, step) of the selected steps before this one
    earlier = {o: s for s in pipeline.steps for o in s.outputs}
    seen: set[str] = set()
    for step in steps:
        for item in step.inputs:
            if item in seen or any(under(item, out) for out, _ in made):
                continue
            seen.add(item)
            var = _var_of(pipeline, item)
            if item in _NO_FILE:
                continue
            if var is not None and item == pipeline.vars[var] and _is_tag(item):
                report.notes.append(
                    f"{var}={item!r} is a tag, not a file: it is downloaded at step {step.name} "
                    f"(needs the network); offline, run `python tools/download.py {var}` and "
                    f"pass the path it prints with {_flag(var)}"
                )
                continue
            found = [pipeline.abspath(p) for p in expand(item, pipeline.root)]
            found = [p for p in found if p.exists()]
            if not found and _reported(pipeline, item, report.problems):
                continue
            if not found:
                owner = next((s for o, s in earlier.items() if under(item, o)), None)
                if owner is not None and not owner.enabled:
                    why = f"written by step {owner.name}, which is off (the pipeline's vars)"
                elif owner is not None:
                    why = (
                        f"written by step {owner.name}, which this run does not select: run it "
                        "first"
                    )
                elif var is not None:
                    why = f"from {var}={pipeline.vars[var]} ({_flag(var)})"
                else:
                    why = "not written by any step"
                report.problems.append(f"{item}: not found (needed by step {step.name}; {why})")
                continue
            for path in found:
                if path.is_file() and (want := expected_sha256(path.name)) is not None:
                    got = cache.sha256(path)
                    if not got.startswith(want):
                        report.problems.append(
                            f"{path}: sha256 {got[:12]}... is not the published {want[:12]}... "
                            f"of {path.name}: the file is corrupt or another file; fetch it "
                            "again with tools/download.py"
                        )
        made += [(o, step.name) for o in step.outputs]


def _cfg_options(args: list[str]) -> dict[str, str]:
    """``key=value`` pairs after ``--cfg-options`` (a leading ``+`` dropped)."""
    out: dict[str, str] = {}
    if "--cfg-options" not in args:
        return out
    for item in args[args.index("--cfg-options") + 1 :]:
        if item.startswith("--"):
            break
        key, _, value = item.partition("=")
        out[key.lstrip("+")] = value
    return out


def _dict_action_changes(pipeline: Pipeline, value: str) -> str | None:
    """What mmengine's ``DictAction`` makes of a path given to ``--cfg-options`` (its repr), or
    None when the path arrives intact or the value is not a path. It drops every space, strips
    quotes at the ends, splits at commas and reads ``2012_01`` as a number; quoting does not
    help, so such a path cannot be passed."""
    from mmengine.config import DictAction

    if value in _NO_FILE:
        return None
    try:
        path = "/" in value or pipeline.abspath(value).exists()
    except (OSError, ValueError):  # a name too long for a file
        path = False
    odd = any(c.isspace() or c in "'\"" for c in value)
    if not path and not (odd and value in pipeline.vars.values()):  # a list, a number, ...
        return None
    try:
        got = DictAction._parse_iterable(value)
    except AssertionError:  # unbalanced brackets
        return "an error (unbalanced brackets)"
    return None if isinstance(got, str) and got == value else repr(got)


def _check_cfg_option_paths(pipeline: Pipeline, steps: list[Step], report: PreflightReport) -> None:
    """A path that ``--cfg-options`` would change is a problem naming the var it comes from (the
    shortest var value that holds it and is changed too) and a symlink to use instead."""
    named = {k: v for k, v in {**pipeline.vars, "work_dir": pipeline.work_dir}.items()
             if isinstance(v, str) and _dict_action_changes(pipeline, v) is not None}  # fmt: skip
    found: dict[str, tuple[str, list[str]]] = {}  # problem head -> (path, what steps would read)
    for step in steps:
        for key, value in _cfg_options(step.args).items():
            if (got := _dict_action_changes(pipeline, value)) is None:
                continue
            inside = [k for k, v in named.items() if under(value, v)]
            var = min(inside, key=lambda k: len(named[k]), default=None)
            head = (f"{var}={named[var]!r} ({_flag(var)})" if var is not None
                    else f"step {step.name}: --cfg-options {key}={value!r}")  # fmt: skip
            path = named[var] if var is not None else value
            found.setdefault(head, (path, []))[1].append(f"step {step.name} would read {key}={got}")
    for head, (path, reads) in found.items():
        what, verb, plural = (("a space", "drops it", "spaces") if " " in path
                              else ("a comma", "splits it", "commas") if "," in path
                              else ("this name", "changes it", "such names"))  # fmt: skip
        safe = re.sub(r"[\s'\",\[\]()]+", "_", path)
        safe += "_dir" if Path(safe).name.strip("_").replace("_", "").isdigit() else ""
        more = f", and {len(reads) - 1} more options" if len(reads) > 1 else ""
        report.problems.append(
            f"{head}: a path with {what} cannot pass through --cfg-options (mmengine's "
            f"DictAction {verb}: {reads[0]}{more}): use a path without {plural}, e.g. a "
            f"symlink: ln -s {shlex.quote(path)} {shlex.quote(safe)}"
        )


def _lookup(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def _load_config(pipeline: Pipeline, name: str | None, args: list[str]) -> dict:
    """A step's stage config as a dict, with the step's integer ``--cfg-options`` applied (the
    keys the preflight reads); ``{}`` when there is none."""
    from mmengine.config import Config

    if name is None or not pipeline.abspath(name).is_file():
        return {}
    cfg = Config.fromfile(str(pipeline.abspath(name)), import_custom_modules=False).to_dict()
    for key, value in _cfg_options(args).items():
        parent, _, leaf = key.rpartition(".")
        node = _lookup(cfg, parent) if parent else cfg
        if isinstance(node, dict) and value.lstrip("-").isdigit():
            node[leaf] = int(value)
    return cfg


def _is_split_list(path: str) -> bool:
    """A split list (``ImageSets/Segmentation/<split>.txt``, COCO's ``ImageSets/<split>.txt``, a
    custom folder's ``splits/<split>.txt``), not another text input such as ``classes.txt``."""
    parent = Path(path).parent.name
    return path.endswith(".txt") and parent in ("Segmentation", "ImageSets", "splits")


def _count_ids(path: Path) -> int | None:
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return sum(1 for line in lines if line.strip() and not line.startswith("#"))


def _images_of(pipeline: Pipeline, step: Step, default: int | None) -> int | None:
    for item in step.inputs:
        if _is_split_list(item):
            n = _count_ids(pipeline.abspath(item))
            if n is not None:
                return n
    return default


def _costs(root: Path) -> dict[str, dict]:
    import yaml

    path = root / "configs" / "costs.yml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _hold_total(
    step: Step,
    name: str | None,
    total: int,
    batch: int,
    procs: int,
    report: PreflightReport,
    allow_batch_change: bool,
) -> tuple[str, float]:
    """How ``tools/train.py`` will hold ``total``: ``("total 4 = 1 proc x 2 x 2 acc", images per
    process and iteration / the config's batch_size)``; a problem (or with
    ``allow_batch_change`` a note and the step's new total) when it cannot."""
    from fma.engine.total_batch import TotalBatchError, plan_total_batch

    try:
        plan = plan_total_batch(total, procs, batch)
    except TotalBatchError as exc:
        other = batch * procs
        text = f"step {step.name}: {name}: {exc}"
        if allow_batch_change:
            report.notes.append(f"{text} (--allow-batch-change: it trains with total {other})")
            report.step_args[step.name] = ["--cfg-options", f"total_batch={other}"]
            return f"total {other} = {procs} proc x {batch}", 1.0
        report.problems.append(
            f"{text}; in a pipeline: --nproc-per-node with a number of processes that holds it, "
            f"or --allow-batch-change to train with total {other} ({procs} x {batch})"
        )
        return "", 1.0
    return plan.describe(), plan.batch_size * plan.accumulative_counts / batch


def _check_named_batch(
    step: Step,
    name: str | None,
    batch: int,
    procs: int,
    report: PreflightReport,
    allow_batch_change: bool,
) -> None:
    """A config without ``total_batch``: the batch its name gives (``2xb2``) against this run's."""
    match = _BATCH_NAME.search(Path(name or "").name)
    if not match:
        return
    want, got = int(match[1]) * int(match[2]), batch * procs
    if want == got:
        return
    text = (
        f"step {step.name}: {name} is the recipe of a total batch of {want} "
        f"({match[1]} processes x {match[2]}), but this run trains with {got} "
        f"({procs} x {batch}) (the config sets no total_batch, so nothing holds it)"
    )
    if allow_batch_change:
        report.notes.append(text + " (accepted by --allow-batch-change)")
    elif step.distributed:
        report.problems.append(
            text + f"; run with --launcher pytorch --nproc-per-node {max(want // batch, 1)} "
            "(or --allow-batch-change to train with this batch)"
        )
    else:
        report.problems.append(text + "; --allow-batch-change accepts it")


def _plan_step(
    pipeline: Pipeline,
    step: Step,
    world: int,
    images: int | None,
    costs: dict[str, dict],
    report: PreflightReport,
    allow_batch_change: bool,
) -> StepPlan:
    name = next((a for a in step.args if a.endswith(".py")), None)
    cfg = _load_config(pipeline, name, step.args) if step.tool == "tools/train.py" else {}
    key = name
    if step.tool == "tools/test.py" and name is not None and "/stage1/" in name:
        key = "tools/test.py+stage1"
    cost = costs.get(key or "") or costs.get(step.tool or "") or {}
    per = cost.get("per")
    n_img = _images_of(pipeline, step, images)
    work, units, procs, scale = "", None, 1, 1.0  # scale: images per process and iteration
    if step.tool == "tools/train.py" and cfg:  # ... over the config's batch_size (costs.yml's)
        iters = _lookup(cfg, "train_cfg.max_iters")
        batch = _lookup(cfg, "train_dataloader.batch_size")
        procs = world if step.distributed else 1
        held = ""
        if isinstance(batch, int) and isinstance(cfg.get("total_batch"), int):
            held, scale = _hold_total(step, name, cfg["total_batch"], batch, procs, report,
                                      allow_batch_change)  # fmt: skip
        elif isinstance(batch, int):
            _check_named_batch(step, name, batch, procs, report, allow_batch_change)
        if isinstance(iters, int):
            units = iters
            work = f"{iters:,} it, {held}" if held else f"{iters:,} it x {procs} proc"
    elif n_img is not None:  # shown even where the cost per image is not measured
        work = f"{n_img:,} image" + ("s" if n_img != 1 else "")
        units = n_img if per == "image" else None
    gpu = cost.get("gpu_s")
    cpu = cost.get("cpu_s")
    gpu_h = gpu * units * procs * scale / 3600 if gpu is not None and units is not None else None
    cpu_h = cpu * units / 3600 if cpu is not None and units is not None else None
    disk = None
    if units is not None and ("bytes" in cost or "fixed_bytes" in cost):
        per_unit = cost.get("bytes", 0) if per == "image" else 0
        disk = int(per_unit * units + cost.get("fixed_bytes", 0))
    return StepPlan(step.name, work, gpu_h, cpu_h, disk)


def preflight(
    pipeline: Pipeline,
    selected: Collection[str],
    *,
    world_size: int = 1,
    allow_batch_change: bool = False,
    cache: HashCache | None = None,
) -> PreflightReport:
    """Check what the selected steps need before anything runs; plan their cost.

    Args:
        pipeline: the loaded pipeline (its ``problems`` from the config's checks are included).
        selected: names of the steps this invocation runs (``--from`` / ``--only``).
        world_size: processes of a distributed step (``nproc_per_node * nnodes``; 1 without a
            launcher).
        allow_batch_change: a total batch other than the config's recipe is a note, not a
            problem.
        cache: sha256 cache for weights files.

    Returns:
        The report; ``problems`` is empty when the run can start.
    """
    report = PreflightReport(problems=list(pipeline.problems), notes=[])
    cache = cache or HashCache(None)
    steps = [s for s in pipeline.steps if s.enabled and s.name in selected and not s.error]
    _check_inputs(pipeline, steps, report, cache)
    _check_cfg_option_paths(pipeline, steps, report)
    costs = _costs(pipeline.root)
    split_files = [i for s in pipeline.steps for i in s.inputs if _is_split_list(i)]
    counted = (n for f in split_files if (n := _count_ids(pipeline.abspath(f))))
    images = next(counted, pipeline.images)  # a custom folder without splits: the check's count
    for step in steps:
        report.plan.append(
            _plan_step(pipeline, step, world_size, images, costs, report, allow_batch_change)
        )
    need = sum(p.disk_bytes or 0 for p in report.plan)
    where = pipeline.abspath(pipeline.work_dir)
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if need > free:
        report.problems.append(
            f"{where}: {free / 1e9:.1f} GB free, the outputs need about {need / 1e9:.1f} GB "
            "(configs/costs.yml): free space or choose another --work-dir"
        )
    elif need:
        report.notes.append(
            f"disk: the outputs need about {need / 1e9:.1f} GB; {free / 1e9:.1f} GB free at {where}"
        )
    return report


def _fmt_hours(hours: float | None) -> str:
    if hours is None:
        return "-"
    return f"{hours:.2f}" if hours < 10 else f"{hours:.0f}"


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB" if n >= 1e6 else "<1 MB"


def format_plan(report: PreflightReport) -> str:
    """The plan as a table with a total row (GPU-hours on one H200-class GPU)."""
    rows = [("step", "work", "GPU-h", "CPU-h", "disk")]
    for p in report.plan:
        rows.append(
            (p.step, p.work or "-", _fmt_hours(p.gpu_hours), _fmt_hours(p.cpu_hours),
             _fmt_bytes(p.disk_bytes))
        )  # fmt: skip
    gpu = sum(p.gpu_hours or 0 for p in report.plan)
    cpu = sum(p.cpu_hours or 0 for p in report.plan)
    disk = sum(p.disk_bytes or 0 for p in report.plan)
    rows.append(("total", "", _fmt_hours(gpu), _fmt_hours(cpu), _fmt_bytes(disk)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(
        "estimates: GPU-hours of one H200 at the measured per-step costs of configs/costs.yml "
        "('-': not measured); real weights and data change them"
    )
    return "\n".join(lines)
