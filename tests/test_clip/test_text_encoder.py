"""Text tower fed with token embeddings equals open_clip's encode_text."""

from __future__ import annotations

import pytest
import torch
from open_clip.tokenizer import SimpleTokenizer

from fma.clip import TextEncoder


def test_equals_encode_text_for_plain_tokens(tiny_clip) -> None:
    ids = SimpleTokenizer()(["a photo of a cat.", "sky", "person with clothes,people,human."])
    enc = TextEncoder(tiny_clip)
    with torch.no_grad():
        got = enc(tiny_clip.token_embedding(ids), ids)
        want = tiny_clip.encode_text(ids)
    assert got.shape == (3, 32)
    assert torch.allclose(got, want, atol=1e-6)


def test_shape_errors(tiny_clip) -> None:
    enc = TextEncoder(tiny_clip)
    with pytest.raises(ValueError, match=r"\(G, S, D\)"):
        enc(torch.zeros(2, 77, 32), torch.zeros(3, 77, dtype=torch.long))
