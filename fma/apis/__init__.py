"""Entry points shared by the command-line tools (L4: may use mmengine's Config)."""

from fma.apis.config import (
    ConfigKeyError,
    ConfigSectionError,
    check_section_keys,
    load_section,
    merge_cfg_options,
    tool_work_dir,
)

__all__ = [
    "ConfigKeyError",
    "ConfigSectionError",
    "check_section_keys",
    "load_section",
    "merge_cfg_options",
    "tool_work_dir",
]
