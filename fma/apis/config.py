"""Config loading of the offline tools (SAM masks, seeds, sweeps).

An offline-stage config is a Python file with one ``<section> = dict(...)`` whose keys are the
keyword arguments of the stage function; ``--cfg-options`` overrides entries with mmengine's
dotted syntax. The work dir follows mmseg's convention: ``--work-dir``, else the config's
``work_dir``, else ``work_dirs/<config stem>``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ConfigSectionError", "load_section", "tool_work_dir"]


class ConfigSectionError(ValueError):
    """The config file lacks the section a tool reads."""


def load_section(
    config: str | os.PathLike, section: str, cfg_options: Mapping[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Load ``config``, apply ``cfg_options`` and return ``(cfg, dict(cfg.<section>))``.

    Raises:
        ConfigSectionError: the file has no ``<section> = dict(...)``.
    """
    from mmengine.config import Config

    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    if section not in cfg:
        raise ConfigSectionError(f"{config} has no '{section} = dict(...)' section")
    value = cfg[section]
    return cfg, value.to_dict() if hasattr(value, "to_dict") else dict(value)


def tool_work_dir(config: str | os.PathLike, cfg: Any, override: str | os.PathLike | None) -> Path:
    """``override``, else the config's ``work_dir``, else ``work_dirs/<config stem>``."""
    if override is not None:
        return Path(override)
    return Path(cfg.get("work_dir") or Path("work_dirs") / Path(config).stem)
