"""Worker processes and stop signals of the per-image stage runner (:mod:`fma.stage`).

Guarantees, whatever happens to the run:

* one image per worker at a time, so a worker that dies (a segfault in native code, the kernel's
  out-of-memory killer) is reported with the image it was working on, and a fresh worker takes
  over the remaining images;
* workers die with their parent: on Linux the kernel sends them SIGKILL when the parent dies
  (``PR_SET_PDEATHSIG``), and a watchdog thread in every worker exits when the parent pid
  changes (any POSIX system), so a ``kill -9`` of the main process leaves no worker behind
  (:func:`die_with_parent` asks for the signal; the pipeline runner gives it to its steps too);
* SIGINT and SIGTERM of the main process raise :class:`StopRun` in its main thread; the
  pool then stops its workers (SIGTERM, then SIGKILL after :data:`STOP_GRACE_S` seconds) and
  returns what was finished. Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole
  process group; only the main process decides).
* Long work on one image in the main process (``workers=0``) calls :func:`check_stop` between
  its steps (SAM point batches, crops, mask chunks): Python raises :class:`StopRun` only
  between two bytecodes, after the native call in progress returns, and an exception raised
  inside a finaliser or code that catches everything is lost; the check raises it again from a
  place where it unwinds the run.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

__all__ = [
    "STOP_GRACE_S",
    "StopRun",
    "check_stop",
    "describe_exit",
    "die_with_parent",
    "run_in_workers",
    "stop_signals",
]

#: Seconds a stopping worker gets to remove its temporary file before it is killed.
STOP_GRACE_S = 1.0
_WATCHDOG_S = 0.5
_PENDING: list[int] = []  # signals caught by stop_signals in this process, in arrival order


class StopRun(KeyboardInterrupt):
    """SIGINT or SIGTERM asked the run to stop (a KeyboardInterrupt, so cleanup code runs)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`StopRun` in the main thread for the ``with`` body.

    The first signal restores the previous handlers, so a second one acts as it did before
    (e.g. a second Ctrl-C interrupts the cleanup). Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    depth = len(_PENDING)

    def handler(signum: int, frame: Any) -> None:
        for s, h in old.items():
            signal.signal(s, h)
        _PENDING.append(signum)  # for check_stop, should this exception get lost
        raise StopRun(signum)

    for s in old:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        del _PENDING[depth:]


def check_stop() -> None:
    """Raise :class:`StopRun` when SIGINT/SIGTERM arrived inside :func:`stop_signals`.

    Cheap (a list test); long per-image work calls it between its steps, so a stop is honoured
    at the next step even when the exception the signal raised was swallowed on the way (see
    the module docstring). Outside a :func:`stop_signals` block it does nothing.
    """
    if _PENDING:
        raise StopRun(_PENDING[0])


def describe_exit(exitcode: int | None) -> str:
    """Words for a dead worker's exit code (negative: killed by that signal)."""
    if exitcode is None:
        return "worker process vanished"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        why = {
            "SIGSEGV": "a crash in native code, e.g. pycocotools on a huge or corrupt mask file",
            "SIGKILL": "killed, often by the kernel when memory ran out",
            "SIGBUS": "a crash in native code",
            "SIGABRT": "aborted in native code",
        }.get(name, "killed by a signal")
        return f"worker process died with {name} ({why})"
    return f"worker process exited with code {exitcode}"


