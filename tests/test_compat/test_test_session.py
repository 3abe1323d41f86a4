"""The test session (tests/conftest.py): the marks it adds and each test's time limit."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
from tool_modules import LONG_TEST_TIMEOUT_S, TIMEOUT_SCALE_ENV, scaled_timeout, timeout_scale

TESTS = Path(__file__).resolve().parents[1]


def _marks() -> dict[str, tuple[str, ...]]:
    """``MARKS`` of tests/conftest.py, read from the file (pytest owns the module name)."""
    spec = importlib.util.spec_from_file_location("_fma_tests_conftest", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MARKS


def test_every_marked_id_names_an_existing_test():
    for name, ids in _marks().items():
        assert name in ("e2e", "slow")
        for node in ids:
            path, _, test = node.partition("::")
            assert path.startswith("tests/") and (TESTS.parent / path).is_file(), node
            if test:
                tree = ast.parse((TESTS.parent / path).read_text(encoding="utf-8"))
                names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
                assert test in names, node


@pytest.mark.parametrize(
    ("marked", "rel"),
    [
        ("e2e", "test_demo/test_chain.py::test_demo_chain_end_to_end"),
        ("e2e", "test_sam/test_dist.py::test_torchrun_two_processes"),
    ],
)
def test_marked_ids_cover_their_tests(marked, rel):
    node = f"tests/{rel}"
    assert any(node == i or node.startswith((i + "::", i + "[")) for i in _marks()[marked])


def _limit(request: pytest.FixtureRequest) -> float:
    return float(request.node.get_closest_marker("timeout").args[0])


def _from_command_line(request: pytest.FixtureRequest) -> bool:
    return request.config.getoption("timeout", None) is not None


@pytest.mark.parametrize(("raw", "want"), [("", 1.0), ("2", 2.0), (" 0.5 ", 0.5)])
def test_timeout_scale_reads_the_environment(monkeypatch, raw, want):
    monkeypatch.setenv(TIMEOUT_SCALE_ENV, raw)
    assert timeout_scale() == want
    assert scaled_timeout(300) == 300 * want


def test_timeout_scale_defaults_to_one(monkeypatch):
    monkeypatch.delenv(TIMEOUT_SCALE_ENV, raising=False)
    assert timeout_scale() == 1.0 and scaled_timeout(120) == 120


@pytest.mark.parametrize("raw", ["0", "-1", "x", "inf", "nan"])
def test_timeout_scale_rejects_bad_values(monkeypatch, raw):
    monkeypatch.setenv(TIMEOUT_SCALE_ENV, raw)
    with pytest.raises(ValueError, match=TIMEOUT_SCALE_ENV):
        timeout_scale()


@pytest.mark.timeout(7)
def test_own_limit_is_kept_and_scaled(request):
    assert _limit(request) == 7 * timeout_scale()


def test_default_limit_is_the_configured_one(request):
    if _from_command_line(request):
        pytest.skip("--timeout given on the command line")
    assert _limit(request) == float(request.config.getini("timeout")) * timeout_scale()


@pytest.mark.slow
@pytest.mark.timeout(5)
def test_long_tests_get_the_floor(request):
    if _from_command_line(request):
        pytest.skip("--timeout given on the command line")
    assert _limit(request) == LONG_TEST_TIMEOUT_S * timeout_scale()
