"""Preflight of a pipeline: everything a run needs that exists before it, checked at once.

Before the first step (``--dry-run`` included) :func:`preflight` checks, for the steps this
invocation selects:

* every input that no earlier selected step writes exists now: the data root's split and label
  files, weights files, and outputs of earlier runs (``--from``, ``--set``); a missing one names
  the var or the step that provides it;
* weights files known by name (``tools/download.py``'s table) have their published sha256;
* no path passed through ``--cfg-options`` is one that mmengine's ``DictAction`` would change
  (spaces, commas, quotes, a name read as a number);
* the cost plan (:mod:`fma.pipeline.costs`): each training step can hold its config's
  ``total_batch`` on the number of processes (the plan shows ``total 4 = 1 proc x 2 x 2 acc``;
  a total that cannot be held is a problem unless the run accepts another,
  ``allow_batch_change``), and free disk space against an estimate of the outputs;

and returns every problem, a plan row per step (images or iterations, estimated GPU-hours and
disk from ``configs/costs.yml``), and notes. Dataset-specific checks (split counts, images,
labels, ground truth) are the config's ``checks`` (:mod:`fma.pipeline.checks`), whose problems
the report includes.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection
from pathlib import Path

from fma.pipeline.config import Pipeline, PipelineError, Step, under
from fma.pipeline.costs import PreflightReport, StepPlan, cfg_options, format_plan, plan_costs
from fma.pipeline.costs import is_split_list as _is_split_list  # noqa: F401  (tests use the name)
from fma.pipeline.fingerprint import HashCache, expand
from fma.pipeline.stage_config import StageConfigs

__all__ = ["PreflightError", "PreflightReport", "StepPlan", "format_plan", "preflight"]

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class PreflightError(PipelineError):
    """The preflight found problems; the message lists all of them."""


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
        for key, value in cfg_options(step.args).items():
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


def preflight(
    pipeline: Pipeline,
    selected: Collection[str],
    *,
    world_size: int = 1,
    allow_batch_change: bool = False,
    cache: HashCache | None = None,
    configs: StageConfigs | None = None,
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
        configs: the runner's parsed stage configs (the training steps' configs are parsed into
            it, and its fingerprints use them again); a new one without it.

    Returns:
        The report; ``problems`` is empty when the run can start.
    """
    report = PreflightReport(problems=list(pipeline.problems), notes=[])
    cache = cache or HashCache(None)
    steps = [s for s in pipeline.steps if s.enabled and s.name in selected and not s.error]
    _check_inputs(pipeline, steps, report, cache)
    _check_cfg_option_paths(pipeline, steps, report)
    configs = configs or StageConfigs()
    plan_costs(pipeline, steps, report, world_size=world_size,
               allow_batch_change=allow_batch_change, configs=configs)  # fmt: skip
    return report
