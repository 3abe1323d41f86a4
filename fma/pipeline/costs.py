"""The cost plan of a run's selected steps and the checks of their training batch.

For every step the preflight (:mod:`fma.pipeline.preflight`) selects, :func:`plan_costs` adds a
:class:`StepPlan` row to the report: its work (images from the split list it reads, or a training
step's iterations), estimated GPU- and CPU-hours and disk from ``configs/costs.yml`` (measured per
image or per iteration on one H200). For a training step it reads the step's stage config (parsed
once per runner process, :class:`fma.pipeline.stage_config.StageConfigs`) with the step's integer
``--cfg-options`` applied, and checks that its ``total_batch`` can be held on this run's processes
(:func:`fma.engine.total_batch.plan_total_batch`; with ``allow_batch_change`` the step gets
``--cfg-options total_batch=<batch_size x processes>`` instead, through the report's
``step_args``); a config without ``total_batch`` is compared with the batch its name gives
(``4xb4``: 4 processes x 4 images). Then the free disk space is compared with the estimated
outputs. :func:`format_plan` prints the rows as a table.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

from fma.pipeline.config import Pipeline, Step
from fma.pipeline.stage_config import StageConfigs

__all__ = [
    "PreflightReport",
    "StepPlan",
    "cfg_options",
    "count_ids",
    "format_plan",
    "is_split_list",
    "plan_costs",
]

_BATCH_NAME = re.compile(r"_(\d+)xb(\d+)[-_]")


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


def cfg_options(args: list[str]) -> dict[str, str]:
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


def _lookup(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def _load_config(
    pipeline: Pipeline, name: str | None, args: list[str], configs: StageConfigs
) -> dict:
    """A step's stage config as a dict, with the step's integer ``--cfg-options`` applied (the
    keys the preflight reads); ``{}`` when there is none."""
    if name is None or not pipeline.abspath(name).is_file():
        return {}
    cfg = configs.load(pipeline.abspath(name))
    for key, value in cfg_options(args).items():
        parent, _, leaf = key.rpartition(".")
        node = _lookup(cfg, parent) if parent else cfg
        if isinstance(node, dict) and value.lstrip("-").isdigit():
            node[leaf] = int(value)
    return cfg


def is_split_list(path: str) -> bool:
    """A split list (``ImageSets/Segmentation/<split>.txt``, COCO's ``ImageSets/<split>.txt``, a
    custom folder's ``splits/<split>.txt``), not another text input such as ``classes.txt``."""
    parent = Path(path).parent.name
    return path.endswith(".txt") and parent in ("Segmentation", "ImageSets", "splits")


def count_ids(path: Path) -> int | None:
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return sum(1 for line in lines if line.strip() and not line.startswith("#"))


def _images_of(pipeline: Pipeline, step: Step, default: int | None) -> int | None:
    for item in step.inputs:
        if is_split_list(item):
            n = count_ids(pipeline.abspath(item))
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


def _train_work(
    step: Step,
    name: str | None,
    cfg: dict,
    world: int,
    report: PreflightReport,
    allow_batch_change: bool,
) -> tuple[str, int | None, int, float]:
    """``(work, iterations, processes, scale)`` of a training step, its batch checked; scale:
    images per process and iteration over the config's ``batch_size`` (``costs.yml``'s)."""
    iters = _lookup(cfg, "train_cfg.max_iters")
    batch = _lookup(cfg, "train_dataloader.batch_size")
    procs = world if step.distributed else 1
    held, scale = "", 1.0
    if isinstance(batch, int) and isinstance(cfg.get("total_batch"), int):
        held, scale = _hold_total(step, name, cfg["total_batch"], batch, procs, report,
                                  allow_batch_change)  # fmt: skip
    elif isinstance(batch, int):
        _check_named_batch(step, name, batch, procs, report, allow_batch_change)
    if not isinstance(iters, int):
        return "", None, procs, scale
    work = f"{iters:,} it, {held}" if held else f"{iters:,} it x {procs} proc"
    return work, iters, procs, scale


def _estimate(
    cost: dict, units: int | None, procs: int, scale: float
) -> tuple[float | None, float | None, int | None]:
    """``(GPU-hours, CPU-hours, disk bytes)`` of ``units`` images or iterations (None: unknown)."""
    if units is None:
        return None, None, None
    gpu, cpu = cost.get("gpu_s"), cost.get("cpu_s")
    gpu_h = gpu * units * procs * scale / 3600 if gpu is not None else None
    cpu_h = cpu * units / 3600 if cpu is not None else None
    disk = None
    if "bytes" in cost or "fixed_bytes" in cost:
        per_unit = cost.get("bytes", 0) if cost.get("per") == "image" else 0
        disk = int(per_unit * units + cost.get("fixed_bytes", 0))
    return gpu_h, cpu_h, disk


def _plan_step(
    pipeline: Pipeline,
    step: Step,
    world: int,
    images: int | None,
    costs: dict[str, dict],
    report: PreflightReport,
    allow_batch_change: bool,
    configs: StageConfigs,
) -> StepPlan:
    name = next((a for a in step.args if a.endswith(".py")), None)
    is_train = step.tool == "tools/train.py"
    cfg = _load_config(pipeline, name, step.args, configs) if is_train else {}
    key = name
    if step.tool == "tools/test.py" and name is not None and "/stage1/" in name:
        key = "tools/test.py+stage1"
    cost = costs.get(key or "") or costs.get(step.tool or "") or {}
    n_img = _images_of(pipeline, step, images)
    work, units, procs, scale = "", None, 1, 1.0
    if is_train and cfg:
        work, units, procs, scale = _train_work(step, name, cfg, world, report, allow_batch_change)
    elif n_img is not None:  # shown even where the cost per image is not measured
        work = f"{n_img:,} image" + ("s" if n_img != 1 else "")
        units = n_img if cost.get("per") == "image" else None
    return StepPlan(step.name, work, *_estimate(cost, units, procs, scale))


def plan_costs(
    pipeline: Pipeline,
    steps: list[Step],
    report: PreflightReport,
    *,
    world_size: int,
    allow_batch_change: bool,
    configs: StageConfigs,
) -> None:
    """Add a plan row per step to ``report`` (batch problems and notes too), then compare the
    estimated outputs with the free disk space at the work dir (or its nearest existing parent).
    """
    costs = _costs(pipeline.root)
    split_files = [i for s in pipeline.steps for i in s.inputs if is_split_list(i)]
    counted = (n for f in split_files if (n := count_ids(pipeline.abspath(f))))
    images = next(counted, pipeline.images)  # a custom folder without splits: the check's count
    for step in steps:
        report.plan.append(_plan_step(pipeline, step, world_size, images, costs, report,
                                      allow_batch_change, configs))  # fmt: skip
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
