"""Run a pipeline (``tools/reproduce.py``): every step of a method, resumable, in one command.

The config format is described in :mod:`fma.pipeline.config`, the fingerprint in
:mod:`fma.pipeline.fingerprint`, the records and the summary table in :mod:`fma.pipeline.records`.
:func:`run_pipeline` prints the pipeline, runs the preflight (:mod:`fma.pipeline.preflight`),
then takes the steps in order, each in three parts: :func:`plan_step` decides what to do with it
(a :class:`Decision`), :func:`execute_planned` runs its command, :func:`record_step` writes its
record. Each step's stage config is parsed once in the runner
(:class:`fma.pipeline.stage_config.StageConfigs`, shared by the preflight and the fingerprints).
The plan of a step is made when the step is reached, since it depends on what the steps before
it did in this invocation. For every step the runner decides:

* **skip** when ``<work_dir>/pipeline/<step>.json`` holds the step's current fingerprint and
  every output exists;
* **run** when there is no record (first run, or the last run stopped in this step: the tools
  skip finished images and the training steps pass ``--resume``, so the step continues), when
  the fingerprint changed (the reason names the config or input that changed), when an output
  is missing, when it reads the output of a step that runs again in this invocation (so a
  rerun carries down the chain: for the method's linear chains, every later step), or when
  ``--from`` / ``--only`` select it.

A step that has a record and runs again starts clean: its outputs are first moved to
``<output>.stale`` (replacing an older one) and its record is deleted, so no stale per-image file
survives and an interruption leaves it "unfinished". The record is written atomically only
after the step exited with 0. Each step's output goes to the terminal and to
``<work_dir>/pipeline/logs/<step>.log`` (appended). A failure or Ctrl-C stops the run, names the
step, its command and its log, and returns non-zero; the same command continues there.

One runner per work dir: a run holds :func:`fma.io.manifest.folder_lock` on
``<work_dir>/pipeline`` (not ``--dry-run``), so a second one stops naming the first one's pid.
A step runs in a process group of its own and dies with the runner: the kernel sends it
SIGTERM when the runner dies, even by SIGKILL (torchrun passes it on to its workers), and
SIGINT/SIGTERM of the runner are passed to the step's group, which gets
:data:`fma.pipeline.step_process.STEP_STOP_S` seconds before it is killed; the runner then exits
with 130/143 and writes no record.

Launcher options apply to ``distributed=True`` steps only: they run as ``python -m
torch.distributed.run --nnodes ... --nproc_per_node N TOOL ARGS --launcher pytorch`` (the
convention of ``tools/dist_train.sh``); the others run as ``python TOOL ARGS``. Their number of
processes is part of their fingerprint. With ``allow_batch_change``, a training step whose
config's total batch cannot be held on these processes gets ``--cfg-options
total_batch=<batch_size x processes>`` (the preflight's ``step_args``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import sys
import time
from typing import Any, TextIO

from fma.io.atomic import write_json_atomic
from fma.io.manifest import folder_lock
from fma.pipeline.config import Pipeline, PipelineError, Step, check_wiring
from fma.pipeline.fingerprint import HashCache
from fma.pipeline.plan import Decision, Invocation, existing, plan_step
from fma.pipeline.preflight import PreflightError, PreflightReport, format_plan, preflight
from fma.pipeline.records import (
    StepResult,
    fmt_time,
    format_summary,
    now,
    read_record,
    record_path,
    records_summary,
)
from fma.pipeline.stage_config import StageConfigs
from fma.pipeline.step_process import Launcher, StatusLine, execute_step, step_command

__all__ = [
    "Decision",
    "Invocation",
    "Launcher",
    "StepResult",
    "execute_planned",
    "format_summary",
    "plan_step",
    "read_record",
    "record_step",
    "records_summary",
    "run_pipeline",
    "step_command",
]


def _announce(inv: Invocation, head: str, d: Decision) -> None:
    """Print the decision (nothing for a step that is not run)."""
    if d.action == "off":
        print(f"{head}: off ({d.reason})", file=inv.out)
    elif d.action == "cannot run":
        print(f"{head}: cannot run: {d.reason}", file=inv.out)
    elif d.action == "skip":
        print(f"{head}: skip -- {d.reason}", file=inv.out)
    elif d.action == "run":
        print(f"{head}: {'would run' if inv.dry_run else 'run'} -- {d.reason}", file=inv.out)
        print(f"  {shlex.join(d.command)}", file=inv.out)


def _move_aside(pipeline: Pipeline, step: Step, out: TextIO, dry_run: bool) -> None:
    for pattern in step.outputs:
        for path in existing(pipeline, pattern):
            stale = path.with_name(path.name + ".stale")
            verb = "would move" if dry_run else "moving"
            print(f"  {verb} the old output {path} -> {stale.name}", file=out)
            if dry_run:
                continue
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            elif stale.exists() or stale.is_symlink():
                stale.unlink()
            os.replace(path, stale)


def _carry_out(inv: Invocation, d: Decision) -> StepResult:
    """The step's result: what the decision says, or (a real run of a step that runs) the result
    of :func:`execute_planned`. A step that runs again first has its old outputs moved aside."""
    if d.action in ("off", "cannot run"):
        return StepResult(d.step, "off" if d.action == "off" else "failed", d.reason)
    if d.action == "not run":
        return StepResult(d.step, "not run")
    if d.action == "skip":
        assert d.record is not None
        return StepResult(d.step, "skipped", d.reason, d.record.get("duration_s"), d.record)
    if d.record is not None and inv.write_records:
        _move_aside(inv.pipeline, d.step, inv.out, inv.dry_run)
    if inv.dry_run:
        return StepResult(d.step, "would run", d.reason)
    return execute_planned(inv, d)


def _failure(status: int, stopped: int | None) -> tuple[str, int]:
    """``(what happened, exit status)`` of a step that did not exit with 0."""
    if stopped is not None:
        return ("interrupted" if stopped == signal.SIGINT else "stopped by SIGTERM"), status
    if status in (128 + signal.SIGINT, -signal.SIGINT):
        return "interrupted", 128 + signal.SIGINT
    if status < 0:
        return f"killed by signal {-status}", 128 - status
    return f"failed (exit {status})", status


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def execute_planned(inv: Invocation, d: Decision) -> StepResult:
    """Run a step that :func:`plan_step` decided to run: delete its old record, run its command
    (:func:`fma.pipeline.step_process.execute_step`, logged to
    ``<work_dir>/pipeline/logs/<step>.log``), then :func:`record_step` when it exited with 0.
    A failure prints the step, its command and its log, and sets ``inv.code``."""
    if d.record is not None and inv.write_records:
        record_path(inv.pipeline, d.step).unlink(missing_ok=True)
    log_path = inv.pipeline.records_dir / "logs" / f"{d.step.name}.log"
    started, t0 = now(), time.monotonic()
    # Quiet on a terminal: one updating line (elapsed time, the step's last output line).
    line = StatusLine(inv.out) if inv.quiet and _isatty(inv.out) else None
    status, stopped = execute_step(d.command, inv.pipeline.root, log_path,
                                   None if inv.quiet else inv.out, line)  # fmt: skip
    seconds = time.monotonic() - t0
    if status == 0:
        return StepResult(d.step, "ran", d.reason, seconds, record_step(inv, d, started, seconds))
    what, status = _failure(status, stopped)
    if inv.quiet:  # the end of the step's output, which the terminal did not show
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        print("\n".join(tail), file=inv.out)
    print(f"\nerror: step {d.step.name} {what} after {fmt_time(seconds)}\n"
          f"  command: {shlex.join(d.command)}\n  log: {log_path}\n"
          "  rerun the same command to continue from this step", file=inv.out)  # fmt: skip
    inv.code = status if status > 0 else 1
    return StepResult(d.step, "failed", what, seconds)


def record_step(inv: Invocation, d: Decision, started: str, seconds: float) -> dict[str, Any]:
    """The record of a step that finished with 0, written atomically to
    ``<work_dir>/pipeline/<step>.json`` (node rank 0 only; the hash cache is saved with it)."""
    assert d.resolved is not None
    # Hashed again after the run: the record holds what the next invocation compares with.
    fp, parts = inv.fingerprint(d.resolved, d.world)
    record = {
        "pipeline": inv.pipeline.name, "step": d.step.name, "fingerprint": fp, "parts": parts,
        "command": d.command, "started": started, "ended": now(),
        "duration_s": round(seconds, 3), "exit_status": 0, "outputs": d.step.outputs,
        "metrics": d.step.metrics, "launcher": dataclasses.asdict(inv.launcher),
    }  # fmt: skip
    if inv.write_records:
        write_json_atomic(record_path(inv.pipeline, d.step), record)
        inv.cache.save()
    return record


def _run_steps(inv: Invocation) -> list[StepResult]:
    """Every step in order: plan, print, carry out (execute and record)."""
    results: list[StepResult] = []
    n = len(inv.pipeline.steps)
    for i, step in enumerate(inv.pipeline.steps):
        decision = plan_step(inv, step)
        _announce(inv, f"[{i + 1}/{n}] {step.name} ({step.label})", decision)
        if decision.action in ("run", "cannot run"):  # later readers of its outputs run too
            inv.rerun += [(o, step.name) for o in step.outputs]
        if decision.action == "cannot run":
            inv.code = 2
        results.append(_carry_out(inv, decision))
    return results


def _select(pipeline: Pipeline, start: str | None, only: str | None) -> set[str]:
    if start and only:
        raise PipelineError("give --from or --only, not both")
    names = [s.name for s in pipeline.steps]
    if only:
        pipeline.step(only)  # an unknown name lists the valid ones
        return {only}
    if start:
        pipeline.step(start)
        return set(names[names.index(start) :])
    return set(names)


def _print_header(pipeline: Pipeline, out: TextIO) -> None:
    print(f"pipeline {pipeline.name}: {pipeline.description}", file=out)
    print(f"work dir: {pipeline.work_dir} (records and logs in {pipeline.records_dir})", file=out)
    print(f"cwd: {pipeline.root}", file=out)
    for note in pipeline.notes:
        print(f"note: {note}", file=out)
    for problem in check_wiring(pipeline):
        print(f"warning: {problem}", file=out)


def _checked_preflight(inv: Invocation, allow_batch_change: bool) -> PreflightReport:
    """The preflight's report (its notes and plan printed); raises when it found problems."""
    pipeline = inv.pipeline
    report = preflight(pipeline, inv.selected, world_size=inv.launcher.world_size,
                       allow_batch_change=allow_batch_change, cache=inv.cache,
                       configs=inv.configs)  # fmt: skip
    for note in report.notes:
        print(f"note: {note}", file=inv.out)
    if report.problems:
        listed = "\n  ".join(report.problems)
        raise PreflightError(
            f"{pipeline.path}: the preflight found {len(report.problems)} problem(s); nothing "
            f"was run. Fix them and rerun:\n  {listed}"
        )
    if any(p.gpu_hours or p.cpu_hours or p.disk_bytes for p in report.plan):
        print(format_plan(report), file=inv.out)
    return report


