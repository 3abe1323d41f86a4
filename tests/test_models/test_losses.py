"""Stage I losses: hand-computed answers, edge cases and a port of the original as reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fma.models.losses import (
    CAMActivationLoss,
    MultiLabelContrastiveLoss,
    cam_activation_loss,
    multilabel_contrastive_loss,
)


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


def _lse_loss(pos: float, negs: list[float]) -> float:
    return -math.log(math.exp(pos) / (math.exp(pos) + sum(math.exp(q) for q in negs)))


def test_contrastive_known_answer() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.5, 3.0, -1.0]])
    labels = torch.tensor([[1, 1, 0], [0, 1, 0]])
    a1, a2 = _lse_loss(2.0, [0.0]), _lse_loss(1.0, [0.0])
    b = _lse_loss(3.0, [0.5, -1.0])
    got = multilabel_contrastive_loss(logits, labels)
    assert math.isclose(_f(got), (a1 + a2 + b) / 3, rel_tol=1e-6)
    got_s = multilabel_contrastive_loss(logits, labels, reduction="sample_mean")
    assert math.isclose(_f(got_s), ((a1 + a2) / 2 + b) / 2, rel_tol=1e-6)
    got_scaled = multilabel_contrastive_loss(logits, labels, scale=2.0)
    want = (_lse_loss(4.0, [0.0]) + _lse_loss(2.0, [0.0]) + _lse_loss(6.0, [1.0, -2.0])) / 3
    assert math.isclose(_f(got_scaled), want, rel_tol=1e-6)


def test_contrastive_invalid_anchors_are_skipped() -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 5.0], [1.0, 1.0]], requires_grad=True)
    labels = torch.tensor([[1, 1], [0, 0], [1, 0]])  # only image 2 is a valid anchor
    got = multilabel_contrastive_loss(logits, labels)
    assert math.isclose(_f(got), _lse_loss(1.0, [1.0]), rel_tol=1e-6)
    got.backward()
    assert torch.equal(logits.grad[:2], torch.zeros(2, 2))


def test_contrastive_no_valid_anchor_is_zero_and_differentiable() -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 5.0]], requires_grad=True)
    labels = torch.tensor([[1, 1], [0, 0]])
    loss = multilabel_contrastive_loss(logits, labels)
    assert _f(loss) == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(2, 2))


def test_contrastive_stable_for_large_logits() -> None:
    logits = torch.tensor([[100.0, -100.0, 90.0]])
    labels = torch.tensor([[0, 1, 0]])
    loss = multilabel_contrastive_loss(logits, labels)
    assert math.isclose(_f(loss), 200.0 + math.log1p(math.exp(-10.0)), rel_tol=1e-6)


def _original_cl(s: torch.Tensor, lb: torch.Tensor, reduce: str) -> torch.Tensor:
    """Port of FMA-WSSS ``MultiLabelCLLoss.forward`` (gamma None)."""
    valid = torch.any(lb == 0, dim=1) & torch.any(lb == 1, dim=1)
    neg = (lb == 0) * valid[:, None]
    pos = (lb == 1) * valid[:, None]
    pi_a = torch.nonzero(pos, as_tuple=True)[0]
    pi_i = pos.sum(dim=1, dtype=torch.int32)[pi_a]
    e = torch.exp(s)
    sig = (e * neg).sum(dim=1)[pi_a]
    loss = -(s[pos] - torch.log(e[pos] + sig))
    return loss.mean() if reduce == "pos_mean" else (loss / pi_i).sum() / valid.sum()


@pytest.mark.parametrize("reduction", ["pos_mean", "sample_mean"])
def test_contrastive_matches_original(reduction: str) -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(8, 20, generator=g, dtype=torch.float64) * 5
    lb = (torch.rand(8, 20, generator=g) < 0.2).long()
    lb[0] = 0
    lb[1] = 1
    got = multilabel_contrastive_loss(s, lb, reduction=reduction)
    assert torch.allclose(got, _original_cl(s, lb, reduction), rtol=1e-12)


def test_contrastive_module_weight_and_errors() -> None:
    logits = torch.tensor([[2.0, 0.0]])
    labels = torch.tensor([[1, 0]])
    mod = MultiLabelContrastiveLoss(loss_weight=0.5)
    assert math.isclose(_f(mod(logits, labels)), 0.5 * _lse_loss(2.0, [0.0]), rel_tol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        MultiLabelContrastiveLoss(reduction="mean")
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        multilabel_contrastive_loss(logits, torch.ones(1, 3))


def test_cam_loss_known_answer() -> None:
    seeds = torch.tensor([[[0, 1, 1], [2, 255, 1]]])  # one image, 2x3
    cam = torch.tensor(
        [
            [[-1.0, 2.0, 3.0], [0.5, 9.0, 1.0]],  # class 1: F = {2, 3, 1}, B = {-1, .5}
            [[1.0, -2.0, 0.0], [4.0, 9.0, 0.5]],  # class 2: F = {4},       B = {1, -2, 0, .5}
        ],
        requires_grad=True,
    )
    fg, bg = cam_activation_loss(cam, torch.tensor([0, 0]), torch.tensor([1, 2]), seeds)
    n = 5 + 5  # ignore pixel excluded from both pairs
    fg_sum = (3 - 2) + (3 - 3) + (3 - 1) + (4 - 4)
    bg_sum = 0.5 + (1.0 + 0.5)
    assert math.isclose(_f(fg), fg_sum / n, rel_tol=1e-6)
    assert math.isclose(_f(bg), bg_sum / n, rel_tol=1e-6)
    (fg + bg).backward()
    # detached max: the max pixel itself gets no fg gradient; the ignored pixel none at all
    assert cam.grad[0, 0, 2] == 0 and cam.grad[0, 1, 1] == 0 and cam.grad[1, 1, 1] == 0
    assert math.isclose(_f(cam.grad[0, 0, 1]), -1 / n, rel_tol=1e-6)


def test_cam_loss_empty_foreground_and_bg_thresh() -> None:
    seeds = torch.zeros(1, 2, 2, dtype=torch.long)  # class 3 absent from the crop
    cam = torch.tensor([[[0.2, -0.5], [0.7, 0.1]]])
    fg, bg = cam_activation_loss(cam, torch.tensor([0]), torch.tensor([3]), seeds)
    assert _f(fg) == 0.0
    assert math.isclose(_f(bg), (0.2 + 0.7 + 0.1) / 4, rel_tol=1e-6)
    _, bg_t = cam_activation_loss(cam, torch.tensor([0]), torch.tensor([3]), seeds, bg_thresh=0.15)
    assert math.isclose(_f(bg_t), (0.05 + 0.55) / 4, rel_tol=1e-5)


def test_cam_loss_negative_fg_max_clamped_to_zero() -> None:
    seeds = torch.tensor([[[1, 1]]])
    cam = torch.tensor([[[-1.0, -3.0]]])
    fg, bg = cam_activation_loss(cam, torch.tensor([0]), torch.tensor([1]), seeds)
    assert math.isclose(_f(fg), (1.0 + 3.0) / 2, rel_tol=1e-6) and _f(bg) == 0.0


def test_cam_loss_all_ignore_and_no_pairs_are_zero() -> None:
    cam = torch.randn(2, 2, 2, requires_grad=True)
    seeds = torch.full((1, 2, 2), 255)
    fg, bg = cam_activation_loss(cam, torch.tensor([0, 0]), torch.tensor([1, 2]), seeds)
    assert _f(fg) == 0.0 and _f(bg) == 0.0
    (fg + bg).backward()
    assert torch.equal(cam.grad, torch.zeros(2, 2, 2))
    empty = torch.zeros(0, 2, 2, requires_grad=True)
    fg0, bg0 = cam_activation_loss(
        empty, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), seeds
    )
    assert _f(fg0) == 0.0 and _f(bg0) == 0.0
    (fg0 + bg0).backward()


def test_cam_loss_upsamples_bilinearly() -> None:
    cam = torch.tensor([[[0.0, 4.0]]])  # (1, 1, 2) -> (1, 1, 4) = [0, 1, 3, 4]
    seeds = torch.tensor([[[0, 0, 1, 1]]])
    fg, bg = cam_activation_loss(cam, torch.tensor([0]), torch.tensor([1]), seeds)
    assert math.isclose(_f(fg), 1.0 / 4, rel_tol=1e-6)
    assert math.isclose(_f(bg), 1.0 / 4, rel_tol=1e-6)


def _original_cam_lb(cam, fg_cls_lb, lb, loss_type, reduce, eps=1e-5, bg_thresh=0.0):
    """Port of FMA-WSSS ``CAMIntensityLoss.forward`` (final version)."""
    if cam.shape[1:] != lb.shape[1:]:
        cam = F.interpolate(cam[:, None], size=lb.shape[1:], mode="bilinear", align_corners=False)[
            :, 0
        ]
    bt, cls = torch.nonzero(fg_cls_lb, as_tuple=True)
    plb = lb[bt]
    fgm = plb == (cls + 1)[:, None, None]
    bgm = (~fgm & (plb != 255)).to(cam.dtype)
    fgm = fgm.to(cam.dtype)
    fgn, bgn = fgm.sum(dim=(1, 2)), bgm.sum(dim=(1, 2))
    fgc, bgc = cam * fgm, cam * bgm
    mx = torch.maximum(torch.amax(fgc, dim=(1, 2), keepdim=True), torch.tensor(0.0)).detach()
    f1 = mx - fgc
    b1 = torch.maximum(bgc, torch.tensor(bg_thresh)) - bg_thresh
    fl, bl = (f1.abs(), b1.abs()) if loss_type == "l1" else (0.5 * f1**2, 0.5 * b1**2)
    fl, bl = fl * fgm, bl * bgm
    if reduce == "all":
        n = fgn.sum() + bgn.sum()
        return fl.sum() / n, bl.sum() / n
    if reduce == "fg-bg":
        return 0.5 * fl.sum() / (fgn.sum() + eps), 0.5 * bl.sum() / (bgn.sum() + eps)
    return (
        (0.5 * fl.sum(dim=(1, 2)) / (fgn + eps)).mean(),
        (0.5 * bl.sum(dim=(1, 2)) / (bgn + eps)).mean(),
    )


@pytest.mark.parametrize("loss_type", ["l1", "l2"])
@pytest.mark.parametrize("reduce", ["all", "fg-bg", "fg-bg-per-pos"])
def test_cam_loss_matches_original(loss_type: str, reduce: str) -> None:
    g = torch.Generator().manual_seed(1)
    n, f = 3, 5
    fg_lb = torch.zeros(n, f, dtype=torch.long)
    fg_lb[0, [1, 3]] = 1
    fg_lb[2, [0, 1, 4]] = 1
    seeds = torch.randint(0, f + 1, (n, 12, 16), generator=g)
    seeds[torch.rand(n, 12, 16, generator=g) < 0.1] = 255
    pos = int(fg_lb.sum())
    cam = torch.randn(pos, 3, 4, generator=g, dtype=torch.float64)
    bt, cls = torch.nonzero(fg_lb, as_tuple=True)
    got = cam_activation_loss(cam, bt, cls + 1, seeds, loss_type=loss_type, reduce=reduce)
    want = _original_cam_lb(cam, fg_lb, seeds, loss_type, reduce)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=1e-12)


def test_cam_loss_module_weights_and_errors() -> None:
    seeds = torch.tensor([[[1, 0]]])
    cam = torch.tensor([[[1.0, 2.0]]])
    mod = CAMActivationLoss(fg_weight=2.0, bg_weight=0.5)
    out = mod(cam, torch.tensor([0]), torch.tensor([1]), seeds)
    assert set(out) == {"loss_act_fg", "loss_act_bg"}
    assert _f(out["loss_act_fg"]) == 0.0
    assert math.isclose(_f(out["loss_act_bg"]), 0.5 * 2.0 / 2, rel_tol=1e-6)
    with pytest.raises(ValueError, match="reduce"):
        CAMActivationLoss(reduce="mean")
    with pytest.raises(ValueError, match="image indices"):
        cam_activation_loss(cam, torch.tensor([0, 0]), torch.tensor([1]), seeds)
