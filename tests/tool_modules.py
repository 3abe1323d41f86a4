"""Load a command-line tool of ``tools/`` as a module, so tests call its ``main(argv)``.

Import as ``from tool_modules import load_tool`` (``tests/`` is on ``sys.path`` through the
rootdir conftest).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Collection
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[1] / "tools"

#: Environment variable: a factor (default 1) on every test time limit, for a loaded machine.
TIMEOUT_SCALE_ENV = "FMA_TEST_TIMEOUT_SCALE"
#: The least pytest-timeout limit of an ``e2e`` or ``slow`` test (seconds, before the factor):
#: the longest tests take several minutes on 2 idle cores and about 3x that on busy ones.
LONG_TEST_TIMEOUT_S = 1800.0


def timeout_scale() -> float:
    """The factor of ``FMA_TEST_TIMEOUT_SCALE`` (1.0 when unset; a bad value fails loudly)."""
    raw = os.environ.get(TIMEOUT_SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = float("nan")
    if not scale > 0 or scale == float("inf"):
        raise ValueError(f"{TIMEOUT_SCALE_ENV}={raw!r}: expected a positive number, e.g. 2")
    return scale


def scaled_timeout(seconds: float) -> float:
    """A subprocess time limit of ``seconds`` on an idle machine, times :func:`timeout_scale`."""
    return seconds * timeout_scale()


def load_tool(name: str) -> ModuleType:
    """A fresh module object of ``tools/<name>.py`` (not registered in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def drop_mmengine_loggers(keep: Collection[str] = ()) -> int:
    """Forget the ``MMLogger`` and ``Visualizer`` instances mmengine holds, except those named in
    ``keep``, closing their handlers; returns how many were dropped.

    A tool run in-process (``load_tool(...).main``) builds a Runner whose logger writes to the
    ``sys.stdout`` of that moment, pytest's capture of the running test, closed when the test
    ends. mmengine names the logger and the visualizer after the config and the second the
    Runner started, and ``get_instance`` hands back an existing instance of that name: a tool
    started in the same second by the next test logged through the closed capture ("--- Logging
    error --- ... I/O operation on closed file") and kept the earlier run's visualizer.
    """
    from mmengine.logging import MMLogger
    from mmengine.visualization import Visualizer

    dropped = 0
    for manager in (MMLogger, Visualizer):
        for name in [n for n in manager._instance_dict if n not in keep]:
            instance = manager._instance_dict.pop(name)
            for handler in list(getattr(instance, "handlers", ())):
                instance.removeHandler(handler)
                handler.close()
            if isinstance(instance, Visualizer):
                instance.close()
            dropped += 1
    return dropped


def free_port() -> int:
    """A free TCP port on the loopback interface (for torchrun's rendezvous)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_tool(name: str, args: list, cwd: Path, timeout: float = 600) -> str:
    """Run ``tools/<name>.py`` on two CPU ranks (torchrun, ``--launcher pytorch``).

    CUDA is hidden so that a GPU machine runs the same CPU path. ``timeout`` is the limit on an
    idle machine, scaled by :func:`scaled_timeout`. Returns stdout + stderr; fails the calling
    test with the end of the output when the command fails.
    """
    import subprocess
    import sys

    repo = TOOLS.parent
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(repo),
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(TOOLS / f"{name}.py"), *map(str, args), "--launcher", "pytorch",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=scaled_timeout(timeout)
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr
