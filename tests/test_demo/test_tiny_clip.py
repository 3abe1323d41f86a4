"""The tiny CLIP: pretraining lowers the loss; the checkpoint loads in open_clip and stage I."""

from __future__ import annotations

# isort: split
import json

import numpy as np
import open_clip
import pytest
import torch

from fma.clip import load_clip
from fma.clip.pretrain import contrastive_loss
from fma.demo.data import VERSION as DATA_VERSION
from fma.demo.tiny_clip import (
    LOGIT_SCALE,
    MODEL_NAME,
    TINY_CLIP_CONFIG,
    main,
    pretrain_tiny_clip,
    zero_shot_segmentation,
)


def test_contrastive_loss_known_answer():
    emb = torch.eye(3)
    eye = torch.eye(3, dtype=torch.bool)
    scale = torch.tensor(0.0)  # exp(0) = 1
    expected = -torch.log(torch.exp(torch.tensor(1.0)) / (torch.e + 2))
    assert torch.isclose(contrastive_loss(emb, emb, scale, eye), expected)
    # two identical captions: the target spreads over both, the loss is their mean
    same = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    assert contrastive_loss(emb, emb, scale, same) > contrastive_loss(emb, emb, scale, eye)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip")
    metrics = pretrain_tiny_clip(
        out, steps=30, batch_size=16, corpus=64, threads=1, log_every=0, logit_scale=LOGIT_SCALE
    )
    return out, metrics


def test_short_pretraining_lowers_the_loss(trained):
    out, m = trained
    assert m["loss_last"] < m["loss_first"] - 0.3
    assert 0 <= m["zero_shot_seg_miou"] <= 100
    assert 0 <= m["zero_shot_gradcam_miou"] <= 100
    assert abs(m["logit_scale"] - LOGIT_SCALE) < 1e-4 and m["logit_scale_learned"] > 0
    assert json.loads((out / "metrics.json").read_text()) == m
    # a rerun with the same settings keeps the checkpoint (no training)
    mtime = (out / f"{MODEL_NAME}.pt").stat().st_mtime_ns
    kw = dict(steps=30, batch_size=16, corpus=64, threads=1, logit_scale=LOGIT_SCALE)
    assert pretrain_tiny_clip(out, **kw) == m
    assert (out / f"{MODEL_NAME}.pt").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="other settings"):
        pretrain_tiny_clip(out, steps=31, batch_size=16, corpus=64, threads=1)


def test_a_tiny_clip_pretrained_on_earlier_demo_images_is_refused(trained, tmp_path):
    out, _ = trained
    for name in ("manifest.json", "metrics.json", f"{MODEL_NAME}.pt", f"{MODEL_NAME}.json"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["params"]["images_version"] == DATA_VERSION
    manifest["params"]["images_version"] = DATA_VERSION - 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    kw = dict(steps=30, batch_size=16, corpus=64, threads=1, logit_scale=LOGIT_SCALE)
    with pytest.raises(ValueError, match="earlier version of the demo images"):
        pretrain_tiny_clip(tmp_path, **kw)


def test_checkpoint_loads_through_open_clip_and_stage_one(trained):
    out, _ = trained
    ckpt = out / f"{MODEL_NAME}.pt"
    state = torch.load(ckpt, weights_only=True)
    open_clip.add_model_config(out / f"{MODEL_NAME}.json")
    model = open_clip.create_model(MODEL_NAME, pretrained=str(ckpt), force_quick_gelu=True)
    frozen = load_clip(MODEL_NAME, ckpt, model_config=out / f"{MODEL_NAME}.json")
    for name, value in list(model.state_dict().items()) + list(frozen.state_dict().items()):
        assert torch.equal(value, state[name]), name
    assert not any(p.requires_grad for p in frozen.parameters())
    assert frozen.visual.grid_size == (12, 12)
    # the stored temperature is the configured one, not the learned one
    assert torch.isclose(frozen.logit_scale.exp(), torch.tensor(LOGIT_SCALE))


def test_demo_configs_fit_the_tiny_clip():
    """One vision block (Softmax-GradCAM then differentiates the patch embedding); the demo's
    stage I configs average the attention of at most that many blocks; the pipeline stores the
    logit scale of :data:`LOGIT_SCALE` and reads the checkpoints the configs write."""
    from pathlib import Path

    from mmengine.config import Config

    repo = Path(__file__).resolve().parents[2]
    layers = TINY_CLIP_CONFIG["vision_cfg"]["layers"]
    assert layers == 1
    for name in ("fma-cls_prompt-tiny-clip_1xb8-60it_demo.py",
                 "fma-seg_prompt-tiny-clip_1xb8-100it_demo.py"):  # fmt: skip
        assert Config.fromfile(repo / "configs/demo" / name).model.att_layers == layers
    pipe = Config.fromfile(repo / "configs/pipelines/demo.py")
    assert float(pipe.vars["clip_logit_scale"]) == LOGIT_SCALE
    iters = {
        "cls_config": pipe.CLS_ITERS, "seg_config": pipe.SEG_ITERS,
        "stage2_config": pipe.STAGE2_ITERS,
    }  # fmt: skip
    for var, n in iters.items():
        cfg = Config.fromfile(repo / pipe.vars[var])
        assert cfg.train_cfg.max_iters == n and cfg.default_hooks.checkpoint.interval == n


def test_real_weights_train_nothing(tmp_path, capsys):
    weights = tmp_path / "ViT-B-16.pt"
    weights.write_bytes(b"x")
    assert main(["--out", str(tmp_path / "tc"), "--clip", str(weights)]) == 0
    assert not (tmp_path / "tc").exists()
    assert "not trained" in capsys.readouterr().out


class _StubCLIP:
    """Text prompt g embeds as the unit vector e_g; patch tokens are given; identity proj."""

    def __init__(self, tokens: torch.Tensor) -> None:
        self.visual = self
        self.output_tokens = False
        self.proj = torch.eye(20)
        self.tokens = tokens

    def __call__(self, images):
        return self.tokens.mean(dim=1), self.tokens

    def encode_text(self, text):
        return torch.eye(20)


def test_zero_shot_segmentation_known_answers():
    """A 16-pixel image of 2 x 2 patches, class 8 (cat) in the top-left patch only."""
    gts = np.zeros((1, 16, 16), dtype=np.uint8)
    gts[0, :8, :8] = 8
    tokens = torch.zeros(1, 4, 20)
    tokens[0, :, 0] = 1.0  # every patch looks like a boat (index 0), not a labelled class
    tokens[0, 0] = torch.eye(20)[7]  # the top-left patch matches "a photo of a cat."
    assert zero_shot_segmentation(_StubCLIP(tokens), None, [(8,)], gts, 32) == 100.0
    # the cat prompt matching the other three patches instead: every pixel wrong
    swapped = torch.eye(20)[[0, 7, 7, 7]][None]
    assert zero_shot_segmentation(_StubCLIP(swapped), None, [(8,)], gts, 32) == 0.0
