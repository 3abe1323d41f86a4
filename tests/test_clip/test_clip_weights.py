"""CLIP weights files: the three formats load to the same parameters; other files are refused."""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import open_clip
import pytest
import torch
from torch import nn

from fma.clip import load_clip
from fma.clip.weights import (
    OPENAI_EXTRA_KEYS,
    ClipWeightsError,
    check_weights_path,
    detect_format,
    read_state_dict,
)

TINY_JSON = Path(__file__).resolve().parents[1] / "data" / "tiny_clip.json"


class _Holder(nn.Module):
    """A scriptable module tree holding tensors under dotted names (no computation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _script_archive(state: dict[str, torch.Tensor], path) -> None:
    """Write a real TorchScript archive (``torch.jit.save``) whose state dict is ``state``."""
    root = _Holder()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        node = root
        for name in parents:
            if name not in node._modules:
                node.add_module(name, _Holder())
            node = node._modules[name]
        if value.is_floating_point():
            node.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
        else:
            node.register_buffer(leaf, value.clone())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(root), str(path))


@pytest.fixture(scope="module")
def source():
    """A tiny CLIP (float32) whose weights float16 holds exactly, and OpenAI's layout of it:
    the same keys, Linear / conv / attention / projection weights in float16 (what OpenAI's
    release stores), plus input_resolution, context_length and vocab_size."""
    open_clip.add_model_config(TINY_JSON)
    torch.manual_seed(3)
    model = open_clip.create_model("tiny_clip", pretrained=None, force_quick_gelu=True)
    half = copy.deepcopy(model)
    open_clip.convert_weights_to_fp16(half)
    openai = {k: v.detach().clone() for k, v in half.state_dict().items()}
    assert any(v.dtype == torch.float16 for v in openai.values())
    assert any(v.dtype == torch.float32 for v in openai.values())
    with torch.no_grad():  # the float32 source equals the float16 values where they were cast
        model.load_state_dict({k: v.float() for k, v in openai.items()})
    openai["input_resolution"] = torch.tensor(64)
    openai["context_length"] = torch.tensor(77)
    openai["vocab_size"] = torch.tensor(49408)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, openai


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_three_formats_load_to_the_same_parameters(source, tmp_path) -> None:
    from safetensors.torch import save_file

    state, openai = source
    files = {
        "state_dict": tmp_path / "tiny_state.pt",
        "safetensors": tmp_path / "tiny.safetensors",
        "torchscript": tmp_path / "tiny_openai.pt",
    }
    torch.save(state, files["state_dict"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(files["safetensors"]))
    _script_archive(openai, files["torchscript"])
    with zipfile.ZipFile(files["torchscript"]) as z:  # a genuine TorchScript archive
        names = z.namelist()
    assert any(n.endswith("/constants.pkl") for n in names)
    assert any("/code/" in n for n in names)

    loaded = {}
    for fmt, path in files.items():
        assert detect_format(path) == fmt
        model = load_clip("tiny_clip", pretrained=str(path))
        assert model.weights_info.format == fmt
        assert model.weights_info.path == str(path)
        assert model.weights_info.sha256 == _sha256(path)
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        loaded[fmt] = model.state_dict()
    for fmt, got in loaded.items():
        assert set(got) == set(state), fmt
        for key, want in state.items():
            assert got[key].dtype == torch.float32 or not want.is_floating_point(), (fmt, key)
            assert torch.equal(got[key], want), (fmt, key)


def test_openai_archive_keys_and_dtypes(source, tmp_path) -> None:
    state, openai = source
    path = tmp_path / "ViT-tiny.pt"
    _script_archive(openai, path)
    got, fmt = read_state_dict(path)
    assert fmt == "torchscript"
    assert set(got) == set(state) and not set(OPENAI_EXTRA_KEYS) & set(got)
    assert all(got[k].dtype == openai[k].dtype for k in got)  # as stored, cast on loading
    # torch.load(weights_only=True) refuses such an archive: this is why it is read by content
    with pytest.raises(RuntimeError, match="TorchScript"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(path, weights_only=True)


def test_wrapped_state_dict_with_module_prefix_and_any_suffix(source, tmp_path) -> None:
    from safetensors.torch import save_file

    state, _ = source
    path = tmp_path / "epoch_32.bin"
    torch.save({"epoch": 32, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    got = load_clip("tiny_clip", pretrained=path).state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())
    # the format is told by content: a safetensors file named .pt
    odd = tmp_path / "weights.pt"
    save_file({k: v.contiguous() for k, v in state.items()}, str(odd))
    assert detect_format(odd) == "safetensors"
    assert load_clip("tiny_clip", pretrained=odd).weights_info.format == "safetensors"


def test_weights_of_another_architecture_in_one_line(source, tmp_path) -> None:
    state, _ = source
    bad = dict(state)
    bad.pop("ln_final.bias")
    bad["visual.extra"] = torch.zeros(1)
    bad["text_projection"] = torch.zeros(5, 5)
    path = tmp_path / "other.pt"
    torch.save(bad, path)
    with pytest.raises(ClipWeightsError) as err:
        load_clip("tiny_clip", pretrained=path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ")
    assert "1 missing (e.g. ln_final.bias)" in msg and "1 unexpected (e.g. visual.extra)" in msg
    assert "text_projection: (5, 5) in the file, (32, 32) in the model" in msg


@pytest.mark.parametrize(
    "content",
    [b"just some text, not weights\n", b"PK\x03\x04 a broken zip", "zip", "tensor"],
    ids=["text", "broken-zip", "other-zip", "bare-tensor"],
)
def test_non_weights_file_is_refused_in_one_line(tmp_path, content) -> None:
    path = tmp_path / "weights.pt"
    if content == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("readme.txt", "hello")
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
    else:
        path.write_bytes(content)
    with pytest.raises(ClipWeightsError) as err:
        load_clip("tiny_clip", pretrained=path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ")
    assert "state dict" in msg and ".safetensors" in msg and "TorchScript" in msg


class _Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickles_are_refused_and_run_nothing(source, tmp_path) -> None:
    state, _ = source
    marker = tmp_path / "pwned"
    saved = tmp_path / "evil_torch.pt"  # torch.save zip with a pickled callable beside tensors
    torch.save({**state, "payload": _Evil(marker)}, saved)
    raw = tmp_path / "evil_raw.pt"  # a bare pickle
    raw.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    wrapped = tmp_path / "evil_wrapped.pt"  # the state_dict wrapper hides nothing either
    torch.save({"state_dict": state, "hook": _Evil(marker)}, wrapped)
    for path in (saved, raw, wrapped):
        with pytest.raises(ClipWeightsError) as err:
            load_clip("tiny_clip", pretrained=path)
        assert "\n" not in str(err.value) and str(err.value).startswith(f"{path}: ")
    assert not marker.exists()
    with pytest.raises(ClipWeightsError, match="pickled Python objects"):
        read_state_dict(saved)


def test_missing_file_names_the_fix(tmp_path) -> None:
    path = tmp_path / "pretrains" / "ViT-B-16.pt"
    for call in (lambda: load_clip("tiny_clip", pretrained=path), lambda: check_weights_path(path)):
        with pytest.raises(FileNotFoundError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith(f"{path}: CLIP weights file not found")
        assert "python tools/download.py clip" in msg and "\n" not in msg
    check_weights_path("openai")  # a tag: nothing to check here
    check_weights_path(None)


def test_tag_and_random_weights_info(tmp_path) -> None:
    model = load_clip("tiny_clip", pretrained=None, model_config=TINY_JSON)
    assert model.weights_info.format == "random" and model.weights_info.sha256 is None
    assert model.weights_info.to_dict() == {"path": None, "format": "random", "sha256": None}


def test_loading_a_file_does_not_log_random_init(source, tmp_path, caplog) -> None:
    state, _ = source
    path = tmp_path / "tiny.pt"
    torch.save(state, path)
    with caplog.at_level("INFO"):
        load_clip("tiny_clip", pretrained=path)
    assert not [r for r in caplog.records if "initialized randomly" in r.getMessage()]
    with caplog.at_level("INFO"):
        load_clip("tiny_clip", pretrained=None)  # random weights: open_clip says so
    assert [r for r in caplog.records if "initialized randomly" in r.getMessage()]
