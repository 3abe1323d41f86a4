"""What the runner does with each step of a pipeline, decided when the step is reached.

:func:`plan_step` turns a step into a :class:`Decision` from the step's record
(:mod:`fma.pipeline.records`), its current fingerprint (:mod:`fma.pipeline.fingerprint`) and
what the steps before it did in this invocation (:class:`Invocation`): ``off``, ``not run``,
``cannot run``, ``skip`` or ``run``, with the reason that is printed, the resolved step (globs
replaced by their newest match, the preflight's extra arguments appended) and its command.
It prints nothing and changes nothing on disk; :mod:`fma.pipeline.runner` prints the decision,
executes the step and writes its record.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TextIO

from fma.pipeline.config import Pipeline, PipelineError, Step, under
from fma.pipeline.costs import PreflightReport
from fma.pipeline.fingerprint import (
    HashCache,
    changed_parts,
    expand,
    recorded_parts,
    same_fingerprint,
    step_fingerprint,
)
from fma.pipeline.records import read_record
from fma.pipeline.stage_config import StageConfigs
from fma.pipeline.step_process import Launcher, step_command

__all__ = ["Decision", "Invocation", "existing", "plan_step"]


@dataclasses.dataclass
class Invocation:
    """What the steps of one :func:`run_pipeline` call share, and what they changed so far."""

    pipeline: Pipeline
    selected: set[str]  # names of the steps --from / --only select (all by default)
    forced: str | None  # "--from" / "--only": the selected steps run whatever their record
    report: PreflightReport
    cache: HashCache
    configs: StageConfigs
    launcher: Launcher
    out: TextIO
    dry_run: bool = False
    quiet: bool = False
    #: (output, step) of the steps that run (or cannot run) in this invocation so far.
    rerun: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    code: int = 0  # the exit code so far; a non-zero one stops a real run

    @property
    def write_records(self) -> bool:
        """Only node rank 0 writes records (and moves old outputs aside)."""
        return self.launcher.node_rank == 0

    def fingerprint(self, step: Step, world: int | None) -> tuple[str, dict[str, Any]]:
        """:func:`fma.pipeline.fingerprint.step_fingerprint` of a resolved step, with this
        invocation's hash cache and parsed stage configs."""
        return step_fingerprint(tool=step.tool, module=step.module, args=step.args,
                                inputs=step.inputs, root=self.pipeline.root, cache=self.cache,
                                world_size=world, configs=self.configs)  # fmt: skip


@dataclasses.dataclass
class Decision:
    """What the runner does with one step (:func:`plan_step`).

    ``action``: ``off`` (disabled by the vars), ``not run`` (not selected, or an earlier step
    failed), ``cannot run`` (an unset var or an unmatched glob), ``skip`` (up to date) or
    ``run``; ``reason`` says why.
    """

    step: Step
    action: str
    reason: str = ""
    resolved: Step | None = None  # globs resolved, the preflight's extra arguments appended
    command: list[str] = dataclasses.field(default_factory=list)
    record: dict[str, Any] | None = None  # the step's record from an earlier run
    world: int | None = None  # processes of a distributed step (part of its fingerprint)


def existing(pipeline: Pipeline, pattern: str) -> list[Path]:
    """The paths (a glob's matches) of ``pattern`` that exist, relative to the root."""
    return [pipeline.abspath(p) for p in expand(pattern, pipeline.root)
            if pipeline.abspath(p).exists()]  # fmt: skip


def _resolve_globs(pipeline: Pipeline, step: Step, *, strict: bool) -> Step:
    """The step with every glob argument replaced by its newest match."""
    args = []
    for arg in step.args:
        if arg.startswith("-") or "=" in arg or not any(c in arg for c in "*?["):
            args.append(arg)
            continue
        matches = existing(pipeline, arg)
        if not matches:
            if strict:
                raise PipelineError(
                    f"step {step.name}: no file matches {arg}; did the step writing it finish?"
                )
            args.append(arg)
            continue
        newest = max(matches, key=lambda p: p.stat().st_mtime)
        args.append(os.path.relpath(newest, pipeline.root) if not Path(arg).is_absolute()
                    else str(newest))  # fmt: skip
    return dataclasses.replace(step, args=args)


def _decide(
    pipeline: Pipeline, step: Step, parts: dict, fp: str, forced: str | None, after: str | None
) -> tuple[bool, str, dict | None]:
    """``(run, reason, record)`` for one step."""
    rec = read_record(pipeline, step)
    if forced:
        return True, f"selected by {forced}", rec
    if rec is None:
        return True, "no record: first run, or the last run did not finish (it resumes)", rec
    if after:
        return True, f"it reads the output of {after}, which runs again", rec
    if not same_fingerprint(rec, fp, parts):
        what = changed_parts(recorded_parts(rec, parts), parts) or ["fingerprint"]
        return True, "changed: " + ", ".join(what), rec
    missing = [out for out in step.outputs if not existing(pipeline, out)]
    if missing:
        return True, "outputs missing: " + ", ".join(missing), rec
    return False, f"up to date (finished {rec.get('ended', '?')})", rec


def _gate(inv: Invocation, step: Step) -> Decision | None:
    """The decision for a step that goes no further (off, not run, cannot run), or None."""
    if not step.enabled:
        return Decision(step, "off", "disabled by the pipeline's vars")
    if step.name not in inv.selected or (inv.code and not inv.dry_run):
        return Decision(step, "not run")
    if step.error:
        return Decision(step, "cannot run", step.error)
    if inv.launcher.node_rank > 0 and not step.distributed:
        raise PipelineError(
            f"step {step.name} is not distributed: run it on node 0 only; on the other "
            "nodes run the distributed steps one by one with --only STEP"
        )
    return None


def _resolve(inv: Invocation, step: Step) -> Step:
    """A copy of the step with its globs resolved (strictly in a real run) and the preflight's
    extra arguments (``--allow-batch-change``: the total this launcher gives) appended."""
    resolved = _resolve_globs(inv.pipeline, step, strict=not inv.dry_run)
    resolved.args = [*resolved.args, *inv.report.step_args.get(step.name, [])]
    return resolved


def plan_step(inv: Invocation, step: Step) -> Decision:
    """Decide what to do with ``step`` now, from its record, its fingerprint and what the steps
    before it did in this invocation (``inv.rerun``, ``inv.code``). Nothing is printed or
    changed on disk.

    Raises:
        PipelineError: a step that is not distributed on a node rank above 0.
    """
    gated = _gate(inv, step)
    if gated is not None:
        return gated
    try:
        resolved = _resolve(inv, step)
    except PipelineError as exc:  # a glob without a match in a real run
        return Decision(step, "cannot run", str(exc))
    world = inv.launcher.world_size if step.distributed else None
    after = next((owner for out, owner in inv.rerun
                  if any(under(item, out) for item in step.inputs)), None)  # fmt: skip
    if after is not None and inv.dry_run:  # it would run anyway; its inputs do not exist yet
        fp, parts = "", {}
    else:
        fp, parts = inv.fingerprint(resolved, world)
    run, reason, rec = _decide(inv.pipeline, step, parts, fp, inv.forced, after)
    command = step_command(resolved, inv.launcher)
    return Decision(step, "run" if run else "skip", reason, resolved, command, rec, world)
