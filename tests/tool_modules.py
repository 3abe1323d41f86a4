"""Load a command-line tool of ``tools/`` as a module, so tests call its ``main(argv)``.

Import as ``from tool_modules import load_tool`` (``tests/`` is on ``sys.path`` through the
rootdir conftest).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str) -> ModuleType:
    """A fresh module object of ``tools/<name>.py`` (not registered in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A free TCP port on the loopback interface (for torchrun's rendezvous)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_tool(name: str, args: list, cwd: Path, timeout: int = 600) -> str:
    """Run ``tools/<name>.py`` on two CPU ranks (torchrun, ``--launcher pytorch``).

    CUDA is hidden so that a GPU machine runs the same CPU path. Returns stdout + stderr; fails
    the calling test with the end of the output when the command fails.
    """
    import os
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
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr
