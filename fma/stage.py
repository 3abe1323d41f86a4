"""Per-image stage runner shared by the offline tools (masks, seeds, refined labels).

It gives every offline stage the same behaviour:

* images whose output file already exists are skipped (resume after a crash or a kill; outputs
  are written atomically by the per-image function, so an existing file is a complete file);
* work runs in this process or in ``workers`` spawned processes, with a tqdm progress bar;
* an image that fails is reported by name with its error and the run goes on; the caller decides
  what a failure means (the tools exit non-zero at the end). With workers, an image whose worker
  dies (a segfault, the out-of-memory killer) is a failure of that image only
  (:mod:`fma.stage_workers`);
* an output the user must fix (disk full, read-only folder: :class:`fma.io.atomic.OutputError`)
  stops the run with :class:`StageStoppedError`, and SIGINT/SIGTERM stop it with
  :class:`StageInterrupted`; both keep every finished file, carry the report and say how to
  resume. :func:`tool_exit` turns them (and other one-line errors) into a message and an exit
  code for the tools.

The per-image function must be a module-level function (picklable) taking ``(image_id, *args)``
and writing its own output.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fma.io.atomic import OutputError
from fma.io.manifest import FolderLockedError
from fma.stage_workers import StopRun, run_in_workers, stop_signals

__all__ = [
    "StageFailedError",
    "StageInterrupted",
    "StageReport",
    "StageStoppedError",
    "map_per_image",
    "run_per_image",
    "shard_ids",
    "tool_exit",
]


@dataclasses.dataclass
class StageReport:
    """What a stage run did."""

    done: list[str] = dataclasses.field(default_factory=list)  # ids computed in this run
    skipped: list[str] = dataclasses.field(default_factory=list)  # ids whose output existed
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # id -> error message

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [
            f"{len(self.done)} written, {len(self.skipped)} already done, {len(self.failed)} failed"
        ]
        for image_id, err in list(self.failed.items())[:50]:
            lines.append(f"  FAILED {image_id}: {err}")
        if len(self.failed) > 50:
            lines.append(f"  ... and {len(self.failed) - 50} more failures")
        return "\n".join(lines)


def shard_ids(ids: Sequence[str], index: int, count: int) -> list[str]:
    """The ``index``-th of ``count`` disjoint shards (round-robin; their union is ``ids``)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= index < count")
    return list(ids[index::count])


_RESUME = "rerun the same command to resume (finished images are skipped)"


class StageInterrupted(StopRun):
    """SIGINT/SIGTERM stopped the run; ``report`` holds what was finished (all of it kept)."""

    def __init__(self, signum: int, report: StageReport) -> None:
        super().__init__(signum)
        self.report = report

    def __str__(self) -> str:
        return (
            f"stopped by {self.args[0]}: {len(self.report.done)} images written in this run "
            f"and {len(self.report.skipped)} done before are kept; {_RESUME}"
        )


class StageStoppedError(RuntimeError):
    """An output error that every further image would hit too (disk full, read-only)."""

    def __init__(self, error: str, report: StageReport) -> None:
        super().__init__(error)
        self.report = report

    def __str__(self) -> str:
        return (
            f"{self.args[0]}. Stopped: {len(self.report.done)} images written in this run are "
            f"kept; after the fix, {_RESUME}"
        )


def _call(fn: Callable[..., Any], image_id: str, args: tuple[Any, ...]) -> tuple[str, bool] | None:
    """None on success, else ``(message, stop_the_run)``."""
    try:
        fn(image_id, *args)
    except KeyboardInterrupt:
        raise
    except MemoryError:
        return "MemoryError: ran out of memory on this image", False
    except Exception as exc:  # reported by name; the run goes on
        if isinstance(exc, OutputError):
            return str(exc), True
        msg = f"{type(exc).__name__}: {exc}"
        if os.environ.get("FMA_DEBUG"):
            msg += "\n" + traceback.format_exc()
        return msg, False
    return None


