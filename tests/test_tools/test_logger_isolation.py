"""In-process tool runs of successive tests must not share mmengine loggers: a logger of the
same name (config + second) built during an earlier test writes to that test's closed output
capture. ``tests/conftest.py`` drops them after every test (``drop_mmengine_loggers``)."""

from __future__ import annotations

import io
import sys

from mmengine.logging import MMLogger
from mmengine.visualization import Visualizer
from tool_modules import drop_mmengine_loggers

NAME = "fma-cls_prompt-clip-vit-b16_1xb16-1800it_voc12_20260101_000000"


def _logger_on(stream: io.StringIO, monkeypatch) -> MMLogger:
    """``MMLogger.get_instance`` as a Runner calls it, while ``sys.stdout`` is ``stream``."""
    monkeypatch.setattr(sys, "stdout", stream)
    return MMLogger.get_instance(NAME, logger_name="mmengine", log_level="INFO")


def test_a_logger_of_a_closed_capture_is_handed_back_unless_dropped(monkeypatch, capsys) -> None:
    before = set(MMLogger._instance_dict)
    earlier = io.StringIO()
    _logger_on(earlier, monkeypatch).info("earlier run")
    assert "earlier run" in earlier.getvalue()
    earlier.close()  # what pytest does to a test's capture when the test ends

    # Without the drop: the same name gives the same logger, still bound to the closed stream.
    stale = _logger_on(io.StringIO(), monkeypatch)
    stale.info("later run")
    assert "I/O operation on closed file" in capsys.readouterr().err

    dropped = drop_mmengine_loggers(keep=before)
    assert dropped == 1 and set(MMLogger._instance_dict) == before
    assert not stale.handlers  # closed and removed

    later = io.StringIO()
    _logger_on(later, monkeypatch).info("later run")
    assert "later run" in later.getvalue()
    assert "Logging error" not in capsys.readouterr().err


def test_visualizers_are_dropped_too_and_kept_names_stay(tmp_path) -> None:
    before = {*Visualizer._instance_dict, *MMLogger._instance_dict}
    Visualizer.get_instance(NAME, save_dir=str(tmp_path))
    assert NAME in Visualizer._instance_dict
    assert drop_mmengine_loggers(keep={NAME, *before}) == 0
    assert drop_mmengine_loggers(keep=before) == 1
    assert NAME not in Visualizer._instance_dict and "mmengine" in MMLogger._instance_dict


def test_the_session_logger_is_kept_between_tests() -> None:
    """mmengine's default logger, made by conftest before any test, is still there: a test that
    fakes CUDA must not be the one to build it."""
    assert "mmengine" in MMLogger._instance_dict