@functools.lru_cache(maxsize=1)
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(parent_pid: int, signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A function that makes the process calling it get ``signum`` when its parent dies.

    It asks the kernel for the signal (Linux ``PR_SET_PDEATHSIG``; elsewhere nothing), then exits
    at once (code 1) when the parent ``parent_pid`` is already gone. Call it first thing in a
    child process, or pass it as ``subprocess.Popen(preexec_fn=...)``: libc is loaded here, in
    the parent, so the child only makes the system call. The kernel sends the signal when the
    *thread* that started the child ends, so start children from the main thread. The setting
    is not inherited by the child's own children, and ``exec`` keeps it.
    """
    prctl = _prctl()

    def arm() -> None:
        if prctl is not None:
            prctl(1, int(signum), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return arm


# ---------------------------------------------------------------------------------------------
# the worker side
# ---------------------------------------------------------------------------------------------
def _die_with_parent(parent_pid: int) -> None:
    die_with_parent(parent_pid, signal.SIGKILL)()

    def watchdog() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(_WATCHDOG_S)
        os._exit(1)

    threading.Thread(target=watchdog, name="parent-watchdog", daemon=True).start()


def _worker_main(
    conn: Connection,
    parent_pid: int,
    call: Callable[..., Any],
    fn: Any,
    args: tuple,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
) -> None:
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds, so atomic writes remove their temp file

    signal.signal(signal.SIGTERM, on_term)
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            image_id = conn.recv()
        except (EOFError, OSError):
            return
        if image_id is None:
            return
        conn.send((image_id, call(fn, image_id, args)))


# ---------------------------------------------------------------------------------------------
# the parent side
# ---------------------------------------------------------------------------------------------
class _Worker:
    def __init__(
        self,
        ctx: Any,
        call: Callable[..., Any],
        fn: Any,
        args: tuple,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple = (),
    ) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_worker_main,
            args=(child, os.getpid(), call, fn, args, initializer, initargs),
            daemon=True,
        )
        self.proc.start()
        child.close()
        self.image_id: str | None = None

    def give(self, image_id: str) -> None:
        self.image_id = image_id
        self.conn.send(image_id)


def _stop(workers: Sequence[_Worker]) -> None:
    """SIGTERM every live worker, SIGKILL those still alive after the grace period."""
    for w in workers:
        if w.proc.is_alive():
            with contextlib.suppress(OSError):
                w.proc.terminate()
    deadline = STOP_GRACE_S
    for w in workers:
        w.proc.join(deadline)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join(5.0)
        deadline = 0.05
    for w in workers:
        w.conn.close()
        with contextlib.suppress(ValueError):
            w.proc.close()


def run_in_workers(
    todo: Sequence[str],
    call: Callable[..., Any],
    fn: Any,
    args: tuple,
    workers: int,
    record: Callable[[str, Any], bool],
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
) -> None:
    """Run ``call(fn, image_id, args)`` for every id in ``workers`` spawned processes.

    Args:
        todo: ids to process.
        call: module-level function returning the per-image outcome (picklable).
        fn, args: passed to ``call`` (picklable).
        workers: number of processes.
        record: ``record(image_id, outcome)``; a dead worker's image gets the outcome
            ``(message, False)``. Returning False stops the run (no new images are handed out).
        initializer, initargs: ``initializer(*initargs)`` runs once in every worker process
            (a replaced worker runs it again) before its first image.

    Raises:
        StopRun: from :func:`stop_signals` (the workers are stopped first).
    """
    ctx = mp.get_context("spawn")
    queue = list(reversed(todo))
    pool: list[_Worker] = []
    go_on = True
    try:
        for _ in range(min(workers, len(queue))):
            w = _Worker(ctx, call, fn, args, initializer, initargs)
            pool.append(w)
            w.give(queue.pop())
        while any(w.image_id is not None for w in pool):
            busy = [w for w in pool if w.image_id is not None]
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for w in busy:
                if w.conn not in ready and w.proc.sentinel not in ready:
                    continue
                image_id = w.image_id
                assert image_id is not None
                try:
                    got_id, outcome = w.conn.recv()
                    assert got_id == image_id
                except (EOFError, OSError):  # died while working on image_id
                    w.proc.join(5.0)
                    outcome = (describe_exit(w.proc.exitcode), False)
                    w.image_id = None
                    _stop([w])
                    pool.remove(w)
                    w = None
                    if queue and go_on:
                        w = _Worker(ctx, call, fn, args, initializer, initargs)
                    if w is not None:
                        pool.append(w)
                go_on = record(image_id, outcome) and go_on
                if w is None:
                    continue
                w.image_id = None
                if queue and go_on:
                    w.give(queue.pop())
        for w in pool:
            with contextlib.suppress(OSError):
                w.conn.send(None)
    finally:
        _stop(pool)
