"""Checkpoints the tools load: read as data only, and checked against the model before loading.

mmengine's Runner loads ``load_from`` / ``--resume`` checkpoints with ``strict=False``: a key the
model lacks or a tensor of another shape is only logged ("size mismatch for
decode_head.conv_seg.weight") and the run goes on with randomly initialised weights. The tools
(``tools/train.py``, ``tools/test.py``) stop instead, each time with one line naming the file:

* :func:`check_checkpoint_file`, before the Runner is built: a folder, a missing or empty file,
  a damaged file, or a file holding Python objects whose code would have to run to load it
  (refused by torch's ``weights_only`` loader, which the tools always use; mmengine's own objects
  are allowed through :func:`fma._compat.mmengine_checkpoint_globals`). Tensors are
  memory-mapped, not read.
* :class:`CheckpointFitHook`, inside the Runner: mmengine calls ``after_load_checkpoint`` with
  the checkpoint it has just read and before it copies any weight into the model, so the hook
  compares that state dict with the model's own (keys after mmengine's ``module.`` revision, and
  shapes). Any missing, unexpected or mis-shaped key raises :class:`CheckpointError`.

What a checkpoint must hold is the built model's ``state_dict()``: every parameter and buffer of a
stage II segmenter; for a stage I :class:`fma.models.PromptCLIP` its only entry,
``prompt_learner.ctx`` (the frozen CLIP is kept outside the module tree), which is what stage I
saves and all that an imported official prompt checkpoint (:mod:`fma.apis.import_official`)
holds. A context of another ``n_ctx``, ``csc`` or prompt count has another shape and is refused.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook

__all__ = [
    "CheckpointError",
    "CheckpointFitHook",
    "check_checkpoint_file",
    "check_state_dict_fit",
    "checkpoint_exit",
    "checkpoint_to_load",
    "model_state_shapes",
]

#: Keys named in full per kind of mismatch; the rest are counted ("and N more").
SHOWN_KEYS = 3
#: mmengine's ``Runner.load_checkpoint`` default ``revise_keys`` (a DDP ``module.`` prefix).
_REVISE_KEYS = ((r"^module.", ""),)
_RESAVE = (
    "if you trust its source, re-save only its tensors in Python "
    "(ckpt = torch.load(path, weights_only=False); "
    "torch.save({'state_dict': ckpt['state_dict']}, new_path)) and use the new file"
)


class CheckpointError(ValueError):
    """A checkpoint that cannot or must not be loaded; ``str()`` is one line naming the file."""


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # torch colours its messages
    return text.splitlines()[0] if text else type(exc).__name__


def _refused_global(exc: BaseException) -> str | None:
    """The global that torch's ``weights_only`` unpickler refused (``'argparse.Namespace'``), or
    None when ``exc`` is no such refusal."""
    text = str(exc)
    if "Weights only load failed" not in text and "WeightsUnpickler" not in text:
        return None
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return found.group(1)
    found = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
    return found.group(1).strip().rstrip(".") if found else "an object that is not a tensor"


def _examples(folder: Path) -> str:
    names = sorted(p.name for p in folder.glob("*.pth"))[:SHOWN_KEYS]
    if not names:
        return "give the path of a checkpoint file (tools/train.py writes <work_dir>/iter_N.pth)"
    return "give a checkpoint file inside it: " + ", ".join(str(folder / n) for n in names)


def check_checkpoint_file(path: str | os.PathLike, *, option: str = "checkpoint") -> None:
    """Stop before anything is built when ``path`` cannot be loaded as a checkpoint.

    The file is read with ``torch.load(weights_only=True)`` inside
    :func:`fma._compat.mmengine_checkpoint_globals` (memory-mapped for zip files, so the tensors
    are not read); on torch without that allowlist (< 2.5) only its presence and size are checked.
    A remote location (``https://...``, ``open-mmlab://...``) is left to mmengine.

    Args:
        path: the checkpoint (``.pth``).
        option: how the user gave it, for the message (``checkpoint``, ``load_from``, ...).

    Raises:
        CheckpointError: one line naming the file, what is wrong and the fix.
    """
    if "://" in os.fspath(path):
        return
    p = Path(path)
    where = f"{p} ({option})"
    if p.is_dir():
        raise CheckpointError(f"{where}: is a folder, not a checkpoint file; {_examples(p)}")
    if not p.is_file():
        raise CheckpointError(f"{where}: checkpoint file not found; check the path")
    if p.stat().st_size == 0:
        raise CheckpointError(
            f"{where}: the file is empty (0 bytes: a save or copy that did not finish); use a "
            "complete checkpoint, e.g. an earlier iter_N.pth of the run, or copy it again"
        )
    import torch

    if not hasattr(torch.serialization, "safe_globals"):
        return  # torch < 2.5: mmengine loads it with torch's own defaults
    from fma._compat import mmengine_checkpoint_globals

    try:
        with mmengine_checkpoint_globals():
            obj = torch.load(p, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(p))
    except pickle.UnpicklingError as exc:
        name = _refused_global(exc)
        if name is None:
            raise CheckpointError(
                f"{where}: not a readable PyTorch checkpoint ({_first_line(exc)}); the file "
                "may be damaged or incomplete: use another checkpoint or copy it again"
            ) from None
        raise CheckpointError(
            f"{where}: holds Python code or objects ({name}) besides tensors, which fma does "
            f"not run (checkpoints are loaded as data only); {_RESAVE}"
        ) from None
    except Exception as exc:  # damaged files fail in many ways (EOFError, KeyError, ...)
        raise CheckpointError(
            f"{where}: not a readable PyTorch checkpoint ({type(exc).__name__}: "
            f"{_first_line(exc)}); the file may be damaged or incomplete: use another checkpoint "
            "or copy it again"
        ) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{where}: holds a {type(obj).__name__}, not a checkpoint (a dict with a state_dict "
            "of tensors)"
        )


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else None


def model_state_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of the state dict a checkpoint must match.

    mmengine loads into the module inside a wrapper (DDP) and inside a test-time augmentation
    model (``--tta``: mmseg's ``SegTTAModel``), so their ``module.`` level is dropped here too.
    """
    from mmengine.model import BaseTTAModel, is_model_wrapper

    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    more = len(keys) - SHOWN_KEYS
    return f"{shown} and {more} more" if more > 0 else shown


def check_state_dict_fit(
    model_shapes: Mapping[str, tuple[int, ...]],
    checkpoint: Mapping[str, Any],
    *,
    source: str,
    config: str | None = None,
) -> None:
    """Raise unless ``checkpoint`` holds exactly the model's keys with the model's shapes.

    Args:
        model_shapes: ``{key: shape}`` of the model (:func:`model_state_shapes`).
        checkpoint: what ``torch.load`` returned: a dict with ``state_dict``, or a bare state
            dict; keys are revised as mmengine does (a leading ``module.`` is dropped).
        source: the checkpoint path (named in the message).
        config: the config the model was built from (named in the message).

    Raises:
        CheckpointError: one line with the counts of missing, unexpected and mis-shaped keys and
            at most :data:`SHOWN_KEYS` names of each, then ``and N more``.
    """
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: its state_dict is a {type(state).__name__}, not a dict")
    revised: dict[str, Any] = {}
    for key, value in state.items():
        for pattern, repl in _REVISE_KEYS:
            key = re.sub(pattern, repl, str(key))
        revised[key] = value
    missing = [k for k in model_shapes if k not in revised]
    unexpected = [k for k in revised if k not in model_shapes]
    shaped = [
        k for k in model_shapes
        if k in revised and _shape(revised[k]) != tuple(model_shapes[k])
    ]  # fmt: skip
    if not (missing or unexpected or shaped):
        return

    def n(keys: list[str]) -> str:
        return f"{len(keys)} key{'s' if len(keys) > 1 else ''}"

    parts = []
    if shaped:
        k = shaped[0]
        ckpt_shape = "x".join(map(str, _shape(revised[k]) or ())) or "no tensor"
        model_shape = "x".join(map(str, model_shapes[k]))
        also = f"; also {_listed(shaped[1:])}" if len(shaped) > 1 else ""
        parts.append(
            f"{n(shaped)} of another shape ({k} is {ckpt_shape} in the checkpoint, "
            f"{model_shape} in the model{also})"
        )
    if missing:
        parts.append(f"{n(missing)} missing ({_listed(missing)})")
    if unexpected:
        parts.append(f"{n(unexpected)} not in the model ({_listed(unexpected)})")
    built = f"the model of {config}" if config else "the model"
    raise CheckpointError(
        f"{source}: does not fit {built}: {'; '.join(parts)}. It was trained with another "
        "configuration (classes, n_ctx, backbone, ...): use the config it was trained with, or "
        "a checkpoint of this config"
    )


class CheckpointFitHook(Hook):
    """Refuse a checkpoint that does not fit the runner's model, before mmengine loads it.

    Register it on the Runner (``runner.register_hook(hook, "HIGHEST")``); its
    ``after_load_checkpoint`` runs between mmengine's reading of the file and the copy of its
    weights into the model (``load_from``, ``--resume`` and ``tools/test.py`` alike).

    Args:
        source: the checkpoint path, for the message (mmengine does not pass it on).
        config: the config file, for the message.
    """

    priority = "HIGHEST"

    def __init__(self, source: str | os.PathLike | None = None, config: str | None = None) -> None:
        self.source = None if source is None else str(source)
        self.config = config

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        source = self.source or str(getattr(runner, "_load_from", None) or "the checkpoint")
        check_state_dict_fit(
            model_state_shapes(runner.model), checkpoint, source=source, config=self.config
        )


def checkpoint_to_load(cfg: Any) -> str | None:
    """The checkpoint a Runner built from ``cfg`` will load, as mmengine's ``load_or_resume``
    decides: ``load_from``; with ``resume`` and no ``load_from``, the file named in
    ``<work_dir>/last_checkpoint``; None when there is none (a fresh run)."""
    load_from = cfg.get("load_from")
    if load_from:
        return str(load_from)
    if not cfg.get("resume"):
        return None
    record = Path(cfg.work_dir) / "last_checkpoint"
    try:
        text = record.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def checkpoint_exit(exc: CheckpointError, launcher: str = "none") -> SystemExit:
    """Print ``error: <exc>`` to stderr (rank 0 only, so a launched run prints one line) and
    return the ``SystemExit(2)`` for the tool to raise (every rank stops)."""
    from fma.engine.config import launcher_rank

    if launcher_rank(launcher) == 0:
        print(f"error: {exc}", file=sys.stderr)
    return SystemExit(2)
