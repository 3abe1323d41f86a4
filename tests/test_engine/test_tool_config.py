"""Config loading shared by the offline tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from fma.engine.config import (
    NEW_KEY_PREFIX,
    ConfigKeyError,
    ConfigSectionError,
    check_section_keys,
    load_section,
    merge_cfg_options,
    tool_work_dir,
)


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


# --------------------------------------------------------------------------- --cfg-options keys
def _stage1_cfg():
    from mmengine.config import Config

    root = Path(__file__).resolve().parents[2]
    return Config.fromfile(root / "configs/stage1/fma-seg_prompt-clip-vit-b16_1xb16-75k_coco14.py")


def test_unknown_key_names_the_nearest_and_merges_nothing():
    cfg = _stage1_cfg()
    with pytest.raises(ConfigKeyError) as info:
        merge_cfg_options(cfg, {"model.n_ctx": 4, "modle.n_ctx": 4})
    msg = str(info.value)
    assert "modle does not exist" in msg and "(did you mean model.n_ctx?). " in msg
    assert "Valid keys at the top level: " in msg and "train_dataloader" in msg
    assert "+modle.n_ctx=" in msg
    assert cfg.model.n_ctx == 16  # the valid key before the wrong one was not merged either
    with pytest.raises(ConfigKeyError, match=r"model\.n_ctxx does not exist .* model\.n_ctx\?"):
        merge_cfg_options(cfg, {"model.n_ctxx": 4})
    with pytest.raises(ConfigKeyError, match=r"model\.caa is None .*\+model\.caa\.box_thresh="):
        merge_cfg_options(cfg, {"model.caa.box_thresh": 0.5})
    with pytest.raises(ConfigKeyError, match="pipeline has 7 entries .* index 9 does not exist"):
        merge_cfg_options(cfg, {"train_dataloader.dataset.pipeline.9.type": "LoadImage"})


def test_existing_keys_list_indices_and_explicit_new_keys_merge():
    cfg = _stage1_cfg()
    merge_cfg_options(cfg, {
        "model.n_ctx": 4,
        "train_dataloader.dataset.pipeline.4.size": 64,
        "+model.caa.box_thresh": 0.5,  # replaces the None entry by a dict
        "+model.caa.power": 2,
        f"{NEW_KEY_PREFIX}model.clip.model_config": "tiny.json",
        "+custom_imports": {"imports": ["x"]},
    })  # fmt: skip
    assert cfg.model.n_ctx == 4 and cfg.train_dataloader.dataset.pipeline[4].size == 64
    assert cfg.model.caa == {"box_thresh": 0.5, "power": 2}
    assert cfg.model.clip.model_config == "tiny.json"
    assert cfg.custom_imports.imports == ["x"]
    merge_cfg_options(cfg, None)
    merge_cfg_options(cfg, {})


def test_exit_on_error_prints_one_line(capsys):
    cfg = _stage1_cfg()
    with pytest.raises(SystemExit) as info:
        merge_cfg_options(cfg, {"modle.n_ctx": 4}, exit_on_error=True)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --cfg-options modle.n_ctx: ") and "Traceback" not in err


def test_section_keys_are_checked_against_the_stage_function(tmp_path):
    def stage(cam_dir, *, gamma=None, split=None, workers=0):
        pass

    cfg_file = tmp_path / "s.py"
    cfg_file.write_text("seeding = dict(cam_dir='c', gama=0.6)\n")
    with pytest.raises(ConfigKeyError) as info:
        load_section(cfg_file, "seeding", func=stage, reserved=("workers",))
    msg = str(info.value)
    assert "seeding.gama is not a setting of this stage (did you mean seeding.gamma?). " in msg
    assert msg.endswith("Valid seeding keys: cam_dir, gamma, split")
    # --cfg-options keys are checked against the file first, then the section
    with pytest.raises(ConfigKeyError, match=r"seeding\.gamm does not exist.*seeding\.gama\?"):
        load_section(cfg_file, "seeding", {"seeding.gamm": 0.5}, func=stage)
    _, section = load_section(cfg_file, "seeding", {"seeding.gama": 0.5, "+seeding.split": "v"})
    assert section == {"cam_dir": "c", "gama": 0.5, "split": "v"}  # no func: no section check
    with pytest.raises(ConfigKeyError, match=r"seeding\.workers is not a setting"):
        check_section_keys("seeding", {"workers": 2}, stage, reserved=("workers",))
