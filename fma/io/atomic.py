"""Atomic file writes: write to a hidden temporary file in the target folder, then rename.

A reader (or a resumed run) therefore sees either the complete old file, the complete new file or
no file, never a partial one, even when the writing process is killed. The renamed file gets the
mode a plainly created file would get under the process umask (0644 under umask 022): the
temporary file is created with mode 0o666 and the kernel applies the umask.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "OutputError",
    "atomic_path",
    "make_output_dir",
    "output_error",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

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


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create a new hidden temporary file next to ``path``; its descriptor and name.

    Opened with mode 0o666 and ``O_EXCL``, so the kernel applies the umask exactly as for
    ``open(path, "w")`` (no chmod afterwards, no umask to read) and never reuses a name.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    made_parent = False
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except FileNotFoundError as exc:  # the folder is missing: made once, then tried again
            if made_parent:
                raise output_error(exc, path) from exc
            make_output_dir(path.parent)
            made_parent = True
        except OSError as exc:
            raise output_error(exc, path) from exc
    raise output_error(FileExistsError(errno.EEXIST, "no free temporary name", str(path)), path)


def _finish(tmp: Path, path: Path, exc: BaseException | None) -> None:
    """Rename ``tmp`` onto ``path``, or remove it after ``exc`` (re-raised as an OutputError
    where the user can fix the cause)."""
    if exc is None:
        try:
            os.replace(tmp, path)
            return
        except OSError as err:
            exc = err
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    if isinstance(exc, OSError) and not isinstance(exc, OutputError):
        err = output_error(exc, path)
        if err is not exc:
            raise err from exc
    raise exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary name starts with a dot and ends in ``.tmp``, so globbing for the real suffix
    never picks it up. On an exception the temporary file is removed and ``path`` is untouched.
    The parent folder is created when missing. The file has the mode ``open(path, "w")`` would
    give it (``0o666 & ~umask``). A full disk, a read-only folder or a file in the way raises
    :class:`OutputError` naming ``path`` and the fix.
    """
    path = Path(path)
    fd, tmp = _create_temp(path)
    os.close(fd)
    try:
        yield tmp
    except BaseException as exc:
        _finish(tmp, path, exc)
    _finish(tmp, path, None)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (one open of the temporary file, then a rename)."""
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        with open(fd, "wb", buffering=0, closefd=True) as f:  # unbuffered: no isatty probe
            view = memoryview(data)
            while view:  # a raw write may take fewer bytes than given
                view = view[f.write(view) :]
    except BaseException as exc:
        _finish(tmp, path, exc)
    _finish(tmp, path, None)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    """Serialise ``obj`` as JSON (no NaN allowed) and write it atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")
