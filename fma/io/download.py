"""Verified downloads of weight files: stream to a temporary file, check the sha256, rename.

An interrupted or corrupt download never leaves a file under the final name. Hashes may be full
hex sha256 values, or the 8-hex-digit prefix that OpenMMLab puts in its file names
(``<name>-<sha256[:8]>.pth``) where the full value is not published.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fma.io.atomic import atomic_path

__all__ = ["download_verified", "sha256_matches"]


def sha256_matches(digest: str, expected: str | None) -> bool:
    """True when ``digest`` (full hex) equals ``expected`` or starts with it (a prefix of >= 8)."""
    if expected is None:
        return True
    expected = expected.lower()
    if len(expected) < 8:
        raise ValueError(f"expected sha256 {expected!r} is too short (at least 8 hex digits)")
    return digest.lower().startswith(expected)


def download_verified(
    url: str,
    target: str | os.PathLike,
    *,
    sha256: str | None = None,
    opener: Callable[[str], Any] = urllib.request.urlopen,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``target`` and check its sha256 (full value or prefix) before renaming.

    Args:
        url: source URL (``https://``, ``file://`` or anything ``opener`` reads).
        target: final file path (parent folders are created).
        sha256: expected hex sha256, or its first 8+ digits; None skips the check.
        opener: callable returning a readable response for a URL.
        progress: show a tqdm bar.

    Raises:
        ValueError: the downloaded bytes do not have the expected hash (nothing is kept).
        OSError: the URL could not be read.
    """
    from tqdm import tqdm

    target = Path(target)
    h = hashlib.sha256()
    with atomic_path(target) as tmp, opener(url) as response, open(tmp, "wb") as out:
        total = getattr(response, "length", None) or None
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress)
        while block := response.read(1 << 20):
            out.write(block)
            h.update(block)
            bar.update(len(block))
        bar.close()
        out.flush()
        got = h.hexdigest()
        if not sha256_matches(got, sha256):
            raise ValueError(
                f"download of {url}: sha256 {got} does not match the expected {sha256}; "
                "the file was discarded. Retry, or fetch it by hand and check the hash."
            )
    return target
