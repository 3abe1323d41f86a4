"""The seeding tools ask for one BLAS thread before numpy loads, and keep a value the user set."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = (
    "import fma._no_blas_threads, os, sys; "
    "print(os.environ['OPENBLAS_NUM_THREADS'], 'numpy' in sys.modules)"
)


@pytest.mark.parametrize("tool", ["make_seeds.py", "refine_labels.py"])
def test_tools_import_it_first(tool):
    first = ast.parse((REPO / "tools" / tool).read_text()).body[1]  # after the docstring
    assert isinstance(first, ast.Import) and first.names[0].name == "fma._no_blas_threads"


@pytest.mark.parametrize(("given", "want"), [(None, "1"), ("3", "3")])
def test_default_one_thread_and_a_user_value_kept(given, want):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=60, check=True).stdout.split()  # fmt: skip
    assert out == [want, "False"]  # set before anything imported numpy
