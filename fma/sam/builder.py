"""Build a SAM model from (model type, checkpoint file) through segment-anything's registry.

The official checkpoints (segment-anything README, "Model Checkpoints") are listed in
:data:`SAM_CHECKPOINTS` with their download URL and sha256. Nothing is downloaded unless asked
for (:func:`download_checkpoint`, or ``download=True``); without the file, :func:`build_sam`
raises a :class:`FileNotFoundError` naming the folder to put it in and the URL to fetch it from.

``model_type="tiny"`` builds a small randomly initialised SAM (:mod:`fma.sam.tiny`) wired exactly
as ``segment_anything/build_sam.py`` wires the real ones, for tests, benchmarks and CPU smoke
runs; its masks carry no meaning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fma.io.download import download_verified
from fma.sam.tiny import build_tiny_sam, sam_registry

__all__ = [
    "DEFAULT_CHECKPOINT_DIR",
    "SAM_CHECKPOINTS",
    "SamCheckpoint",
    "build_sam",
    "build_tiny_sam",
    "download_checkpoint",
    "mask_generator",
    "resolve_checkpoint",
    "verify_checkpoint",
]

#: Where :func:`resolve_checkpoint` looks for a checkpoint given only by model type.
DEFAULT_CHECKPOINT_DIR = Path("pretrains")  # where tools/download.py puts weights


@dataclasses.dataclass(frozen=True)
class SamCheckpoint:
    """One official SAM checkpoint."""

    model_type: str  # key of segment_anything.sam_model_registry: vit_h / vit_l / vit_b
    filename: str  # official file name
    url: str  # official download URL
    sha256: str | None  # hex sha256 of the file; None when not known


# URLs: segment-anything README ("Model Checkpoints"). sha256 values: the same value is recorded
# for each file by several independent projects that verify the downloaded checkpoints
# (e.g. micro-sam's checkpoint table, Dockerfiles running `sha256sum -c`).
SAM_CHECKPOINTS: dict[str, SamCheckpoint] = {
    c.model_type: c
    for c in (
        SamCheckpoint(
            "vit_h",
            "sam_vit_h_4b8939.pth",
            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        ),
        SamCheckpoint(
            "vit_l",
            "sam_vit_l_0b3195.pth",
            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        ),
        SamCheckpoint(
            "vit_b",
            "sam_vit_b_01ec64.pth",
            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        ),
    )
}

_MODEL_TYPES = ("vit_h", "vit_l", "vit_b", "tiny")


def _checkpoint_info(model_type: str) -> SamCheckpoint:
    try:
        return SAM_CHECKPOINTS[model_type]
    except KeyError:
        raise KeyError(
            f"unknown SAM model type {model_type!r}; available: {', '.join(SAM_CHECKPOINTS)}"
        ) from None


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_checkpoint(path: str | os.PathLike, sha256: str | None) -> str:
    """Hash a checkpoint file and compare with ``sha256`` when one is given.

    Returns:
        The file's hex sha256.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the hash differs (corrupt or different file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    got = _sha256(path)
    if sha256 is not None and got != sha256.lower():
        raise ValueError(
            f"{path}: sha256 {got} does not match the expected {sha256}; the file is corrupt "
            "or not the official checkpoint. Delete it and download it again."
        )
    return got


def download_checkpoint(
    model_type: str,
    dest_dir: str | os.PathLike = DEFAULT_CHECKPOINT_DIR,
    *,
    url: str | None = None,
    sha256: str | None = None,
    opener: Callable[[str], Any] = urllib.request.urlopen,
    progress: bool = True,
) -> Path:
    """Download an official checkpoint into ``dest_dir`` and verify its sha256.

    The file is streamed into a temporary file next to the target and renamed only after the
    hash matched, so an interrupted or corrupt download never leaves a file under the final name.
    An existing file is verified and reused.

    Args:
        model_type: ``vit_h``, ``vit_l`` or ``vit_b``.
        dest_dir: folder of the checkpoint (created when missing).
        url: override of the official URL (e.g. a local mirror or ``file://`` URL).
        sha256: override of the expected hash (default: the table's value).
        opener: callable returning a readable response for a URL (``urllib.request.urlopen``).
        progress: show a tqdm bar.

    Returns:
        Path of the verified checkpoint.

    Raises:
        ValueError: the downloaded bytes do not have the expected sha256.
        OSError: the URL could not be read.
    """
    info = _checkpoint_info(model_type)
    url = url or info.url
    expected = sha256 if sha256 is not None else info.sha256
    target = Path(dest_dir) / info.filename
    if target.is_file():
        verify_checkpoint(target, expected)
        return target
    return download_verified(url, target, sha256=expected, opener=opener, progress=progress)


