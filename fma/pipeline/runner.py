"""Run a pipeline (``tools/reproduce.py``): every step of a method, resumable, in one command.

The config format is described in :mod:`fma.pipeline.config`, the fingerprint in
:mod:`fma.pipeline.fingerprint`. For every step in order the runner decides:

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
import datetime as _dt
import json
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from fma.io.atomic import write_json_atomic
from fma.io.manifest import folder_lock
from fma.pipeline.config import Pipeline, PipelineError, Step, check_wiring, under
from fma.pipeline.fingerprint import (
    HashCache,
    changed_parts,
    expand,
    recorded_parts,
    same_fingerprint,
    step_fingerprint,
)
from fma.pipeline.preflight import PreflightError, PreflightReport, format_plan, preflight
from fma.pipeline.step_process import execute_step

__all__ = [
    "Launcher",
    "StepResult",
    "format_summary",
    "read_record",
    "records_summary",
    "run_pipeline",
    "step_command",
]


@dataclasses.dataclass
class Launcher:
    """torchrun options passed through to the distributed steps (``launcher='none'``: none)."""

    launcher: str = "none"
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    def prefix(self) -> list[str]:
        """``-m torch.distributed.run ...`` (after the python executable)."""
        return [
            "-m", "torch.distributed.run", f"--nnodes={self.nnodes}",
            f"--node_rank={self.node_rank}", f"--master_addr={self.master_addr}",
            f"--master_port={self.master_port}", f"--nproc_per_node={self.nproc_per_node}",
        ]  # fmt: skip


@dataclasses.dataclass
class StepResult:
    """What happened to one step in this invocation."""

    step: Step
    status: str  # ran, skipped, failed, not run, off, would run, would skip
    reason: str = ""
    seconds: float | None = None
    record: dict[str, Any] | None = None


def step_command(
    step: Step, launcher: Launcher | None = None, *, python: str | None = None
) -> list[str]:
    """The command of a step: plain, or through torchrun when it is distributed."""
    python = python or sys.executable
    launcher = launcher or Launcher()
    if step.distributed and launcher.launcher == "pytorch":
        return [python, *launcher.prefix(), *step.program, *step.args, "--launcher", "pytorch"]
    return [python, *step.program, *step.args]


def _record_path(pipeline: Pipeline, step: Step) -> Path:
    return pipeline.records_dir / f"{step.name}.json"


def read_record(pipeline: Pipeline, step: Step) -> dict[str, Any] | None:
    """The record of a finished step, or None (missing or unreadable: counts as unfinished)."""
    path = _record_path(pipeline, step)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _existing(pipeline: Pipeline, pattern: str) -> list[Path]:
    return [pipeline.abspath(p) for p in expand(pattern, pipeline.root)
            if pipeline.abspath(p).exists()]  # fmt: skip


def _missing_outputs(pipeline: Pipeline, step: Step) -> list[str]:
    return [out for out in step.outputs if not _existing(pipeline, out)]


def _resolve_globs(pipeline: Pipeline, step: Step, *, strict: bool) -> Step:
    """The step with every glob argument replaced by its newest match."""
    args = []
    for arg in step.args:
        if arg.startswith("-") or "=" in arg or not any(c in arg for c in "*?["):
            args.append(arg)
            continue
        matches = _existing(pipeline, arg)
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


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _move_aside(pipeline: Pipeline, step: Step, out: TextIO, dry_run: bool) -> None:
    for pattern in step.outputs:
        for path in _existing(pipeline, pattern):
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


def _metric_value(pipeline: Pipeline, step: Step, key: str = "mIoU") -> float | None:
    if not step.metrics:
        return None
    try:
        data = json.loads(pipeline.abspath(step.metrics).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def format_summary(pipeline: Pipeline, results: Sequence[StepResult]) -> str:
    """One table: step, label, status, time, mIoU (when a metrics file exists), outputs."""
    rows = [("step", "label", "status", "time", "mIoU", "outputs")]
    for r in results:
        miou = _metric_value(pipeline, r.step)
        where = r.step.metrics or (r.step.outputs[0] if r.step.outputs else "-")
        rows.append((r.step.name, r.step.label, r.status, _fmt_time(r.seconds),
                     "-" if miou is None else f"{miou:.2f}", where))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def records_summary(pipeline: Pipeline) -> list[StepResult]:
    """The state of every step from the records alone (``--summary``: nothing is computed)."""
    results = []
    for step in pipeline.steps:
        if not step.enabled:
            results.append(StepResult(step, "off"))
            continue
        rec = read_record(pipeline, step)
        if rec is None:
            results.append(StepResult(step, "not run"))
        else:
            results.append(StepResult(step, "done", seconds=rec.get("duration_s"), record=rec))
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
    missing = _missing_outputs(pipeline, step)
    if missing:
        return True, "outputs missing: " + ", ".join(missing), rec
    return False, f"up to date (finished {rec.get('ended', '?')})", rec


def _run_steps(
    pipeline: Pipeline,
    selected: set[str],
    forced: str | None,
    report: PreflightReport,
    cache: HashCache,
    launcher: Launcher,
    world: int,
    *,
    dry_run: bool,
    out: TextIO,
    quiet: bool,
) -> tuple[int, list[StepResult]]:
    """The steps of :func:`run_pipeline` after the preflight: ``(exit code, results)``."""
    write_records = launcher.node_rank == 0
    results: list[StepResult] = []
    rerun: list[tuple[str, str]] = []  # (output, step) of the steps that run in this invocation
    code = 0
    n = len(pipeline.steps)
    for i, step in enumerate(pipeline.steps):
        head = f"[{i + 1}/{n}] {step.name} ({step.label})"
        if not step.enabled:
            results.append(StepResult(step, "off", "disabled by the pipeline's vars"))
            print(f"{head}: off (disabled by the pipeline's vars)", file=out)
            continue
        if step.name not in selected or (code and not dry_run):
            results.append(StepResult(step, "not run"))
            continue
        if step.error:
            print(f"{head}: cannot run: {step.error}", file=out)
            results.append(StepResult(step, "failed", step.error))
            rerun += [(o, step.name) for o in step.outputs]
            code = 2
            continue
        if launcher.node_rank > 0 and not step.distributed:
            raise PipelineError(
                f"step {step.name} is not distributed: run it on node 0 only; on the other "
                "nodes run the distributed steps one by one with --only STEP"
            )
        try:
            resolved = _resolve_globs(pipeline, step, strict=not dry_run)
        except PipelineError as exc:
            print(f"{head}: cannot run: {exc}", file=out)
            results.append(StepResult(step, "failed", str(exc)))
            code = 2
            continue
        if step.name in report.step_args:  # --allow-batch-change: the total this launcher gives
            resolved = dataclasses.replace(
                resolved, args=[*resolved.args, *report.step_args[step.name]]
            )
        step_world = world if step.distributed else None  # part of a distributed step's fingerprint
        after = next((owner for out_, owner in rerun
                      if any(under(item, out_) for item in step.inputs)), None)  # fmt: skip
        if after is not None and dry_run:  # it would run anyway; its inputs do not exist yet
            fp, parts = "", {}
        else:
            fp, parts = step_fingerprint(tool=resolved.tool, module=resolved.module,
                                         args=resolved.args, inputs=resolved.inputs,
                                         root=pipeline.root, cache=cache,
                                         world_size=step_world)  # fmt: skip
        run, reason, rec = _decide(pipeline, step, parts, fp, forced, after)
        cmd = step_command(resolved, launcher)
        if not run:
            print(f"{head}: skip -- {reason}", file=out)
            results.append(StepResult(step, "skipped", reason, rec.get("duration_s"), rec))
            continue
        print(f"{head}: {'would run' if dry_run else 'run'} -- {reason}", file=out)
        print(f"  {shlex.join(cmd)}", file=out)
        if rec is not None and write_records:
            _move_aside(pipeline, step, out, dry_run)
        rerun += [(o, step.name) for o in step.outputs]
        if dry_run:
            results.append(StepResult(step, "would run", reason))
            continue
        if rec is not None and write_records:
            _record_path(pipeline, step).unlink(missing_ok=True)
        log_path = pipeline.records_dir / "logs" / f"{step.name}.log"
        started, t0 = _now(), time.monotonic()
        status, stopped = execute_step(cmd, pipeline.root, log_path, None if quiet else out)
        seconds = time.monotonic() - t0
        if status != 0:
            if stopped is not None:
                what = "interrupted" if stopped == signal.SIGINT else "stopped by SIGTERM"
            elif status in (128 + signal.SIGINT, -signal.SIGINT):
                what, status = "interrupted", 128 + signal.SIGINT
            elif status < 0:
                what, status = f"killed by signal {-status}", 128 - status
            else:
                what = f"failed (exit {status})"
            if quiet:  # the end of the step's output, which the terminal did not show
                tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
                print("\n".join(tail), file=out)
            print(f"\nerror: step {step.name} {what} after {_fmt_time(seconds)}\n"
                  f"  command: {shlex.join(cmd)}\n  log: {log_path}\n"
                  "  rerun the same command to continue from this step", file=out)  # fmt: skip
            results.append(StepResult(step, "failed", what, seconds))
            code = status if status > 0 else 1
            continue
        # Hashed again after the run: the record holds what the next invocation compares with.
        fp, parts = step_fingerprint(tool=resolved.tool, module=resolved.module,
                                     args=resolved.args, inputs=resolved.inputs,
                                     root=pipeline.root, cache=cache,
                                     world_size=step_world)  # fmt: skip
        record = {
            "pipeline": pipeline.name, "step": step.name, "fingerprint": fp, "parts": parts,
            "command": cmd, "started": started, "ended": _now(), "duration_s": round(seconds, 3),
            "exit_status": 0, "outputs": step.outputs, "metrics": step.metrics,
            "launcher": dataclasses.asdict(launcher),
        }  # fmt: skip
        if write_records:
            write_json_atomic(_record_path(pipeline, step), record)
            cache.save()
        results.append(StepResult(step, "ran", reason, seconds, record))
    return code, results


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
    out = out or sys.stdout
    launcher = launcher or Launcher()
    selected = _select(pipeline, start, only)
    forced = "--only" if only else "--from" if start else None
    cache = HashCache(None if dry_run else pipeline.records_dir / ".hash_cache.json")
    write_records = launcher.node_rank == 0
    print(f"pipeline {pipeline.name}: {pipeline.description}", file=out)
    print(f"work dir: {pipeline.work_dir} (records and logs in {pipeline.records_dir})", file=out)
    print(f"cwd: {pipeline.root}", file=out)
    for note in pipeline.notes:
        print(f"note: {note}", file=out)
    for problem in check_wiring(pipeline):
        print(f"warning: {problem}", file=out)
    world = launcher.nproc_per_node * launcher.nnodes if launcher.launcher == "pytorch" else 1
    report = preflight(pipeline, selected, world_size=world,
                       allow_batch_change=allow_batch_change, cache=cache)  # fmt: skip
    for note in report.notes:
        print(f"note: {note}", file=out)
    if report.problems:
        listed = "\n  ".join(report.problems)
        raise PreflightError(
            f"{pipeline.path}: the preflight found {len(report.problems)} problem(s); nothing "
            f"was run. Fix them and rerun:\n  {listed}"
        )
    if any(p.gpu_hours or p.cpu_hours or p.disk_bytes for p in report.plan):
        print(format_plan(report), file=out)
    # One runner per work dir (the kernel frees the lock however the runner ends).
    lock = folder_lock(pipeline.records_dir) if write_records and not dry_run else None
    with lock or contextlib.nullcontext():
        code, results = _run_steps(pipeline, selected, forced, report, cache, launcher, world,
                                   dry_run=dry_run, out=out, quiet=quiet)  # fmt: skip
    print("", file=out)
    print(format_summary(pipeline, results), file=out)
    if dry_run:
        print("dry run: nothing was run", file=out)
    return code
