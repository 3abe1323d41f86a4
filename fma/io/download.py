"""Verified, resumable downloads of weight files: stream to ``<name>.part``, check the sha256,
rename.

An interrupted or corrupt download never leaves a file under the final name. The bytes arrive
in ``<target>.part`` next to the target; an interrupted download keeps it, and the next call
asks the server for the rest only (an HTTP ``Range`` request) and hashes the part it already
has, so the check covers the whole file. A server that ignores the range gets the download
started again from the first byte. A hash mismatch removes the part file. Hashes may be full
hex sha256 values, or the 8-hex-digit prefix that OpenMMLab puts in its file names
(``<name>-<sha256[:8]>.pth``) where the full value is not published.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fma.io.atomic import make_output_dir, output_error

__all__ = ["download_verified", "part_path", "sha256_matches"]

_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-")


def sha256_matches(digest: str, expected: str | None) -> bool:
    """True when ``digest`` (full hex) equals ``expected`` or starts with it (a prefix of >= 8)."""
    if expected is None:
        return True
    expected = expected.lower()
    if len(expected) < 8:
        raise ValueError(f"expected sha256 {expected!r} is too short (at least 8 hex digits)")
    return digest.lower().startswith(expected)


def part_path(target: str | os.PathLike) -> Path:
    """Where :func:`download_verified` keeps the bytes of an unfinished download."""
    target = Path(target)
    return target.with_name(target.name + ".part")


def _hash_into(path: Path, h: Any) -> int:
    """Feed the bytes of ``path`` into ``h``; return their count."""
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
            size += len(block)
    return size


def _status(response: Any) -> int | None:
    status = getattr(response, "status", None)
    return status if status is not None else getattr(response, "code", None)


def _continues_at(response: Any, offset: int) -> bool:
    """True when ``response`` is a 206 answer whose bytes start at ``offset``."""
    if _status(response) != 206:
        return False
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Range") if headers is not None else None
    if value is None:
        return True
    match = _CONTENT_RANGE.match(value)
    return match is not None and int(match.group(1)) == offset


def _finish(part: Path, target: Path, h: Any, url: str, sha256: str | None) -> Path:
    """Check the hash of the complete ``part``; rename it onto ``target`` or remove it."""
    got = h.hexdigest()
    if not sha256_matches(got, sha256):
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise ValueError(
            f"download of {url}: sha256 {got} does not match the expected {sha256}; "
            "the file was discarded. Retry, or fetch it by hand and check the hash."
        )
    try:
        os.replace(part, target)
    except OSError as exc:
        raise output_error(exc, target) from exc
    return target


def download_verified(
    url: str,
    target: str | os.PathLike,
    *,
    sha256: str | None = None,
    opener: Callable[[Any], Any] = urllib.request.urlopen,
    progress: bool = True,
    resume: bool = True,
) -> Path:
    """Download ``url`` to ``target`` and check its sha256 (full value or prefix) before renaming.

    Args:
        url: source URL (``https://``, ``file://`` or anything ``opener`` reads).
        target: final file path (parent folders are created).
        sha256: expected hex sha256, or its first 8+ digits; None skips the check.
        opener: callable returning a readable response (a context manager with ``read``); it
            gets the URL string, or a ``urllib.request.Request`` with a ``Range: bytes=N-``
            header when it continues a part file of ``N`` bytes. A resumed response must have
            status 206 (and, if it has one, a ``Content-Range`` starting at ``N``); another
            range is discarded and the whole file fetched again; any other status is taken as
            the whole file.
        progress: show a tqdm bar.
        resume: continue an existing ``<target>.part`` (:func:`part_path`); False starts over.

    Returns:
        ``target``.

    Raises:
        ValueError: the downloaded bytes do not have the expected hash (nothing is kept, the
            part file included).
        OSError: the URL could not be read (the part file is kept for the next call), or the
            folder cannot be written (an :class:`fma.io.atomic.OutputError` naming the fix).
    """
    from tqdm import tqdm

    target = Path(target)
    part = part_path(target)
    make_output_dir(target.parent)
    h = hashlib.sha256()
    offset = _hash_into(part, h) if resume and part.is_file() else 0
    if offset and sha256 is not None and sha256_matches(h.hexdigest(), sha256):
        return _finish(part, target, h, url, sha256)  # complete already: nothing to fetch
    request: Any = url
    if offset:
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"})
    try:
        response_cm = opener(request)
    except urllib.error.HTTPError as exc:
        if offset and exc.code == 416:  # the range starts at the end: the part is all there is
            return _finish(part, target, h, url, sha256)
        raise
    with response_cm as response:
        if offset and not _continues_at(response, offset):
            if _status(response) == 206:  # another range than asked for: fetch it all again
                part.unlink()
                return download_verified(
                    url, target, sha256=sha256, opener=opener, progress=progress, resume=False
                )
            offset, h = 0, hashlib.sha256()  # the server sent the whole file
        length = getattr(response, "length", None)
        total = offset + length if length else None
        bar = tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=target.name,
            disable=not progress,
        )  # fmt: skip
        try:
            with open(part, "ab" if offset else "wb") as out:
                while block := response.read(_CHUNK):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        except OSError as exc:  # a full disk names the fix; a dropped connection stays as it is
            err = output_error(exc, part)
            if err is not exc:
                raise err from exc
            raise
        finally:
            bar.close()
    return _finish(part, target, h, url, sha256)
