"""SAM builder: checkpoint table, verified download (local URLs only), resolution, tiny model."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re

import numpy as np
import pytest
import torch

from fma.sam import builder
from fma.sam.builder import (
    SAM_CHECKPOINTS,
    build_sam,
    build_tiny_sam,
    download_checkpoint,
    resolve_checkpoint,
    verify_checkpoint,
)

PAYLOAD = b"not really a checkpoint\n" * 1000


def test_checkpoint_table_is_official():
    assert set(SAM_CHECKPOINTS) == {"vit_h", "vit_l", "vit_b"}
    for key, info in SAM_CHECKPOINTS.items():
        assert info.model_type == key
        assert info.url == f"https://dl.fbaipublicfiles.com/segment_anything/{info.filename}"
        assert re.fullmatch(r"sam_vit_[hlb]_[0-9a-f]{6}\.pth", info.filename)
        assert info.sha256 is not None and re.fullmatch(r"[0-9a-f]{64}", info.sha256)
    assert SAM_CHECKPOINTS["vit_h"].filename == "sam_vit_h_4b8939.pth"


def test_download_from_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    dest = tmp_path / "ckpt"
    got = download_checkpoint("vit_b", dest, url=src.as_uri(), sha256=digest, progress=False)
    assert got == dest / "sam_vit_b_01ec64.pth"
    assert got.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.iterdir()) == ["sam_vit_b_01ec64.pth"]


def test_download_rejects_wrong_hash_and_leaves_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "ckpt"
    with pytest.raises(ValueError, match="does not match"):
        download_checkpoint("vit_b", dest, url=src.as_uri(), sha256="0" * 64, progress=False)
    assert list(dest.iterdir()) == []


def test_download_with_opener_and_reuse(tmp_path):
    calls = []

    @contextlib.contextmanager
    def opener(url):
        calls.append(url)
        yield io.BytesIO(PAYLOAD)

    digest = hashlib.sha256(PAYLOAD).hexdigest()
    got = download_checkpoint("vit_l", tmp_path, sha256=digest, opener=opener, progress=False)
    assert calls == [SAM_CHECKPOINTS["vit_l"].url]
    assert got.read_bytes() == PAYLOAD
    # An existing, verified file is reused without opening the URL again.
    assert download_checkpoint("vit_l", tmp_path, sha256=digest, opener=opener) == got
    assert len(calls) == 1
    with pytest.raises(ValueError, match="sha256"):
        verify_checkpoint(got, "f" * 64)
    assert verify_checkpoint(got, None) == digest


def test_resolve_missing_checkpoint_says_where(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        resolve_checkpoint("vit_h", tmp_path / "x" / "sam.pth")
    msg = str(err.value)
    assert str(tmp_path / "x" / "sam.pth") in msg
    assert SAM_CHECKPOINTS["vit_h"].url in msg and "download=True" in msg
    with pytest.raises(KeyError, match="vit_h, vit_l, vit_b"):
        resolve_checkpoint("vit_x")


def test_build_sam_through_the_registry(tmp_path, monkeypatch):
    import segment_anything

    # Stand-in registry entry: a tiny SAM loading the given file as segment-anything does.
    def fake_vit_b(checkpoint=None):
        sam = build_tiny_sam(seed=1)
        sam.load_state_dict(torch.load(checkpoint))
        return sam

    ref = build_tiny_sam(seed=7)
    path = tmp_path / "tiny.pth"
    torch.save(ref.state_dict(), path)
    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_b", fake_vit_b)
    sam = build_sam("vit_b", path)
    got, want = sam.state_dict(), ref.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert not sam.training
    with pytest.raises(FileNotFoundError):
        build_sam("vit_b", tmp_path / "missing.pth")
    with pytest.raises(KeyError, match="tiny"):
        build_sam("vit_s")
    with pytest.raises(ValueError, match="random weights"):
        build_sam("tiny", path)


def test_tiny_sam_is_deterministic_and_local():
    a, b, c = build_tiny_sam(seed=0), build_tiny_sam(seed=0), build_tiny_sam(seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    from segment_anything import SamPredictor

    image = np.full((96, 128, 3), 128, np.uint8)
    pred = SamPredictor(a)
    pred.set_image(image)
    for point in ([20, 20], [100, 60]):
        masks, scores, _ = pred.predict(np.array([point]), np.array([1]), multimask_output=True)
        x, y = point
        assert masks[:, y, x].all()  # every level contains its point
        areas = masks.reshape(3, -1).sum(1)
        assert areas[0] < areas[1] < areas[2] < 96 * 128  # sub-part < part < whole
        assert (masks[0] <= masks[2]).all()  # nested
        assert np.all((scores > 0.6) & (scores < 1.1))


def test_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    builder.build_tiny_sam(seed=5)
    assert torch.equal(torch.rand(3), expected)
