"""The one updating line a quiet run shows for its step (fma.pipeline.step_process.StatusLine)."""

from __future__ import annotations

import io
import sys

from fma.pipeline.step_process import StatusLine, execute_step


def _frames(text: str) -> list[str]:
    """What the line showed, frame by frame (each redraw starts with a carriage return)."""
    return [f.rstrip() for f in text.split("\r") if f.strip()]


def test_the_line_shows_the_last_output_line_and_a_progress_bars_state():
    out = io.StringIO()
    line = StatusLine(out, width=40, every_s=0.0)
    line.feed("loading\nepoch 1\n")
    line.feed("it 10/100\rit 20/10")  # a progress bar redraws with \r; its last state counts
    line.feed("0")
    frames = _frames(out.getvalue())
    assert frames[0].endswith("] epoch 1")
    assert frames[-1].endswith("] it 20/100") and frames[-1].startswith("  [0m00s]")
    line.feed("x" * 100 + "\n")  # cut to the width, never wrapped
    assert max(len(f) for f in _frames(out.getvalue())) <= 39
    line.close()
    assert out.getvalue().endswith("\r" + " " * 39 + "\r")


def test_a_quiet_step_updates_one_line_and_clears_it(tmp_path):
    code = (
        "import time\nfor i in range(3):\n"
        "    print(f'step {i}', flush=True)\n    time.sleep(0.05)\n"
    )
    status_out = io.StringIO()
    status, stopped = execute_step([sys.executable, "-c", code], tmp_path, tmp_path / "s.log",
                                   None, StatusLine(status_out, width=60, every_s=0.0))  # fmt: skip
    assert (status, stopped) == (0, None)
    text = status_out.getvalue()
    assert "\n" not in text and "] step 2" in text and text.endswith("\r")
    assert "step 0\nstep 1\nstep 2\n" in (tmp_path / "s.log").read_text()