def resolve_checkpoint(
    model_type: str,
    checkpoint: str | os.PathLike | None = None,
    *,
    download: bool = False,
    dest_dir: str | os.PathLike = DEFAULT_CHECKPOINT_DIR,
) -> Path:
    """Find the checkpoint file of ``model_type``; download it only when ``download`` is True.

    Args:
        model_type: ``vit_h``, ``vit_l`` or ``vit_b``.
        checkpoint: explicit file path; None looks for the official file name in ``dest_dir``.
        download: fetch the official file into the checkpoint's folder when it is missing.
        dest_dir: folder used when ``checkpoint`` is None.

    Raises:
        FileNotFoundError: the file is missing and ``download`` is False; the message says where
            to put it and where to get it.
    """
    info = _checkpoint_info(model_type)
    path = Path(checkpoint) if checkpoint is not None else Path(dest_dir) / info.filename
    if path.is_file():
        return path
    if download:
        got = download_checkpoint(model_type, path.parent)
        if got != path:
            shutil.move(str(got), str(path))
        return path
    raise FileNotFoundError(
        f"SAM checkpoint {path} not found. Download {info.filename} from {info.url} "
        f"(sha256 {info.sha256}) and save it as {path}, or pass download=True "
        "(sam_masks.download=True in the config) on a machine with internet access."
    )


def build_sam(
    model_type: str = "vit_h",
    checkpoint: str | os.PathLike | None = None,
    *,
    device: str = "cpu",
    download: bool = False,
    tiny_seed: int = 0,
    random_weights: bool = False,
) -> Any:
    """Build a SAM model with its weights.

    Args:
        model_type: ``vit_h``, ``vit_l``, ``vit_b`` (official weights) or ``tiny`` (random
            weights, see :func:`build_tiny_sam`; ``checkpoint`` must then be None).
        checkpoint: path of the weights file; None looks for the official file name in
            ``pretrains/`` (where ``tools/download.py`` puts it).
        device: torch device string.
        download: fetch the official file when it is missing (needs internet).
        tiny_seed: seed of the ``tiny`` model.
        random_weights: build ``vit_h``/``vit_l``/``vit_b`` with segment-anything's random
            initialisation instead of a checkpoint (timing only; ``checkpoint`` must be None).

    Returns:
        ``segment_anything.modeling.Sam`` in eval mode on ``device``.

    Raises:
        KeyError: unknown model type (the message lists the valid ones).
        FileNotFoundError: checkpoint missing (the message says where to put it).
    """
    if model_type not in _MODEL_TYPES:
        raise KeyError(
            f"unknown SAM model type {model_type!r}; available: {', '.join(_MODEL_TYPES)}"
        )
    if model_type == "tiny":
        if checkpoint is not None:
            raise ValueError("model_type='tiny' has random weights; leave checkpoint=None")
        return build_tiny_sam(seed=tiny_seed).to(device)
    registry = sam_registry()
    if random_weights:
        if checkpoint is not None:
            raise ValueError("random_weights=True builds without weights; leave checkpoint=None")
        return registry[model_type](checkpoint=None).to(device).eval()
    path = resolve_checkpoint(model_type, checkpoint, download=download)
    sam = registry[model_type](checkpoint=str(path))
    return sam.to(device).eval()


def mask_generator(
    sam: Any,
    preset: Any,
    *,
    precision: str = "fp32",
    crop_batch: int | None = None,
    auto_batch: bool = True,
) -> Any:
    """The mask stage's generator for a built SAM (the one ``tools/gen_sam_masks.py`` runs).

    Args:
        sam: ``segment_anything.modeling.Sam`` on its device (prepared by
            :func:`fma.sam.throughput.prepare_sam` here).
        preset: :class:`fma.sam.presets.AmgPreset`.
        precision: a key of :data:`fma.sam.throughput.PRECISIONS`.
        crop_batch: crops per encoder call; None: :func:`fma.sam.throughput.auto_crop_batch`.
        auto_batch: choose ``points_per_batch`` with
            :func:`fma.sam.throughput.auto_points_per_batch` (CUDA only;
            False keeps the preset's value).

    Returns:
        :class:`fma.sam.level_masks.FmaMaskGenerator`.
    """
    from fma.sam.level_masks import FmaMaskGenerator
    from fma.sam.throughput import (
        auto_crop_batch,
        auto_points_per_batch,
        prepare_sam,
    )

    device = next(sam.parameters()).device
    prepare_sam(sam, precision)
    kwargs = preset.generator_kwargs()
    if auto_batch:
        kwargs["points_per_batch"] = auto_points_per_batch(device, kwargs["points_per_batch"])
    if crop_batch is None:
        n_crops = sum(4**i for i in range(kwargs["crop_n_layers"] + 1))  # 1 + 4 + 16 ...
        crop_batch = auto_crop_batch(device, precision, n_crops)
    return FmaMaskGenerator(sam, precision=precision, crop_batch=crop_batch, **kwargs)
