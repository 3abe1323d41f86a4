"""Reading CLIP weights files: open_clip state dicts, ``.safetensors`` and OpenAI's archives.

Three file formats hold the same tensors under the same names (open_clip's ``CLIP`` uses OpenAI's
parameter names):

* ``state_dict``: what ``torch.save(model.state_dict())`` writes (``.pt``/``.pth``/``.bin``),
  possibly wrapped as ``{"state_dict": ...}`` with ``module.`` prefixes (an open_clip training
  checkpoint). Read with ``torch.load(weights_only=True)``, which refuses pickled Python objects.
* ``safetensors``: a ``.safetensors`` file (read with ``safetensors.torch.load_file``).
* ``torchscript``: OpenAI's original release (``ViT-B-16.pt``), a TorchScript archive: a zip
  whose entries include ``<name>/constants.pkl`` and ``<name>/code/``. Read with
  ``torch.jit.load`` and ``.state_dict()``, never unpickled with ``torch.load``. Its state dict
  also holds ``input_resolution``, ``context_length`` and ``vocab_size`` (dropped here) and
  keeps most weights in float16 (the model's float32 parameters take them exactly).

The format is told by content, not by the file suffix.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = [
    "ACCEPTED",
    "OPENAI_EXTRA_KEYS",
    "ClipWeightsError",
    "ClipWeightsInfo",
    "check_weights_path",
    "detect_format",
    "is_weights_path",
    "read_state_dict",
]

#: Keys of OpenAI's TorchScript state dict that are no parameters of open_clip's CLIP.
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")

#: The accepted formats, as error messages name them.
ACCEPTED = (
    "an open_clip state dict (torch.save, .pt/.pth/.bin), a .safetensors file, or OpenAI's "
    "TorchScript archive (ViT-B-16.pt)"
)

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_FETCH = "run `python tools/download.py clip` and pass the path it prints"
_ZIP_MAGIC = b"PK\x03\x04"


class ClipWeightsError(ValueError):
    """A CLIP weights file that cannot be used; ``str()`` is one line naming the file."""


@dataclasses.dataclass(frozen=True)
class ClipWeightsInfo:
    """Where a loaded CLIP's weights came from (for manifests and logs).

    ``format`` is ``state_dict``, ``safetensors`` or ``torchscript`` for a file, ``tag`` for an
    open_clip pretrained tag (``path`` holds the tag, ``sha256`` is None) and ``random`` for
    random weights (``path`` and ``sha256`` None).
    """

    path: str | None
    format: str
    sha256: str | None

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready fields."""
        return dataclasses.asdict(self)


def is_weights_path(pretrained: str) -> bool:
    """True when ``pretrained`` names a file rather than an open_clip tag such as ``openai``."""
    return (
        os.sep in pretrained
        or "/" in pretrained
        or pretrained.lower().endswith(_WEIGHT_SUFFIXES)
        or Path(pretrained).exists()
    )


def _folder_error(path: str | os.PathLike) -> ClipWeightsError:
    """The error for a folder given as the weights file (names the weights files inside)."""
    inside = sorted(p for p in Path(path).iterdir() if p.name.lower().endswith(_WEIGHT_SUFFIXES))
    hint = f"e.g. {inside[0]}" if inside else _FETCH
    return ClipWeightsError(
        f"{os.fspath(path)}: is a folder, not a CLIP weights file; pass the weights file "
        f"itself ({hint})"
    )


def check_weights_path(pretrained: str | os.PathLike | None) -> None:
    """Raise a one-line error when ``pretrained`` names a missing file or a folder.

    Tags (``"openai"``) and None (random weights) pass; so does an existing file (its content
    is checked when it is read).

    Raises:
        FileNotFoundError: no such file (the message says how to fetch the weights).
        ClipWeightsError: a folder (the message names a weights file inside it, if any).
    """
    if pretrained is None:
        return
    name = os.fspath(pretrained)
    if Path(name).is_dir():
        raise _folder_error(name)
    if is_weights_path(name) and not Path(name).is_file():
        raise FileNotFoundError(f"{name}: CLIP weights file not found; {_FETCH}")


def detect_format(path: str | os.PathLike) -> str | None:
    """``"torchscript"``, ``"state_dict"``, ``"safetensors"`` or None, from the file's bytes."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(9)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            return None
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "state_dict"
        return None
    if len(head) == 9 and head[8:9] == b"{":  # u64 little-endian header size, JSON header
        header = int.from_bytes(head[:8], "little")
        if 8 + header <= path.stat().st_size:
            return "safetensors"
    if head.startswith(b"\x80\x02\x8a\x0a"):  # torch.save's legacy (non-zip) format
        return "state_dict"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_torchscript(path: Path) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated")
        module = torch.jit.load(str(path), map_location="cpu")
    return dict(module.state_dict())


def _load_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ClipWeightsError(
            f"{path}: refused: the file holds pickled Python objects besides tensors, which "
            f"are not loaded (torch.load weights_only=True: {_first_line(exc)}); use {ACCEPTED}"
        ) from None


def _unwrap(obj: object, path: Path, fmt: str) -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` dict inside ``obj`` (``state_dict`` wrapper and ``module.``
    prefixes removed, OpenAI's extra keys dropped)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ClipWeightsError(
            f"{path}: the {fmt} file holds a {type(obj).__name__}, not a state dict of CLIP "
            f"weights; use {ACCEPTED}"
        )
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ClipWeightsError(
            f"{path}: entry {bad[0]!r} of the {fmt} file is not a named tensor, so this is no "
            f"state dict of CLIP weights; use {ACCEPTED}"
        )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    for key in OPENAI_EXTRA_KEYS:
        state.pop(key, None)
    return state


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Read a CLIP weights file in any accepted format (see the module docstring).

    Args:
        path: the file.

    Returns:
        ``(state_dict, format)``: open_clip ``CLIP`` keys to CPU tensors (dtypes as stored,
        e.g. float16 in OpenAI's archive) and ``"state_dict"``, ``"safetensors"`` or
        ``"torchscript"``.

    Raises:
        FileNotFoundError: no such file (the message says how to fetch the weights).
        ClipWeightsError: a folder, not a weights file in an accepted format, a pickle with Python
            objects, or a damaged file; one line naming the file and the accepted formats.
    """
    path = Path(path)
    if path.is_dir():
        raise _folder_error(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CLIP weights file not found; {_FETCH}")
    fmt = detect_format(path)
    if fmt is None:
        raise ClipWeightsError(f"{path}: not a CLIP weights file; use {ACCEPTED}")
    try:
        if fmt == "torchscript":
            obj: object = _load_torchscript(path)
        elif fmt == "safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = _load_torch(path)
    except ClipWeightsError:
        raise
    except Exception as exc:  # damaged or truncated files fail in many library-specific ways
        raise ClipWeightsError(
            f"{path}: cannot read this {fmt} file ({type(exc).__name__}: {_first_line(exc)}); "
            f"it may be damaged or incomplete: {_FETCH}"
        ) from None
    return _unwrap(obj, path, fmt), fmt
