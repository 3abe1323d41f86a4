"""Config loading shared by the offline tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from fma.apis import ConfigSectionError, load_section, tool_work_dir


def test_load_section_applies_overrides_and_names_missing_section(tmp_path):
    cfg_file = tmp_path / "sams-x_voc12.py"
    cfg_file.write_text("seeding = dict(gamma=0.6, split='train')\nwork_dir = 'runs/x'\n")
    cfg, section = load_section(cfg_file, "seeding", {"seeding.gamma": 0.7})
    assert section == {"gamma": 0.7, "split": "train"}
    assert isinstance(section, dict)
    assert tool_work_dir(cfg_file, cfg, None) == Path("runs/x")
    assert tool_work_dir(cfg_file, cfg, tmp_path / "w") == tmp_path / "w"
    with pytest.raises(ConfigSectionError, match=r"sams-x_voc12\.py has no 'sam_masks = dict"):
        load_section(cfg_file, "sam_masks")


def test_work_dir_defaults_to_config_stem(tmp_path):
    cfg_file = tmp_path / "sam_vit-h_amg-fma_voc12.py"
    cfg_file.write_text("sam_masks = dict(split='val')\n")
    cfg, _ = load_section(cfg_file, "sam_masks")
    assert tool_work_dir(cfg_file, cfg, None) == Path("work_dirs/sam_vit-h_amg-fma_voc12")
