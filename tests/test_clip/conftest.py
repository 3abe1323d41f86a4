"""A tiny random-weight open_clip model (tests/data/tiny_clip.json) for the CLIP tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TINY_JSON = Path(__file__).resolve().parents[1] / "data" / "tiny_clip.json"


@pytest.fixture(scope="session")
def tiny_clip():
    """Frozen tiny CLIP (vision 64 px, 2 layers, width 64; text width 32), fixed random weights."""
    import open_clip

    from fma.clip import load_clip

    open_clip.add_model_config(TINY_JSON)
    torch.manual_seed(0)
    return load_clip("tiny_clip", pretrained=None)
