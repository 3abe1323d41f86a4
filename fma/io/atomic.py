"""Atomic file writes: write to a hidden temporary file in the target folder, then rename.

A reader (or a resumed run) therefore sees either the complete old file, the complete new file or
no file, never a partial one, even when the writing process is killed. The renamed file gets the
mode a plainly created file would get under the process umask (0644 under umask 022), not the
0600 of :func:`tempfile.mkstemp`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "OutputError",
    "atomic_path",
    "current_umask",
    "make_output_dir",
    "output_error",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

_UMASK_LOCK = threading.Lock()

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
_NOT_A_DIR = (errno.ENOTDIR, errno.EEXIST)


class OutputError(OSError):
    """An output file or folder cannot be written: disk full, read-only, a file in the way.

    ``str()`` is one line: the path, what went wrong and the fix. Files written before stay.
    """

    def __init__(self, path: str | os.PathLike, err: int | None, what: str, fix: str) -> None:
        super().__init__(err, what, os.fspath(path))
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}; {self.fix}"

    def __reduce__(self) -> Any:  # picklable, for worker processes
        return (type(self), (self.filename, self.errno, self.strerror, self.fix))


def output_error(exc: OSError, path: str | os.PathLike) -> OSError:
    """An :class:`OutputError` naming ``path`` and the fix, for the OS errors a user can fix
    (no space, quota, read-only or not permitted, a file where a folder should be); other
    errors are returned as they are."""
    if isinstance(exc, OutputError):
        return exc
    if exc.errno in _FULL:
        return OutputError(path, exc.errno, "no space left on the device (disk full or quota)",
                           "free some space, or write elsewhere, then rerun the same command "
                           "(finished files are kept and skipped)")  # fmt: skip
    if exc.errno in _READ_ONLY:
        return OutputError(path, exc.errno, "cannot write here (read-only or no permission)",
                           "make the folder writable or choose another output folder")  # fmt: skip
    if exc.errno in _NOT_A_DIR or exc.errno == errno.EISDIR:
        return OutputError(path, exc.errno, "a file is in the way of the output folder "
                           "(or a folder in the way of an output file)",
                           "remove or rename it, or choose another output folder")  # fmt: skip
    return exc


def make_output_dir(path: str | os.PathLike) -> Path:
    """``mkdir -p path``; an error the user can fix becomes an :class:`OutputError`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, path) from exc
    return path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    Linux exposes it in ``/proc/self/status``; elsewhere it is read by setting and restoring it
    under a lock (the umask is process-wide, so other threads could race with that).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary name starts with a dot and ends in ``.tmp``, so globbing for the real suffix
    never picks it up. On an exception the temporary file is removed and ``path`` is untouched.
    The parent folder is created when missing. Before the rename the file gets mode
    ``0o666 & ~umask``, as ``open(path, "w")`` would give it. A full disk, a read-only folder
    or a file in the way raises :class:`OutputError` naming ``path`` and the fix.
    """
    path = Path(path)
    make_output_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(exc, path) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            err = output_error(exc, path)
            if err is not exc:
                raise err from exc
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    """Serialise ``obj`` as JSON (no NaN allowed) and write it atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")
