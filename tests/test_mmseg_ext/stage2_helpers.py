"""Helpers of the stage II tests (imported by the test modules of this folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
STAGE2 = REPO / "configs" / "stage2"
TINY = {
    "deeplabv3plus": STAGE2 / "deeplabv3plus_r18-tiny_1xb2-cpu_voc12-seed-64x64.py",
    "mask2former": STAGE2 / "mask2former_swin-tiny_1xb2-cpu_voc12-seed-64x64.py",
}


def data_options(voc: Path, seeds: Path) -> list[str]:
    """``--cfg-options`` entries pointing a VOC stage II config at the fixture tree."""
    return [
        f"train_dataloader.dataset.data_root={voc}",
        f"train_dataloader.dataset.seed_dir={seeds}",
        f"val_dataloader.dataset.data_root={voc}",
        f"test_dataloader.dataset.data_root={voc}",
    ]


def run_tool(name: str, argv: list) -> int:
    """Call ``tools/<name>.py``'s ``main`` in this process."""
    from tool_modules import load_tool

    return load_tool(name).main([str(a) for a in argv])


def train_options(voc: Path, seeds: Path, work: Path, iters: int = 2) -> list:
    return ["--work-dir", work, "--cfg-options", *data_options(voc, seeds),
            f"train_cfg.max_iters={iters}"]  # fmt: skip


def state_dict(path: Path) -> dict:
    import torch

    from fma._compat import mmengine_checkpoint_globals

    with mmengine_checkpoint_globals():
        return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = state_dict(a)["state_dict"], state_dict(b)["state_dict"]
    assert sa.keys() == sb.keys()
    for key in sa:
        assert np.array_equal(sa[key].numpy(), sb[key].numpy()), key
