"""Entry points shared by the command-line tools (L4: may use mmengine's Config)."""

from fma.apis.config import ConfigSectionError, load_section, tool_work_dir

__all__ = ["ConfigSectionError", "load_section", "tool_work_dir"]
