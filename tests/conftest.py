"""Shared fixtures, the compatibility repairs, the ``e2e`` marks of some files, time limits.

Marks (``pyproject.toml``): ``e2e`` tests drive a tool, the pipeline or a training run end to
end; ``slow`` tests take more than a few seconds of CPU. ``./run test-fast`` leaves both out;
``./run test`` (CI) runs everything. Files mark their own tests, or :data:`MARKS` does.

Time limits (pytest-timeout): each test keeps its own limit (its ``timeout`` mark, else the
``timeout`` of ``pyproject.toml``); an ``e2e`` or ``slow`` test gets at least
``tool_modules.LONG_TEST_TIMEOUT_S`` unless ``--timeout`` or ``PYTEST_TIMEOUT`` is given;
every limit is multiplied by ``FMA_TEST_TIMEOUT_SCALE`` (default 1; e.g. 3 on a machine shared
with other jobs). Subprocess limits in tests use ``tool_modules.scaled_timeout``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mmengine.logging import MMLogger
from tool_modules import LONG_TEST_TIMEOUT_S, drop_mmengine_loggers, timeout_scale

import fma

REPO = Path(__file__).resolve().parents[1]

# The compatibility repairs every tool applies first (torchvision's nms without its compiled
# ops, the mmcv._ext stand-in): test modules import open_clip, segment_anything and mmseg.
fma.setup()

#: Marks given here, by node id (a file, or a file and a test with all its parameters):
#: end-to-end tests and long unit tests of files that do not mark them themselves.
MARKS: dict[str, tuple[str, ...]] = {
    "e2e": (
        "tests/test_demo/test_chain.py",
        "tests/test_faults/test_large_inputs.py::test_a_huge_mask_file_refines_under_a_memory_cap",
        "tests/test_faults/test_large_inputs.py::"
        "test_level_panel_of_a_huge_mask_file_runs_under_a_memory_cap",
        "tests/test_faults/test_output_files.py::test_two_runs_with_other_settings_never_mix_files",
        "tests/test_faults/test_tool_errors.py",
        "tests/test_models/test_stage1_dist.py",
        "tests/test_models/test_stage1_resume.py",
        "tests/test_models/test_stage1_runner.py::test_train_then_cams",
        "tests/test_models/test_stage1_total_batch.py::test_one_process_accumulates_to_the_total",
        "tests/test_pipeline/test_custom_pipeline.py",
        "tests/test_sam/test_dist.py",
        "tests/test_sam/test_run.py::test_resume_after_kill",
        "tests/test_sam/test_run.py::test_superpixel_source_through_the_tool",
        "tests/test_sam/test_sam_stop_signal.py",
        "tests/test_tools/test_checkpoint_refusals.py::"
        "test_checkpoint_holding_code_is_refused_in_one_line",
        "tests/test_tools/test_stage1_tools.py",
    ),
    "slow": (
        "tests/test_cam/test_caa.py::test_box_mask_equals_opencv_contours",
        "tests/test_demo/test_tiny_clip.py::test_short_pretraining_lowers_the_loss",
        "tests/test_models/test_prompt_clip.py::test_sub_batches_match_the_original_accumulation",
        "tests/test_seeding/test_runs_realdata.py::"
        "test_runs_equal_dense_on_oracle_masks_of_330_images",
    ),
}


def _timeout_of(item: pytest.Item, default: float) -> tuple[float, dict]:
    """The limit pytest-timeout would use for ``item`` and the other kwargs of its mark."""
    mark = item.get_closest_marker("timeout")
    if mark is None:
        return default, {}
    kwargs = dict(mark.kwargs)
    value = mark.args[0] if mark.args else kwargs.get("timeout", default)
    kwargs.pop("timeout", None)
    return float(value or 0), kwargs


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the marks of :data:`MARKS` and set every test's scaled time limit."""
    scale = timeout_scale()
    # pytest-timeout's resolved setting (command line, PYTEST_TIMEOUT or the ini's `timeout`).
    default = float(getattr(config, "_env_timeout", None) or config.getini("timeout") or 0)
    # A limit given on the command line or in PYTEST_TIMEOUT applies as given (only scaled).
    chosen = config.getoption("timeout", None) is not None or bool(os.environ.get("PYTEST_TIMEOUT"))
    floor = 0.0 if chosen else LONG_TEST_TIMEOUT_S
    for item in items:
        for name, ids in MARKS.items():
            if any(item.nodeid == i or item.nodeid.startswith((i + "::", i + "[")) for i in ids):
                item.add_marker(getattr(pytest.mark, name))
        limit, kwargs = _timeout_of(item, default)
        if limit <= 0:
            continue  # no limit (e.g. --timeout 0): leave it so
        if item.get_closest_marker("e2e") or item.get_closest_marker("slow"):
            limit = max(limit, floor)
        item.add_marker(pytest.mark.timeout(limit * scale, **kwargs), append=False)


def _voc_mini_root() -> Path:
    env = os.environ.get("FMA_VOC_MINI")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "data" / "voc2012-mini"


@pytest.fixture(scope="session")
def voc_mini() -> Path:
    """Root of the mini VOC set (holds VOC2012/ and pseudo_labels/); skips when absent."""
    root = _voc_mini_root()
    if not (root / "VOC2012" / "SegmentationClass").is_dir():
        pytest.skip(
            f"real mini VOC data not found at {root}; set FMA_VOC_MINI to the folder holding "
            "VOC2012/ and pseudo_labels/"
        )
    return root


#: torch.distributed's variables that tools set for themselves (``tools/train.py`` and friends,
#: run in-process by tests, set ``LOCAL_RANK`` as torchrun would) and the session did not have.
_DIST_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK")
_SESSION_ENV = {k: os.environ[k] for k in _DIST_VARS if k in os.environ}


@pytest.fixture(autouse=True)
def _restore_environ():
    """Undo what a test left in ``os.environ``, and start each test without the distributed
    variables an earlier test (or a module fixture) set: a later test's subprocesses (a
    pipeline's step, a tool) must not inherit a ``LOCAL_RANK`` the session never had."""
    for key in _DIST_VARS:
        if key in _SESSION_ENV:
            os.environ[key] = _SESSION_ENV[key]
        else:
            os.environ.pop(key, None)
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


#: mmengine's default logger, made now, under pytest's session-long output capture: the one
#: ``print_log`` falls back to between tests. Made inside a test it could meet that test's mocks
#: (tests that fake CUDA make ``MMLogger()`` ask for a device that is not there).
MMLogger.get_instance("mmengine")
_SESSION_LOGGERS = frozenset(MMLogger._instance_dict)


@pytest.fixture(autouse=True)
def _no_mmengine_logger_outlives_its_test():
    """Drop the loggers and visualizers a test's in-process tool runs left behind: they write to
    the test's output capture, closed when the test ends (:func:`drop_mmengine_loggers`)."""
    yield
    drop_mmengine_loggers(keep=_SESSION_LOGGERS)
