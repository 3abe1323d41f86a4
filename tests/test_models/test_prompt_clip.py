"""PromptCLIP on the tiny CLIP: modes, losses, gradients, state dict, CAM outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement
from oracle_gradcam import softmax_gradcam_loop

from fma.cam import caa_refine
from fma.models import PromptCLIP
from fma.models.losses import multilabel_contrastive_loss
from fma.models.prompt_clip import tta_settings


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


@pytest.mark.parametrize("task", ["cls", "act"])
def test_sub_batches_match_the_original_accumulation(tiny_clip_cfg, task: str) -> None:
    """sub_batches=2 on 4 images gives the loss and gradient of the original's loop: two
    sub-batches of 2 images, each normalised on its own, backward of loss / 2 each, one step.
    The whole batch at once weights the images differently."""
    kw = {"sub_batches": 2}
    if task == "act":
        kw.update(cls_loss_weight=0.0, act_loss_weights=(1.0, 1.0), act_positives="seed")
    seeds = [torch.zeros(64, 96, dtype=torch.long) for _ in range(4)]
    for i, (cls, box) in enumerate([(3, 10), (3, 30), (9, 5), (12, 40)]):
        seeds[i][box : box + 20, 10 : 10 + 2 * box] = cls
    seeds[0][:8, 60:] = 9  # 3 positive pairs in the first sub-batch, 2 in the second
    samples = [_sample([3, 9, 12]), _sample([3]), _sample([9]), _sample([12, 1])]
    for ds, seed in zip(samples, seeds, strict=True):
        ds.seed = seed
    models = {k: _model(tiny_clip_cfg, **{**kw, "sub_batches": k}) for k in (1, 2)}
    data = models[1].data_preprocessor({"inputs": list(_inputs(4)), "data_samples": samples}, True)
    grads, totals = {}, {}
    for k, m in models.items():
        m.train()
        total = sum(m(**data, mode="loss").values())
        total.backward()
        totals[k], grads[k] = total.detach(), m.prompt_learner.ctx.grad.clone()
    ref = _model(tiny_clip_cfg, **{**kw, "sub_batches": 1})  # the original's loop
    ref.train()
    ref_total = 0.0
    for part in (slice(0, 2), slice(2, 4)):
        loss = sum(ref(data["inputs"][part], samples[part], mode="loss").values()) / 2
        loss.backward()  # gradients accumulate over the sub-batches
        ref_total += float(loss.detach())
    assert float(totals[2]) == pytest.approx(ref_total, rel=1e-5)
    torch.testing.assert_close(grads[2], ref.prompt_learner.ctx.grad, rtol=1e-4, atol=1e-7)
    assert abs(float(totals[1]) - ref_total) > 1e-3 * abs(ref_total)


def test_sub_batches_validation_and_small_batches(tiny_clip_cfg) -> None:
    with pytest.raises(ValueError, match="sub_batches must be an int >= 1"):
        _model(tiny_clip_cfg, sub_batches=0)
    m, one = _model(tiny_clip_cfg, sub_batches=8), _model(tiny_clip_cfg)
    m.train(), one.train()
    samples = [_sample([1]), _sample([2, 5])]
    data = m.data_preprocessor({"inputs": list(_inputs(2)), "data_samples": samples}, True)
    got = m(**data, mode="loss")["loss_cls"].detach()  # 2 images, 8 sub-batches: one part per image
    want = sum(one(data["inputs"][i : i + 1], samples[i : i + 1], mode="loss")["loss_cls"]
               for i in range(2)) / 2  # fmt: skip
    assert float(got) == pytest.approx(float(want.detach()), rel=1e-6)


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


def test_conversions_reach_the_frozen_clip_buffers(tiny_clip_cfg) -> None:
    # .to(device) / .double() replace CLIP's buffers (the text attention mask); the text encoder
    # must see the converted ones, or a GPU run mixes devices.
    m = _model(tiny_clip_cfg)
    m.eval()
    want = m.text_features()
    m.double()
    assert m.clip.attn_mask.dtype == torch.float64
    assert m._frozen.text.attn_mask is m.clip.attn_mask
    assert m.clip.visual.conv1.weight.dtype == torch.float64
    got = m.text_features()
    assert got.dtype == torch.float64 and torch.allclose(got.float(), want, atol=1e-5)


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


# ---------------------------------------------------------------------- test-time augmentation
def _predict(m: PromptCLIP, inputs: torch.Tensor, labels: list[int]) -> BaseDataElement:
    with torch.no_grad():  # as mmengine's test loop
        (ds,) = m.predict(inputs, [_sample(labels)])
    return ds


def _lab(*ids: int) -> torch.Tensor:
    labels = torch.zeros(1, 20, dtype=torch.long)
    labels[0, [i - 1 for i in ids]] = 1
    return labels


def _normalised(m: PromptCLIP) -> torch.Tensor:
    data = m.data_preprocessor({"inputs": list(_inputs(1)), "data_samples": [_sample([2])]}, False)
    return data["inputs"]


def test_tta_single_scale_without_flip_equals_plain(tiny_clip_cfg) -> None:
    caa = dict(sinkhorn_iters=1, power=2, box_thresh=0.4, apply_to="score")
    m = _model(tiny_clip_cfg, caa=caa, keep_raw_cam=True, save_att=True)
    m.eval()
    x = _normalised(m)
    plain = _predict(m, x, [2, 12])
    m.tta = tta_settings(dict(scales=(1.0,), flip=False))
    tta = _predict(m, x, [2, 12])
    for key in ("cam", "cam_raw", "fg_cls", "fg_logit", "all_logit", "att"):
        assert torch.equal(getattr(tta, key), getattr(plain, key)), key


def test_tta_flip_equals_hand_computation(tiny_clip_cfg) -> None:
    caa = dict(sinkhorn_iters=1, power=2, box_thresh=0.5, apply_to="cam")
    m = _model(tiny_clip_cfg, caa=caa, keep_raw_cam=True, save_att=True)
    m.eval()
    x = _normalised(m)
    plain = _predict(m, x, [2, 12])
    mirrored = _predict(m, x.flip(-1), [2, 12])
    m.tta = tta_settings(dict(scales=(1.0,), flip=True))
    tta = _predict(m, x, [2, 12])
    want = plain.cam_raw + mirrored.cam_raw.flip(-1)
    assert not torch.allclose(plain.cam_raw, want)  # the flipped view does contribute
    scale = float(want.abs().max())
    assert torch.allclose(tta.cam_raw, want, rtol=0, atol=1e-6 * scale)
    # CAA once, on the fused CAM, with the attention of the unflipped input.
    assert torch.equal(tta.att, plain.att)
    _, att = m._view_cams(x, _lab(2, 12), 2)  # full-precision attention (ds.att is float16)
    assert torch.allclose(tta.cam, caa_refine(want, att[0], **caa), rtol=0, atol=1e-5 * scale)
    assert torch.equal(tta.fg_logit, plain.fg_logit)
    assert torch.equal(tta.all_logit, plain.all_logit)


@pytest.mark.parametrize(
    ("scales", "reduce"), [((1.0, 0.5, 1.5, 2.0), "sum"), ((0.5, 1.5), "mean")]
)
def test_tta_multiscale_equals_brute_force(tiny_clip_cfg, scales, reduce) -> None:
    m = _model(tiny_clip_cfg, keep_raw_cam=True)
    m.eval()
    x = _normalised(m)  # 64 x 96 -> grid 4 x 6
    sizes = {1.0: (64, 96), 0.5: (32, 48), 1.5: (96, 144), 2.0: (128, 192)}
    want = torch.zeros(2, 4, 6)
    for s in scales:
        xs = x
        if s != 1.0:
            xs = F.interpolate(x, size=sizes[s], mode="bicubic", align_corners=False,
                               antialias=True)  # fmt: skip
        for flip in (False, True):
            cam = _predict(m, xs.flip(-1) if flip else xs, [2, 12]).cam
            cam = F.interpolate(cam[None], size=(4, 6), mode="bilinear", align_corners=False)[0]
            want += cam.flip(-1) if flip else cam
    if reduce == "mean":
        want /= 2 * len(scales)
    plain = _predict(m, x, [2, 12])
    m.tta = tta_settings(dict(scales=scales, flip=True, reduce=reduce))
    tta = _predict(m, x, [2, 12])
    assert tta.cam.shape == (2, 4, 6) and torch.equal(tta.cam, tta.cam_raw)
    assert torch.allclose(tta.cam, want, rtol=0, atol=1e-5 * float(want.abs().max()))
    # Logits are those of the plain (scale 1.0, unflipped) input, even when 1.0 is not a scale
    # (then from a separate forward with one row instead of one per positive: float tolerance).
    assert torch.allclose(tta.fg_logit, plain.fg_logit, rtol=0, atol=1e-5)
    assert torch.allclose(tta.all_logit, plain.all_logit, rtol=0, atol=1e-5)
    if 1.0 in scales:
        assert torch.equal(tta.all_logit, plain.all_logit)


def test_tta_settings_and_errors(tiny_clip_cfg) -> None:
    assert tta_settings(None) is None and tta_settings(False) is None
    assert tta_settings(True) == {"scales": (1.0, 0.5, 1.5, 2.0), "flip": True, "reduce": "sum"}
    assert tta_settings({"scales": [2, 1]}) == {"scales": (2.0, 1.0), "flip": True,
                                                 "reduce": "sum"}  # fmt: skip
    with pytest.raises(ValueError, match="unknown tta keys"):
        tta_settings({"scale": (1.0,)})
    with pytest.raises(ValueError, match="reduce"):
        tta_settings({"reduce": "max"})
    with pytest.raises(ValueError, match="positive"):
        tta_settings({"scales": (1.0, 0.0)})
    caa = dict(box_thresh=0.4)
    with pytest.raises(ValueError, match=r"lack 1\.0.*CAA"):
        _model(tiny_clip_cfg, caa=caa, tta=dict(scales=(0.5, 2.0)))
    m = _model(tiny_clip_cfg, caa=caa, tta=True)
    assert m.tta == tta_settings(True)
    _model(tiny_clip_cfg, caa=None, tta=dict(scales=(0.5, 2.0)))  # fine without CAA


def test_gradcam_batchings_give_the_same_losses_and_gradients(tiny_clip_cfg) -> None:
    seed = torch.zeros(64, 96, dtype=torch.long)
    seed[10:30, 20:50] = 3
    seed[40:60, 50:90] = 9
    results = {}
    for batching in ("func", "rows", "vmap"):
        m = _model(tiny_clip_cfg, cls_loss_weight=1.0, act_loss_weights=(1.0, 1.0),
                   gradcam_batching=batching)  # fmt: skip
        m.train()
        samples = [_sample([3, 9, 15], seed), _sample([], seed), _sample([9], seed)]
        data = m.data_preprocessor({"inputs": list(_inputs(3)), "data_samples": samples}, True)
        losses = m(**data, mode="loss")
        sum(losses.values()).backward()
        results[batching] = ({k: float(v) for k, v in losses.items()},
                             m.prompt_learner.ctx.grad.clone())  # fmt: skip
    ref_losses, ref_grad = results["rows"]
    assert set(ref_losses) == {"loss_cls", "loss_act_fg", "loss_act_bg"}
    assert ref_grad.abs().max() > 0
    for batching in ("func", "vmap"):
        losses, grad = results[batching]
        assert losses == pytest.approx(ref_losses, rel=1e-5), batching
        assert torch.allclose(grad, ref_grad, atol=1e-4 * float(ref_grad.abs().max())), batching
    with pytest.raises(ValueError, match="gradcam_batching"):
        _model(tiny_clip_cfg, gradcam_batching="loop")
