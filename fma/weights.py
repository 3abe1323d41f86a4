"""The weights files a pipeline needs, by name: where to get them, their sha256, how to install.

One table, :data:`WEIGHTS`: OpenAI's CLIP ViT-B/16 (``clip``) and the official SAM checkpoints of
:data:`fma.sam.builder.SAM_CHECKPOINTS` (``sam`` = ViT-H, ``sam_vit_l``, ``sam_vit_b``).
``tools/download.py`` fetches them into a folder (``pretrains/`` or ``$FMA_WEIGHTS_DIR``) with
:func:`fetch_weights`; the pipeline preflight checks files by name with
:func:`expected_sha256`.

:func:`fetch_weights` never leaves a file with the wrong hash under the final name: a file
already there is verified (and kept only when it matches), a file the user copied from elsewhere
(``source``) is verified and then hard-linked or copied in, and a download goes through
:func:`fma.io.download.download_verified` (resumable ``.part`` file, sha256 check, rename).
"""

from __future__ import annotations

import dataclasses
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fma.io.atomic import make_output_dir
from fma.io.download import download_verified, part_path, sha256_matches
from fma.io.manifest import file_sha256
from fma.sam.builder import SAM_CHECKPOINTS, SamCheckpoint

__all__ = [
    "DEFAULT_DIR",
    "ENV_DIR",
    "WEIGHTS",
    "WeightsFile",
    "WeightsMismatchError",
    "expected_sha256",
    "fetch_weights",
    "get_weights",
    "weights_dir",
]

#: Folder of the weights when neither ``--dir`` nor :data:`ENV_DIR` is given.
DEFAULT_DIR = Path("pretrains")
#: Environment variable naming the weights folder.
ENV_DIR = "FMA_WEIGHTS_DIR"


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file."""

    name: str  # the name tools/download.py takes: clip, sam, sam_vit_l, sam_vit_b
    filename: str  # file name in the weights folder
    url: str  # official download URL
    sha256: str  # hex sha256 of the file
    flag: str  # the option of tools/demo.py / tools/reproduce.py that takes its path
    note: str  # what it is


# OpenAI publishes each CLIP file under its own sha256 (the hex folder of the URL).
_CLIP_SHA256 = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"
_SAM_NAMES = {"vit_h": "sam", "vit_l": "sam_vit_l", "vit_b": "sam_vit_b"}


def _sam_entry(c: SamCheckpoint) -> WeightsFile:
    kind = "ViT-" + c.model_type.removeprefix("vit_").upper()
    return WeightsFile(
        _SAM_NAMES.get(c.model_type, f"sam_{c.model_type}"), c.filename, c.url, str(c.sha256),
        "--sam", f"SAM {kind}, segment-anything's checkpoint (model_type {c.model_type})",
    )  # fmt: skip


WEIGHTS: dict[str, WeightsFile] = {
    w.name: w
    for w in (
        WeightsFile(
            "clip",
            "ViT-B-16.pt",
            f"https://openaipublic.azureedge.net/clip/models/{_CLIP_SHA256}/ViT-B-16.pt",
            _CLIP_SHA256,
            "--clip",
            "CLIP ViT-B/16, OpenAI's release (a TorchScript archive; stage I)",
        ),
        *(_sam_entry(c) for c in SAM_CHECKPOINTS.values() if c.sha256 is not None),
    )
}


class WeightsMismatchError(ValueError):
    """A file does not have the published sha256; ``str()`` names it and the fix."""


def get_weights(name: str) -> WeightsFile:
    """The table entry ``name``; a KeyError lists the known names."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(WEIGHTS)}") from None


def weights_dir(folder: str | os.PathLike | None = None) -> Path:
    """``folder``, else ``$FMA_WEIGHTS_DIR``, else ``pretrains``."""
    if folder is not None:
        return Path(folder)
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def expected_sha256(filename: str) -> str | None:
    """The published sha256 of a known file name (``ViT-B-16.pt``, ``sam_vit_h_4b8939.pth``),
    None for any other name."""
    for w in WEIGHTS.values():
        if w.filename == filename:
            return w.sha256
    return None


def _check(path: Path, weights: WeightsFile, what: str) -> None:
    got = file_sha256(path)
    if not sha256_matches(got, weights.sha256):
        raise WeightsMismatchError(
            f"{path}: sha256 {got} is not the published {weights.sha256} of {weights.filename} "
            f"({what}); it is another or a damaged file: delete it and run "
            f"`python tools/download.py {weights.name}` again"
        )


def fetch_weights(
    weights: WeightsFile,
    folder: str | os.PathLike | None = None,
    *,
    source: str | os.PathLike | None = None,
    opener: Callable[[Any], Any] = urllib.request.urlopen,
    progress: bool = True,
) -> tuple[Path, str]:
    """Make ``<folder>/<filename>`` the verified file of ``weights``.

    Args:
        weights: the table entry.
        folder: the weights folder (:func:`weights_dir` resolves None).
        source: a copy of the file obtained elsewhere (offline machines): verified, then
            hard-linked into the folder (same file system) or copied (hash checked again on the
            copy). None downloads from ``weights.url``.
        opener: URL opener for the download (tests pass a fake one).
        progress: show a tqdm bar.

    Returns:
        ``(path, how)``, ``how`` one of ``"present"`` (already there and verified),
        ``"linked"``, ``"copied"`` or ``"downloaded"``.

    Raises:
        WeightsMismatchError: the file in the folder or ``source`` has another sha256 (nothing
            is installed; a file already in the folder is left as it is).
        ValueError: the downloaded bytes have another sha256 (nothing is kept).
        FileNotFoundError: ``source`` does not exist.
        OSError: the download failed (a partial ``.part`` file is kept for the next call).
    """
    target = weights_dir(folder) / weights.filename
    if target.is_file():
        _check(target, weights, "the file in the weights folder")
        part_path(target).unlink(missing_ok=True)
        return target, "present"
    if source is None:
        download_verified(
            weights.url, target, sha256=weights.sha256, opener=opener, progress=progress
        )
        return target, "downloaded"
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: file not found (--from)")
    make_output_dir(target.parent)
    if source.stat().st_dev == target.parent.stat().st_dev:
        _check(source, weights, "the file given with --from")
        try:
            os.link(source, target)
            return target, "linked"
        except OSError:
            pass  # no hard links here (some file systems, permissions): copy instead
    try:
        download_verified(
            source.resolve().as_uri(), target, sha256=weights.sha256, progress=progress,
            resume=False,
        )  # fmt: skip
    except ValueError:
        _check(source, weights, "the file given with --from")  # names the file and the fix
        raise
    return target, "copied"
