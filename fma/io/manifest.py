"""``manifest.json``: the record every stage-artifact folder carries.

A manifest names the format and its integer version, the dataset, split and class names, the
producer (tool, config and its hash, git commit, ``fma`` version) and the file count, plus free
stage-specific ``params`` (mask source, preset, checkpoint sha256, ...). Readers call
:func:`read_manifest` with what they expect; a mismatch raises :class:`ManifestError` naming the
folder, the field, the value expected and the value found.

One writer per folder: a stage holds :func:`folder_lock` on its output folder while it checks
the folder's manifest against its settings and writes files, so two runs with different
settings can never both pass the check and mix their files. The lock is an advisory
``flock`` on ``<folder>/.fma.lock`` that records the holder's pid; the kernel releases it when
the holder exits, however it dies, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fma.io.atomic import make_output_dir, output_error, write_json_atomic
from fma.version import __version__

__all__ = [
    "LOCK_NAME",
    "MANIFEST_NAME",
    "FolderLockedError",
    "Manifest",
    "ManifestError",
    "check_compatible",
    "file_sha256",
    "folder_lock",
    "producer_info",
    "read_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
#: Lock file of an output folder (hidden, so per-image globs never see it).
LOCK_NAME = ".fma.lock"


class ManifestError(ValueError):
    """A folder's manifest is missing, unreadable or does not match what the reader expects."""


class FolderLockedError(RuntimeError):
    """Another process holds the output folder's lock."""


def _lock_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return "unknown"
    return text or "unknown"


@contextlib.contextmanager
def folder_lock(
    directory: str | os.PathLike, *, wait_s: float = 0.0, poll_s: float = 0.1
) -> Iterator[Path]:
    """Hold an exclusive lock on an output folder (created when missing) for the ``with`` body.

    Args:
        directory: the output folder.
        wait_s: how long to wait for another holder to finish; 0 fails at once.
        poll_s: retry interval while waiting.

    Yields:
        The lock file ``<directory>/.fma.lock`` (it holds the holder's pid and stays behind).

    Raises:
        FolderLockedError: another process holds the lock after ``wait_s`` seconds; the message
            names the folder and the holder's pid.
    """
    import fcntl  # POSIX only; imported here so the module still imports elsewhere

    directory = make_output_dir(directory)
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise output_error(exc, directory) from exc
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FolderLockedError(
                        f"{directory}: another run (pid {_lock_holder(path)}) is writing to this "
                        "folder; wait for it to finish, or choose another output folder"
                    ) from None
                time.sleep(poll_s)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError as exc:
            raise output_error(exc, path) from exc
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclasses.dataclass
class Manifest:
    """Contents of ``manifest.json``."""

    format: str  # artifact kind, e.g. "label_maps", "sam_masks", "cams"
    version: int  # integer version of that format
    count: int = 0  # number of per-image files written
    dataset: str | None = None  # dataset key, e.g. "voc12", "coco14", "custom"
    split: str | None = None  # split name, e.g. "train", "train_aug", "val"
    class_names: list[str] | None = None  # class names in index order (0 = background)
    producer: dict[str, Any] = dataclasses.field(default_factory=dict)  # see producer_info()
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # stage-specific settings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def producer_info(tool: str, config: str | os.PathLike | None = None) -> dict[str, Any]:
    """Who wrote an artifact: tool name, config path and sha256, git commit, fma version, time."""
    info: dict[str, Any] = {
        "tool": tool,
        "fma_version": __version__,
        "git_commit": _git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if config is not None:
        info["config"] = str(config)
        if Path(config).is_file():
            info["config_sha256"] = file_sha256(config)
    return info


def write_manifest(directory: str | os.PathLike, manifest: Manifest) -> Path:
    """Write ``<directory>/manifest.json`` atomically and return its path."""
    path = Path(directory) / MANIFEST_NAME
    write_json_atomic(path, manifest.to_dict())
    return path


def read_manifest(
    directory: str | os.PathLike,
    *,
    format: str | None = None,
    version: int | None = None,
    required: bool = True,
    **expect: Any,
) -> Manifest | None:
    """Read and check ``<directory>/manifest.json``.

    Args:
        directory: artifact folder.
        format: expected format name (checked when given).
        version: expected format version (checked when given).
        required: when False, a missing manifest returns None instead of raising.
        **expect: further fields that must match when both sides are set, e.g. ``dataset="voc12"``.

    Raises:
        ManifestError: missing/unreadable manifest or a mismatch; the message names the folder.
    """
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        if not required:
            return None
        raise ManifestError(
            f"{directory}: no {MANIFEST_NAME}; this folder was not written by an fma tool "
            "(or the run did not finish). Re-run the producing tool, or import foreign files "
            "with the matching fma importer."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = {f.name for f in dataclasses.fields(Manifest)}
        manifest = Manifest(**{k: v for k, v in data.items() if k in fields})
    except (OSError, ValueError, TypeError) as exc:
        raise ManifestError(
            f"{path}: unreadable manifest ({exc}). The per-image files next to it are not "
            "affected: delete only this manifest.json and rerun the producing tool with the same "
            "settings; it skips the finished files and writes a new manifest."
        ) from exc
    checks = dict(expect)
    if format is not None:
        checks["format"] = format
    if version is not None:
        checks["version"] = version
    for key, want in checks.items():
        got = getattr(manifest, key, manifest.params.get(key))
        if want is not None and got is not None and got != want:
            raise ManifestError(
                f"{directory}: manifest field {key!r} is {got!r}, expected {want!r}. "
                "Point to the right folder or re-run the producing tool."
            )
    return manifest


def check_compatible(
    directory: str | os.PathLike,
    params: dict[str, Any],
    *,
    format: str,
    what: str,
    keys: tuple[str, ...] | None = None,
    paths: tuple[str, ...] = (),
    only_recorded: bool = True,
    hint: str = "choose another output folder or delete this one",
) -> Manifest | None:
    """The one check of an existing output folder against a run's settings (every stage uses it).

    A stage calls this before it adds files to ``directory``, so a folder never mixes files made
    with different settings; the pipeline runner calls it to tell a finished step from a stale
    one.

    Args:
        directory: the output folder (it need not exist).
        params: this run's settings, as its manifest's ``params`` records them.
        format: the format name the folder must hold.
        what: what the files are, for messages (``"seeds"``, ``"SAM masks"``, ...).
        keys: the keys of ``params`` that must match (default: all of them).
        paths: those of ``keys`` compared as resolved paths rather than as strings.
        only_recorded: a key the old manifest lacks is skipped (True) or compared as None.
        hint: what the user should do, appended to the mismatch message.

    Returns:
        The folder's manifest, or None when it has none (a fresh folder).

    Raises:
        ManifestError: the folder holds another format, or a key differs; the message names the
            folder and, for settings, every differing key with the old and the new value.
    """
    old = read_manifest(directory, required=False)
    if old is None:
        return None
    if old.format != format:
        raise ManifestError(
            f"{directory}: holds {old.format!r} files, not {what}; choose another output folder"
        )
    diff = []
    for key in params if keys is None else keys:
        if only_recorded and key not in old.params:
            continue
        was, now = old.params.get(key), params.get(key)
        if key in paths and was is not None and now is not None:
            same = Path(was).resolve() == Path(now).resolve()
        else:
            same = was == now
        if not same:
            diff.append(f"{key}={was!r}, this run has {key}={now!r}")
    if diff:
        raise ManifestError(
            f"{directory}: its {what} were made with other settings ({'; '.join(diff)}); {hint}"
        )
    return old
