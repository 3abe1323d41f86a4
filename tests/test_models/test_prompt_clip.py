"""PromptCLIP on the tiny CLIP: modes, losses, gradients, state dict, CAM outputs."""

from __future__ import annotations

import pytest
import torch
from mmengine.structures import BaseDataElement

from fma.cam import caa_refine, softmax_gradcam_loop
from fma.models import PromptCLIP
from fma.models.losses import multilabel_contrastive_loss


def _sample(labels: list[int], seed: torch.Tensor | None = None) -> BaseDataElement:
    ds = BaseDataElement(metainfo={"img_id": "x", "ori_shape": (64, 96)})
    ds.gt_labels = torch.tensor(labels, dtype=torch.long)
    if seed is not None:
        ds.seed = seed
    return ds


def _model(cfg: dict, **kw) -> PromptCLIP:
    torch.manual_seed(0)
    kw.setdefault("att_layers", 2)
    return PromptCLIP(clip=cfg, n_ctx=4, **kw)


def _inputs(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 64, 96), generator=g, dtype=torch.uint8)


def test_state_dict_holds_only_the_prompts(tiny_clip_cfg) -> None:
    m = _model(tiny_clip_cfg)
    assert list(m.state_dict()) == ["prompt_learner.ctx"]
    assert [n for n, _ in m.named_parameters()] == ["prompt_learner.ctx"]
    assert m.num_fg == 20 and m.num_bg == 25 and m.prompt_learner.num_prompts == 45
    m2 = _model(tiny_clip_cfg, ctx_seed=5)
    m2.load_state_dict(m.state_dict())
    assert torch.equal(m2.prompt_learner.ctx, m.prompt_learner.ctx)


def test_cls_loss_matches_functional(tiny_clip_cfg) -> None:
    m = _model(tiny_clip_cfg)
    m.train()
    data = m.data_preprocessor({"inputs": list(_inputs()), "data_samples": [
        _sample([1, 15]), _sample([7])]}, True)  # fmt: skip
    losses = m(**data, mode="loss")
    assert set(losses) == {"loss_cls"}
    logits = m(data["inputs"], mode="tensor")
    labels = torch.zeros(2, 20, dtype=torch.long)
    labels[0, [0, 14]] = 1
    labels[1, 6] = 1
    want = multilabel_contrastive_loss(logits[:, :20], labels)
    assert torch.allclose(losses["loss_cls"], want, atol=1e-5)
    losses["loss_cls"].backward()
    assert m.prompt_learner.ctx.grad.abs().sum() > 0


def test_act_loss_seed_positives_and_gradients(tiny_clip_cfg) -> None:
    m = _model(
        tiny_clip_cfg,
        bg_prompts=3,
        csc=True,
        class_token_position="front",
        cls_loss_weight=0.0,
        act_loss_weights=(1.0, 1.0),
        act_positives="seed",
    )
    m.train()
    seed0 = torch.zeros(64, 96, dtype=torch.long)
    seed0[10:30, 20:50] = 3
    seed0[40:60, 0:10] = 255
    seed1 = torch.zeros(64, 96, dtype=torch.long)  # background-only crop: no positives
    data = m.data_preprocessor(
        {"inputs": list(_inputs()), "data_samples": [_sample([3, 9], seed0), _sample([2], seed1)]},
        True,
    )
    losses = m(**data, mode="loss")
    assert set(losses) == {"loss_act_fg", "loss_act_bg"}
    assert m.num_bg == 3 and m.prompt_learner.class_names[-1] == ""
    assert m._seed_positives(torch.stack([seed0, seed1])).nonzero().tolist() == [[0, 2]]
    sum(losses.values()).backward()
    grad = m.prompt_learner.ctx.grad
    assert grad[2].abs().sum() > 0  # class 3's own context (csc) receives gradient
    assert grad[8].abs().sum() == 0  # class 9 is absent from the seed crop: not a positive


def test_act_loss_without_any_positive_still_backpropagates(tiny_clip_cfg) -> None:
    m = _model(tiny_clip_cfg, cls_loss_weight=0.0, act_loss_weights=(1.0, 1.0),
               act_positives="seed")  # fmt: skip
    m.train()
    seeds = [torch.zeros(64, 96, dtype=torch.long)] * 2
    data = m.data_preprocessor(
        {"inputs": list(_inputs()), "data_samples": [_sample([1], s) for s in seeds]}, True
    )
    losses = m(**data, mode="loss")
    total = sum(losses.values())
    assert float(total.detach()) == 0.0
    total.backward()  # graph-connected zero


def test_predict_cams_match_reference(tiny_clip_cfg) -> None:
    caa = dict(sinkhorn_iters=1, power=2, box_thresh=0.4, apply_to="score")
    m = _model(tiny_clip_cfg, caa=caa, keep_raw_cam=True, save_att=True)
    m.eval()
    data = m.data_preprocessor(
        {"inputs": list(_inputs(1)), "data_samples": [_sample([2, 12])]}, False
    )
    with torch.no_grad():  # as mmengine's test loop
        (ds,) = m(**data, mode="predict")
    assert ds.cam.shape == (2, 4, 6) and ds.cam_raw.shape == (2, 4, 6)
    assert ds.fg_cls.tolist() == [2, 12] and ds.all_logit.shape == (20,)
    assert ds.att.shape == (24, 24) and ds.att.dtype == torch.float16

    enc, txt = m._frozen.image, m.text_features()
    feats = enc.forward_features(data["inputs"], att_layers=2)
    labels = torch.zeros(1, 20, dtype=torch.long)
    labels[0, [1, 11]] = 1
    ref = softmax_gradcam_loop(feats.act, m._head(feats, txt), labels, feats.grid)
    assert torch.allclose(ds.cam_raw, ref.cam, atol=1e-5 * float(ref.cam.abs().max()))
    assert torch.allclose(ds.fg_logit, ref.logits[0, [1, 11]].detach(), atol=1e-4)
    _, last = enc.last_block(feats.x_in, feats.act, need_weights=True)
    att = enc.merge_attention(feats.att, last, 2)[0]
    assert torch.allclose(ds.cam, caa_refine(ref.cam.detach(), att, **caa), atol=1e-4)


def test_text_features_are_cached_in_eval(tiny_clip_cfg) -> None:
    m = _model(tiny_clip_cfg)
    m.eval()
    a = m.text_features()
    assert m.text_features() is a
    with torch.no_grad():
        m.prompt_learner.ctx.add_(1.0)
    assert m.text_features() is not a  # the in-place update invalidates the cache
    m.train()
    assert m.text_features().requires_grad


def test_constructor_errors(tiny_clip_cfg) -> None:
    with pytest.raises(ValueError, match="act_positives"):
        _model(tiny_clip_cfg, act_positives="crop")
    with pytest.raises(ValueError, match="att_layers"):
        _model(tiny_clip_cfg, att_layers=0, caa=dict(box_thresh=0.4))
    with pytest.raises(ValueError, match="bg_prompts"):
        _model(tiny_clip_cfg, bg_prompts="none")
