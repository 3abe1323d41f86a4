"""The stage configs a pipeline's steps name, each parsed once per runner process.

A step's stage config (the ``.py`` argument of ``tools/train.py``, ``tools/make_seeds.py``, ...)
is read by the preflight (the training steps' batch and iterations,
:mod:`fma.pipeline.costs`) and by the step's fingerprint (the merged config's digest,
:mod:`fma.pipeline.fingerprint`), before the step runs and again for its record.
:class:`StageConfigs` parses each file once, with ``mmengine.Config.fromfile`` (``_base_`` chain
resolved), and hands out the same dict and digest to all of them. The cache lives as long as one
invocation of the runner: a config edited during a run counts at the next one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from fma.io.manifest import file_sha256

__all__ = ["StageConfigs"]


class StageConfigs:
    """Parsed stage configs by absolute path: the merged dict, or the error parsing raised."""

    def __init__(self) -> None:
        self._parsed: dict[str, dict[str, Any] | Exception] = {}
        self._digests: dict[str, str] = {}

    def _parse(self, path: Path) -> dict[str, Any] | Exception:
        key = str(path)
        if key not in self._parsed:
            try:
                from mmengine.config import Config

                with warnings.catch_warnings():  # mmseg:: bases import pkg_resources (deprecated)
                    warnings.simplefilter("ignore")
                    cfg = Config.fromfile(key, import_custom_modules=False)
                self._parsed[key] = cfg.to_dict()
            except Exception as exc:  # kept: load() raises it, digest() falls back to the bytes
                self._parsed[key] = exc
        return self._parsed[key]

    def load(self, path: str | os.PathLike) -> dict[str, Any]:
        """A copy of the merged config as a dict (the caller may change it).

        Raises:
            Exception: whatever ``mmengine.Config.fromfile`` raised for this file.
        """
        parsed = self._parse(Path(path))
        if isinstance(parsed, Exception):
            raise parsed
        return copy.deepcopy(parsed)

    def digest(self, path: str | os.PathLike) -> str:
        """``merged:<sha256>`` of the merged config serialised as sorted JSON, or
        ``file:<sha256>`` of the file's bytes when it is not an mmengine config (a script)."""
        key = str(Path(path))
        if key not in self._digests:
            parsed = self._parse(Path(path))
            try:
                if isinstance(parsed, Exception):
                    raise parsed
                text = json.dumps(parsed, sort_keys=True, default=repr)
                digest = "merged:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
            except Exception:  # not an mmengine config (a plain script): its bytes decide
                digest = "file:" + file_sha256(Path(path))
            self._digests[key] = digest
        return self._digests[key]
