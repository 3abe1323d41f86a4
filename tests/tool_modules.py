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
