"""Fingerprints of pipeline steps: what decides a step's outputs, as one hash.

The fingerprint of a step (:func:`step_fingerprint`) is the sha256 of its *parts*:

* ``tool``: the sha256 of the tool file (``tools/x.py``) or of the module's source file;
* ``args``: the resolved arguments, in order;
* ``config:<path>``: for every argument that names a ``.py`` config file, the sha256 of the
  merged config (``_base_`` chain resolved by ``mmengine.Config.fromfile``, serialised as sorted
  JSON), so a change in a base file counts too (parsed once per runner process:
  :class:`fma.pipeline.stage_config.StageConfigs`);
* ``input:<path>``: for every input, the sha256 of ``<input>/manifest.json`` when it is a folder
  with a manifest, the sha256 of the file when it is a file, a hash of the sorted listing of
  names and sizes for a folder without a manifest, ``missing`` when it does not exist. An input
  with ``*`` is a glob: each match is fingerprinted.

* ``world_size``: for a distributed step, its number of processes (``nproc_per_node x nnodes``,
  1 without a launcher): training holds the config's total batch on any number of processes,
  but with another per-process batch, gradient accumulation and data order, so a rerun with
  another ``--nproc-per-node`` runs the step again. A record written before this part existed
  counts as its launcher's world size (:func:`same_fingerprint`).

Other launcher options (address, port, node rank) are not part of it. Large files (checkpoints)
are hashed once per (size, mtime): :class:`HashCache` keeps their digests in
``<records>/.hash_cache.json``.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fma.io.atomic import write_json_atomic
from fma.io.manifest import MANIFEST_NAME, file_sha256
from fma.pipeline.stage_config import StageConfigs

__all__ = [
    "HashCache",
    "changed_parts",
    "config_digest",
    "expand",
    "input_digest",
    "module_file",
    "recorded_parts",
    "same_fingerprint",
    "step_fingerprint",
]


class HashCache:
    """sha256 of files, remembered by (path, size, mtime) in a JSON file (None: in memory)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._data: dict[str, list] = {}
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                self._data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._data = {}

    def sha256(self, path: str | os.PathLike) -> str:
        """The file's sha256, from the cache when its size and mtime are unchanged."""
        p = Path(path)
        st = p.stat()
        key = str(p.resolve())
        hit = self._data.get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return str(hit[2])
        digest = file_sha256(p)
        self._data[key] = [st.st_size, st.st_mtime_ns, digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache file (atomically) when something new was hashed."""
        if self.path is not None and self._dirty:
            write_json_atomic(self.path, self._data, indent=None)
            self._dirty = False


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def expand(path: str, root: Path) -> list[str]:
    """``[path]``, or the sorted matches of a glob pattern (relative to ``root``)."""
    if not glob.has_magic(path):
        return [path]
    base = Path(path) if Path(path).is_absolute() else root / path
    matches = sorted(glob.glob(str(base)))
    if Path(path).is_absolute():
        return matches
    return [os.path.relpath(m, root) for m in matches]


def _listing_digest(folder: Path) -> str:
    """Hash of the sorted (relative name, size) listing of a folder; hidden names are left out."""
    rows = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            full = Path(dirpath) / name
            try:
                size = full.stat().st_size
            except OSError:
                continue
            rows.append(f"{full.relative_to(folder).as_posix()}\t{size}")
    rows.sort()
    return "listing:" + _sha("\n".join(rows))


def input_digest(path: str, root: Path, cache: HashCache) -> str:
    """Digest of one input (see the module docstring); ``path`` is relative to ``root``."""
    p = Path(path) if Path(path).is_absolute() else root / path
    if p.is_dir():
        manifest = p / MANIFEST_NAME
        if manifest.is_file():
            return "manifest:" + file_sha256(manifest)
        return _listing_digest(p)
    if p.is_file():
        return "file:" + cache.sha256(p)
    return "missing"


def config_digest(path: Path, configs: StageConfigs | None = None) -> str:
    """sha256 of the merged config (``_base_`` resolved); of the bytes if it does not load.

    ``configs``: the stage configs parsed so far (the runner's :class:`StageConfigs`); without
    it the file is parsed here.
    """
    return (configs or StageConfigs()).digest(path)


def module_file(module: str, root: Path) -> Path | None:
    """Source file of ``module`` (found without importing it; ``root`` is searched too)."""
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    finally:
        if added:
            sys.path.remove(str(root))
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return Path(spec.origin)


def _config_args(args: Sequence[str], root: Path) -> list[str]:
    out = []
    for arg in args:
        if arg.endswith(".py") and not arg.startswith("-"):
            p = Path(arg) if Path(arg).is_absolute() else root / arg
            if p.is_file():
                out.append(arg)
    return out


def step_fingerprint(
    *,
    tool: str | None,
    module: str | None,
    args: Sequence[str],
    inputs: Sequence[str],
    root: Path,
    cache: HashCache,
    world_size: int | None = None,
    configs: StageConfigs | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(fingerprint, parts)`` of a step; ``parts`` names what each piece hashed to.

    ``world_size``: the processes of a distributed step (None for a step that is not).
    ``configs``: the stage configs parsed so far in this process (the runner's); the configs
    this step names are parsed into it when missing.
    """
    configs = configs or StageConfigs()
    parts: dict[str, Any] = {}
    if world_size is not None:
        parts["world_size"] = int(world_size)
    if tool is not None:
        tool_path = Path(tool) if Path(tool).is_absolute() else root / tool
        parts["tool"] = cache.sha256(tool_path) if tool_path.is_file() else "missing"
    else:
        src = module_file(str(module), root)
        parts["tool"] = f"module:{module}:" + (cache.sha256(src) if src else "not found")
    parts["args"] = list(args)
    for cfg in _config_args(args, root):
        parts[f"config:{cfg}"] = configs.digest(
            Path(cfg) if Path(cfg).is_absolute() else root / cfg
        )
    for pattern in inputs:
        matches = expand(pattern, root)
        if not matches:
            parts[f"input:{pattern}"] = "missing"
        for match in matches:
            parts[f"input:{match}"] = input_digest(match, root, cache)
    return _digest(parts), parts


def _digest(parts: Mapping[str, Any]) -> str:
    return _sha(json.dumps(parts, sort_keys=True))


def recorded_parts(record: Mapping[str, Any], parts: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a step's record, with ``world_size`` filled in from its launcher when the
    record was written before that part existed and ``parts`` has it."""
    old = dict(record.get("parts") or {})
    if "world_size" in parts and "world_size" not in old:
        launcher = record.get("launcher") or {}
        world = 1
        if launcher.get("launcher") == "pytorch":
            world = int(launcher.get("nproc_per_node", 1)) * int(launcher.get("nnodes", 1))
        old["world_size"] = world
    return old


def same_fingerprint(record: Mapping[str, Any], fingerprint: str, parts: Mapping[str, Any]) -> bool:
    """True when a step's record holds ``fingerprint``; a record written before ``world_size``
    was a part matches when everything else does and its launcher ran as many processes."""
    if record.get("fingerprint") == fingerprint:
        return True
    if "world_size" not in parts or "world_size" in (record.get("parts") or {}):
        return False
    rest = {k: v for k, v in parts.items() if k != "world_size"}
    old_world = recorded_parts(record, parts)["world_size"]
    return _digest(rest) == record.get("fingerprint") and old_world == parts["world_size"]


def changed_parts(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable names of the parts that differ between two fingerprints."""
    out = []
    for key in sorted(set(old) | set(new), key=lambda k: (k != "tool", k != "args", k)):
        if old.get(key) == new.get(key):
            continue
        if key == "tool":
            out.append("tool file")
        elif key == "args":
            out.append("arguments")
        elif key == "world_size":
            out.append(f"processes {old.get(key, '?')} -> {new.get(key, '?')}")
        elif key.startswith("config:"):
            out.append(f"config {key[len('config:') :]}")
        elif key.startswith("input:"):
            name = key[len("input:") :]
            if key not in old:
                out.append(f"new input {name}")
            elif key not in new:
                out.append(f"input {name} gone")
            else:
                out.append(f"input {name}")
    return out
