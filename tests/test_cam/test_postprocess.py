"""CAM post-processing: known answers on hand-built arrays."""

from __future__ import annotations

import pytest
import torch

from fma.cam import (
    align_size,
    bg_power_scores,
    cam_to_label,
    cam_to_score,
    fuse_cams,
    min_max_normalize,
    resize_cams,
    scaled_aligned_size,
)


def test_align_size_rounds_up() -> None:
    assert align_size(375, 500) == (384, 512)
    assert align_size(224, 224) == (224, 224)
    assert align_size(1, 17, 16) == (16, 32)
    with pytest.raises(ValueError):
        align_size(0, 10)


def test_scaled_aligned_size_known_answers() -> None:
    # ceil(scale * side / 16) * 16, as CLIP-ES's multi-scale sizes
    assert scaled_aligned_size(384, 512, 1.0) == (384, 512)
    assert scaled_aligned_size(384, 512, 0.5) == (192, 256)
    assert scaled_aligned_size(384, 512, 1.5) == (576, 768)
    assert scaled_aligned_size(384, 512, 2.0) == (768, 1024)
    assert scaled_aligned_size(48, 80, 0.5) == (32, 48)  # 24 -> 32, 40 -> 48
    assert scaled_aligned_size(48, 80, 0.75) == (48, 64)  # 36 -> 48, 60 -> 64
    assert scaled_aligned_size(16, 16, 0.1) == (16, 16)  # never below one patch
    assert scaled_aligned_size(400, 400, 2.2) == (880, 880)  # 880.0000000000001 counts as 880
    with pytest.raises(ValueError, match="scale"):
        scaled_aligned_size(16, 16, 0.0)


def test_min_max_normalize_known_answer() -> None:
    x = torch.tensor([[[-1.0, 0.0], [1.0, 3.0]]])
    y = min_max_normalize(x, eps=0.0)  # ReLU first: [0, 0, 1, 3]
    assert torch.allclose(y, torch.tensor([[[0.0, 0.0], [1 / 3, 1.0]]]))
    y2 = min_max_normalize(x, eps=0.0, clamp_min=None)
    assert torch.allclose(y2, torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]))
    # all-zero map stays zero thanks to eps
    assert torch.equal(min_max_normalize(torch.zeros(1, 2, 2)), torch.zeros(1, 2, 2))


def test_cam_to_score_resizes_first() -> None:
    cam = torch.tensor([[[0.0, 2.0]]])  # (1, 1, 2)
    s = cam_to_score(cam, size=(1, 4), eps=0.0)
    # bilinear, align_corners=False: [0, 0.5, 1.5, 2] -> / 2
    assert torch.allclose(s, torch.tensor([[[0.0, 0.25, 0.75, 1.0]]]))


def test_bg_power_scores() -> None:
    score = torch.tensor([[[0.0, 0.5]], [[0.2, 1.0]]])
    out = bg_power_scores(score, gamma=2.0)
    assert torch.allclose(out[0], torch.tensor([[(1 - 0.2) ** 2, 0.0]]))
    assert torch.equal(out[1:], score)
    empty = bg_power_scores(torch.zeros(0, 2, 3), gamma=3.0)
    assert torch.equal(empty, torch.ones(1, 2, 3))


def test_cam_to_label_known_answer() -> None:
    cam = torch.tensor(
        [
            [[4.0, 0.0, 0.0], [0.0, -1.0, 1.0]],  # class 3
            [[0.0, 0.0, 2.0], [0.0, 0.0, 2.0]],  # class 7
        ]
    )
    lab = cam_to_label(cam, torch.tensor([3, 7]), gamma=1.0, eps=0.0)
    # scores: c3 = [[1,0,0],[0,0,.25]], c7 = [[0,0,1],[0,0,1]]; bg = 1 - max
    assert lab.tolist() == [[3, 0, 7], [0, 0, 7]]
    lab_low = cam_to_label(cam * 0 + torch.tensor([[[0.5]], [[0.0]]]), torch.tensor([3, 7]))
    assert lab_low.tolist() == [[0, 0, 0], [0, 0, 0]]  # flat CAMs normalise to 0 -> background
    with pytest.raises(ValueError):
        cam_to_label(cam, torch.tensor([3]))


def test_cam_to_label_gamma_moves_background() -> None:
    cam = torch.tensor([[[0.0, 0.3, 1.0]]])
    fg = torch.tensor([5])
    assert cam_to_label(cam, fg, gamma=1.0, eps=0.0).tolist() == [[0, 0, 5]]  # 0.3 < 0.7
    assert cam_to_label(cam, fg, gamma=4.0, eps=0.0).tolist() == [[0, 5, 5]]  # 0.7**4 = 0.24


def test_resize_cams() -> None:
    cam = torch.arange(6.0).reshape(1, 2, 3)
    assert resize_cams(cam, (2, 3)) is cam
    assert resize_cams(cam, (4, 6)).shape == (1, 4, 6)
    assert resize_cams(torch.zeros(0, 2, 3), (5, 5)).shape == (0, 5, 5)
    near = resize_cams(cam, (4, 6), mode="nearest")
    assert near[0, ::2, ::2].tolist() == cam[0].tolist()


def test_fuse_cams_flip_and_mean() -> None:
    a = torch.tensor([[[1.0, 2.0]]])
    b = torch.tensor([[[2.0, 1.0]]])  # computed on a flipped image: flipped back = [1, 2]
    out = fuse_cams([a, b], size=(1, 2), flipped=[False, True], reduce="mean")
    assert torch.equal(out, a)
    summed = fuse_cams([a, -a], size=(1, 2), relu=True)
    assert torch.equal(summed, a)
    with pytest.raises(ValueError):
        fuse_cams([a, torch.zeros(2, 1, 2)], size=(1, 2))
