"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
