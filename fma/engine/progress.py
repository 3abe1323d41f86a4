"""A progress bar with ETA for mmengine's test loop (stage I CAM inference).

mmengine's ``LoggerHook`` logs every ``interval`` iterations (50 in the stage I configs), which
leaves a long CAM inference silent for minutes. :class:`ProgressBarHook` draws a tqdm bar over
the test dataloader on stderr (iterations done, rate, elapsed time and ETA), on rank 0 only.
The stage I runtime config enables it (``custom_hooks`` in ``configs/_base_/default_runtime.py``).
"""

from __future__ import annotations

import sys
from typing import Any

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from fma.registry import HOOKS

__all__ = ["ProgressBarHook"]


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """tqdm bar over the test loop's batches, with ETA.

    Args:
        desc: label of the bar.
        disable: True hides the bar (e.g. in batch jobs); the default shows it on rank 0.
    """

    priority = "VERY_LOW"

    def __init__(self, desc: str = "CAM inference", disable: bool = False) -> None:
        self.desc = desc
        self.disable = bool(disable)
        self._bar: Any = None

    def before_test(self, runner: Any) -> None:
        from tqdm import tqdm

        try:
            total = len(runner.test_dataloader)
        except TypeError:  # an iterable dataloader without a length
            total = None
        self._bar = tqdm(
            total=total,
            desc=self.desc,
            unit="batch",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=self.disable or get_rank() != 0,
        )

    def after_test_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def after_test(self, runner: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
