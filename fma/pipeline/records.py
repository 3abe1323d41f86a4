"""Step records and the summary table of a pipeline run.

A finished step leaves ``<work_dir>/pipeline/<step>.json`` (written by
:func:`fma.pipeline.runner.record_step`): its fingerprint and parts, command, start and end
times, duration, outputs, metrics file and launcher. :func:`records_summary` reads the state of
every step from these records alone (``--summary``); :func:`format_summary` prints one table of
step results with the mIoU of each step's metrics file when it exists.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fma.pipeline.config import Pipeline, Step

__all__ = [
    "StepResult",
    "fmt_time",
    "format_summary",
    "now",
    "read_record",
    "record_path",
    "records_summary",
]


@dataclasses.dataclass
class StepResult:
    """What happened to one step in this invocation."""

    step: Step
    status: str  # ran, skipped, failed, not run, off, would run, would skip
    reason: str = ""
    seconds: float | None = None
    record: dict[str, Any] | None = None


def record_path(pipeline: Pipeline, step: Step) -> Path:
    """``<work_dir>/pipeline/<step>.json``."""
    return pipeline.records_dir / f"{step.name}.json"


def read_record(pipeline: Pipeline, step: Step) -> dict[str, Any] | None:
    """The record of a finished step, or None (missing or unreadable: counts as unfinished)."""
    try:
        return json.loads(record_path(pipeline, step).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def fmt_time(seconds: float | None) -> str:
    """``12.3s``, ``4m05s``, ``2h03m``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def now() -> str:
    """The UTC time in ISO format, to the second (the records' ``started`` and ``ended``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
        rows.append((r.step.name, r.step.label, r.status, fmt_time(r.seconds),
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
