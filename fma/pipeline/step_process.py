"""A pipeline step as a child process: its command, streamed to its log, dying with the runner.

:func:`step_command` is a step's command: ``python TOOL ARGS``, or for a distributed step with
the ``pytorch`` :class:`Launcher` ``python -m torch.distributed.run ... TOOL ARGS --launcher
pytorch``. The step runs in a session (process group) of its own with a parent-death signal, so
it never outlives the runner, and SIGINT/SIGTERM of the runner reach its whole group
(:func:`execute_step`). Used by :mod:`fma.pipeline.runner`.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import datetime as _dt
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from fma.pipeline.config import Step
from fma.stage_workers import die_with_parent, stop_signals

__all__ = ["STEP_STOP_S", "Launcher", "StatusLine", "execute_step", "step_command"]


#: Seconds a step gets to stop after the runner passed it SIGINT/SIGTERM (torchrun passes the
#: signal on to its workers and waits for them) before what is left of it is killed.
STEP_STOP_S = 15.0


@dataclasses.dataclass
class Launcher:
    """torchrun options passed through to the distributed steps (``launcher='none'``: none)."""

    launcher: str = "none"
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    @property
    def world_size(self) -> int:
        """Processes of a distributed step: ``nproc_per_node x nnodes``, 1 without torchrun."""
        return self.nproc_per_node * self.nnodes if self.launcher == "pytorch" else 1

    def prefix(self) -> list[str]:
        """``-m torch.distributed.run ...`` (after the python executable)."""
        return [
            "-m", "torch.distributed.run", f"--nnodes={self.nnodes}",
            f"--node_rank={self.node_rank}", f"--master_addr={self.master_addr}",
            f"--master_port={self.master_port}", f"--nproc_per_node={self.nproc_per_node}",
        ]  # fmt: skip


def step_command(
    step: Step, launcher: Launcher | None = None, *, python: str | None = None
) -> list[str]:
    """The command of a step: plain, or through torchrun when it is distributed."""
    python = python or sys.executable
    launcher = launcher or Launcher()
    if step.distributed and launcher.launcher == "pytorch":
        return [python, *launcher.prefix(), *step.program, *step.args, "--launcher", "pytorch"]
    return [python, *step.program, *step.args]


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def _stop_step(proc: subprocess.Popen, signum: int, fd: int, copy: Callable[[bytes], None]) -> None:
    """Pass ``signum`` to the step's process group, copy its last output until it exits (at most
    :data:`STEP_STOP_S` seconds; a second Ctrl-C cuts the wait), then SIGKILL what is left."""
    _signal_group(proc, signum)
    deadline = time.monotonic() + STEP_STOP_S
    try:
        while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
            if not (chunk := os.read(fd, 65536)):
                break
            copy(chunk)
        proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        pass
    _signal_group(proc, signal.SIGKILL)  # the step after the grace, or what it left behind
    proc.wait()


class StatusLine:
    """One updating terminal line for a step whose output is not shown (``--quiet``): the time
    since the step started and the last line it printed (a progress bar's latest state), cut to
    the terminal's width; :meth:`close` clears it.

    Args:
        out: the terminal.
        width: columns (default: the terminal's).
        every_s: the least time between two redraws.
    """

    def __init__(self, out: TextIO, width: int | None = None, every_s: float = 0.2) -> None:
        self.out = out
        self.width = width or shutil.get_terminal_size((100, 24)).columns
        self.every_s = every_s
        self.t0 = time.monotonic()
        self.drawn_at = -every_s
        self.last = ""
        self.partial = ""
        self.shown = 0

    def feed(self, text: str) -> None:
        """Take more of the step's output and redraw (at most every ``every_s`` seconds)."""
        parts = re.split(r"[\r\n]", self.partial + text)
        self.partial = parts[-1]
        done = [p.strip() for p in parts[:-1] if p.strip()]
        if self.partial.strip():
            self.last = self.partial.strip()
        elif done:
            self.last = done[-1]
        if time.monotonic() - self.drawn_at >= self.every_s:
            self.draw()

    def draw(self) -> None:
        self.drawn_at = time.monotonic()
        seconds = int(self.drawn_at - self.t0)
        text = f"  [{seconds // 60}m{seconds % 60:02d}s] {self.last}"[: max(self.width - 1, 10)]
        self.out.write("\r" + text.ljust(self.shown))
        self.out.flush()
        self.shown = len(text)

    def close(self) -> None:
        if self.shown:
            self.out.write("\r" + " " * self.shown + "\r")
            self.out.flush()
            self.shown = 0


def execute_step(
    cmd: list[str],
    cwd: Path,
    log_path: Path,
    out: TextIO | None,
    status: StatusLine | None = None,
) -> tuple[int, int | None]:
    """Run ``cmd``, streaming its merged stdout/stderr to the log (and to ``out`` unless None;
    to ``status``, one updating line, when given).

    The step runs in a session (process group) of its own, and the kernel sends it SIGTERM when
    the runner dies, even by SIGKILL (torchrun passes it on to its workers). SIGINT or SIGTERM
    of the runner is passed to the step's group (:func:`_stop_step`).

    Returns:
        ``(exit code, None)``, or ``(128 + signal, signal)`` when SIGINT/SIGTERM stopped the run.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with open(log_path, "ab") as log, stop_signals():
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        log.write(f"\n===== {started} {shlex.join(cmd)}\n".encode())

        def copy(chunk: bytes) -> None:
            log.write(chunk)
            log.flush()  # `tail -f` of the step log follows a quiet run as it goes
            if out is not None or status is not None:
                text = decoder.decode(chunk)
                if out is not None:
                    out.write(text)
                    out.flush()
                if status is not None:
                    status.feed(text)

        arm = die_with_parent(os.getpid(), signal.SIGTERM)
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=arm)  # fmt: skip
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        try:
            while chunk := os.read(fd, 65536):
                copy(chunk)
            return proc.wait(), None
        except KeyboardInterrupt as exc:  # StopRun (SIGINT/SIGTERM) or a plain Ctrl-C
            signum = getattr(exc, "signum", signal.SIGINT)
            _stop_step(proc, signum, fd, copy)
            return 128 + signum, signum
        finally:
            proc.stdout.close()
            if status is not None:
                status.close()