def run_pipeline(
    pipeline: Pipeline,
    *,
    start: str | None = None,
    only: str | None = None,
    dry_run: bool = False,
    launcher: Launcher | None = None,
    out: TextIO | None = None,
    quiet: bool = False,
    allow_batch_change: bool = False,
) -> int:
    """Run (or with ``dry_run`` only print) the steps; print the summary table; exit code.

    First the preflight (:func:`fma.pipeline.preflight.preflight`) checks what the selected steps
    need and prints the plan with its estimates. Every step's output goes to
    ``<work_dir>/pipeline/logs/<step>.log``, and to ``out`` as well unless ``quiet`` (then a
    failed step shows the last 40 lines of its log).

    Returns:
        0 when every selected step was skipped or succeeded; the failed step's exit code
        (1 when it was not a positive number) otherwise; 2 for a step that cannot be resolved.

    Raises:
        PreflightError: the preflight found problems (all listed); nothing was run.
        FolderLockedError: another run holds ``<work_dir>/pipeline`` (its pid is named); not
            with ``dry_run``, nor on a node rank above 0, which write no records.
    """
    inv = Invocation(
        pipeline=pipeline,
        selected=_select(pipeline, start, only),
        forced="--only" if only else "--from" if start else None,
        report=PreflightReport(),
        cache=HashCache(None if dry_run else pipeline.records_dir / ".hash_cache.json"),
        configs=StageConfigs(),
        launcher=launcher or Launcher(),
        dry_run=dry_run,
        out=out or sys.stdout,
        quiet=quiet,
    )
    _print_header(pipeline, inv.out)
    inv.report = _checked_preflight(inv, allow_batch_change)
    # One runner per work dir (the kernel frees the lock however the runner ends).
    lock = folder_lock(pipeline.records_dir) if inv.write_records and not dry_run else None
    with lock or contextlib.nullcontext():
        results = _run_steps(inv)
    print("", file=inv.out)
    print(format_summary(pipeline, results), file=inv.out)
    if dry_run:
        print("dry run: nothing was run", file=inv.out)
    return inv.code