def run_per_image(
    image_ids: Sequence[str],
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    *,
    output_path: Callable[[str], Path] | None = None,
    workers: int = 0,
    desc: str = "images",
    progress: bool = True,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
) -> StageReport:
    """Run ``fn(image_id, *args)`` for every id whose output does not exist yet.

    Args:
        image_ids: ids to process, in order.
        fn: module-level per-image function; writes its output atomically.
        args: extra positional arguments (picklable when ``workers > 0``).
        output_path: id -> output file; existing files are skipped. None: nothing is skipped.
        workers: 0 runs in this process; N > 0 uses N spawned worker processes, one image
            each at a time.
        desc: progress-bar label.
        progress: show a tqdm bar (on stderr); when every output exists, one line saying so
            instead.
        initializer: called as ``initializer(*initargs)`` once in every worker process (or
            once in this process when ``workers`` is 0) before the first image, e.g. to load a
            model once per process instead of pickling it with every image.
        initargs: its arguments (picklable when ``workers > 0``).

    Returns:
        :class:`StageReport`.

    Raises:
        StageInterrupted: SIGINT or SIGTERM (workers are stopped within about a second).
        StageStoppedError: an :class:`fma.io.atomic.OutputError` (disk full, read-only output).
    """
    from tqdm import tqdm

    report = StageReport()
    todo = []
    for image_id in image_ids:
        if output_path is not None and output_path(image_id).is_file():
            report.skipped.append(image_id)
        else:
            todo.append(image_id)
    if not todo:  # one line instead of an empty progress bar
        if progress:
            print(f"{desc}: nothing to do, all {len(image_ids)} images done", file=sys.stderr)
        return report
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress, file=sys.stderr)
    fatal: list[str] = []

    def record(image_id: str, outcome: tuple[str, bool] | None) -> bool:
        if outcome is None:
            report.done.append(image_id)
        else:
            report.failed[image_id] = outcome[0]
            if outcome[1]:
                fatal.append(outcome[0])
        bar.update(1)
        return not fatal

    try:
        with stop_signals():
            if workers <= 0 or len(todo) <= 1:
                if initializer is not None:
                    initializer(*initargs)
                for image_id in todo:
                    if not record(image_id, _call(fn, image_id, args)):
                        break
            else:
                run_in_workers(todo, _call, fn, args, workers, record, initializer, initargs)
    except StopRun as exc:
        raise StageInterrupted(exc.signum, report) from None
    finally:
        bar.close()
    if fatal:
        raise StageStoppedError(fatal[0], report)
    return report


def tool_exit(main: Callable[[], int]) -> int:
    """Run a tool's ``main`` and turn a stop or an output problem into one line and a code.

    Returns:
        ``main()``'s code; 128 + the signal number after SIGINT/SIGTERM; 1 for a full disk, a
        read-only output folder, a file in the way, a folder locked by another run, or images
        that failed in :func:`map_per_image`.
    """
    try:
        return main()
    except StageInterrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 128 + exc.signum
    except StopRun as exc:
        print(f"\nstopped by {exc.args[0]}; {_RESUME}", file=sys.stderr)
        return 128 + exc.signum
    except (StageStoppedError, StageFailedError, OutputError, FolderLockedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _call_value(fn: Callable[..., Any], image_id: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    """``("ok", value)`` on success, else ``("error", message)``."""
    try:
        return "ok", fn(image_id, *args)
    except KeyboardInterrupt:
        raise
    except MemoryError:
        return "error", "MemoryError: ran out of memory on this image"
    except Exception as exc:  # reported by id at the end
        return "error", f"{type(exc).__name__}: {exc}"


class StageFailedError(RuntimeError):
    """Some images of a :func:`map_per_image` run failed; ``failed`` maps id -> message."""

    def __init__(self, failed: dict[str, str], desc: str) -> None:
        lines = "\n".join(f"  {i}: {m}" for i, m in list(failed.items())[:20])
        super().__init__(f"{desc}: {len(failed)} image(s) failed\n{lines}")
        self.failed = failed


def map_per_image(
    image_ids: Sequence[str],
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    *,
    workers: int = 0,
    desc: str = "images",
    progress: bool = True,
) -> dict[str, Any]:
    """``{image_id: fn(image_id, *args)}`` for every id, on the worker pool of
    :func:`run_per_image` (one image per worker at a time, workers die with their parent,
    SIGINT/SIGTERM stop the run within about a second).

    Raises:
        StageFailedError: after every image ran, when some failed (each named with its error).
        StageInterrupted: SIGINT or SIGTERM.
    """
    from tqdm import tqdm

    values: dict[str, Any] = {}
    failed: dict[str, str] = {}
    ids = list(image_ids)
    bar = tqdm(total=len(ids), desc=desc, unit="img", disable=not progress, file=sys.stderr)

    def record(image_id: str, outcome: tuple[str, Any]) -> bool:
        kind, payload = outcome
        if kind == "ok":
            values[image_id] = payload
        else:  # ("error", message), or a dead worker's (message, False)
            failed[image_id] = payload if kind == "error" else kind
        bar.update(1)
        return True

    try:
        with stop_signals():
            if workers <= 0 or len(ids) <= 1:
                for image_id in ids:
                    record(image_id, _call_value(fn, image_id, args))
            else:
                run_in_workers(ids, _call_value, fn, args, workers, record)
    except StopRun as exc:
        report = StageReport(done=list(values), failed=failed)
        raise StageInterrupted(exc.signum, report) from None
    finally:
        bar.close()
    if failed:
        raise StageFailedError(failed, desc)
    return values
