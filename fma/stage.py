"""Per-image stage runner shared by the offline tools (masks, seeds, refined labels).

It gives every offline stage the same behaviour:

* images whose output file already exists are skipped (resume after a crash or a kill; outputs
  are written atomically by the per-image function, so an existing file is a complete file);
* work runs in this process or in ``workers`` spawned processes, with a tqdm progress bar;
* an image that fails is reported by name with its error and the run goes on; the caller decides
  what a failure means (the tools exit non-zero at the end).

The per-image function must be a module-level function (picklable) taking ``(image_id, *args)``
and writing its own output.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

__all__ = ["StageReport", "run_per_image", "shard_ids"]


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


def _call(fn: Callable[..., Any], image_id: str, args: tuple[Any, ...]) -> str | None:
    try:
        fn(image_id, *args)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # reported by name; the run goes on
        msg = f"{type(exc).__name__}: {exc}"
        if os.environ.get("FMA_DEBUG"):
            msg += "\n" + traceback.format_exc()
        return msg
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
        workers: 0 runs in this process; N > 0 uses N spawned worker processes.
        desc: progress-bar label.
        progress: show a tqdm bar (on stderr).
        initializer: called as ``initializer(*initargs)`` once in every worker process (or
            once in this process when ``workers`` is 0) before the first image, e.g. to load a
            model once per process instead of pickling it with every image.
        initargs: its arguments (picklable when ``workers > 0``).

    Returns:
        :class:`StageReport`.
    """
    from tqdm import tqdm

    report = StageReport()
    todo = []
    for image_id in image_ids:
        if output_path is not None and output_path(image_id).is_file():
            report.skipped.append(image_id)
        else:
            todo.append(image_id)
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress, file=sys.stderr)
    try:
        if workers <= 0 or len(todo) <= 1:
            if initializer is not None and todo:
                initializer(*initargs)
            for image_id in todo:
                err = _call(fn, image_id, args)
                _record(report, image_id, err)
                bar.update(1)
        else:
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=initializer, initargs=initargs
            ) as pool:
                futures = {pool.submit(_call, fn, i, args): i for i in todo}
                for fut in as_completed(futures):
                    _record(report, futures[fut], fut.result())
                    bar.update(1)
    finally:
        bar.close()
    return report


def _record(report: StageReport, image_id: str, err: str | None) -> None:
    if err is None:
        report.done.append(image_id)
    else:
        report.failed[image_id] = err
