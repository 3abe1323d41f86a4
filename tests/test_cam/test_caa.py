"""CAA refinement: hand-computed answers, and OpenCV / scipy references for the box masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fma.cam import (
    attention_to_affinity,
    box_mask,
    caa_refine,
    cam_to_score,
    component_boxes,
    propagate,
    quantize_threshold,
)


def test_attention_to_affinity_known_answer() -> None:
    att = torch.tensor([[1.0, 3.0], [1.0, 1.0]], dtype=torch.float64)
    # columns /[2, 4] -> [[.5, .75], [.5, .25]]; rows /[1.25, .75] -> [[.4, .6], [2/3, 1/3]]
    aff = attention_to_affinity(att, n_iters=1)
    off = (0.6 + 2 / 3) / 2
    assert torch.allclose(aff, torch.tensor([[0.4, off], [off, 1 / 3]], dtype=torch.float64))
    assert torch.allclose(attention_to_affinity(att, 0), (att + att.T) / 2)
    # many rounds converge to a doubly stochastic matrix before symmetrisation
    aff_many = attention_to_affinity(torch.rand(6, 6) + 0.1, n_iters=50)
    assert torch.allclose(aff_many.sum(0), torch.ones(6), atol=1e-4)
    assert attention_to_affinity(att.half(), 1).dtype == torch.float32


def test_quantize_threshold_known_answer() -> None:
    score = torch.tensor([[[0.1, 0.5, 0.999, 0.2]]])
    # u = [25, 127, 254, 51]; int(0.4 * 254) = 101 -> u > 101
    assert quantize_threshold(score, 0.4).tolist() == [[[False, True, True, False]]]
    # int(0.1 * 254) = 25 -> 25 is not > 25
    assert quantize_threshold(score, 0.1).tolist() == [[[False, True, True, True]]]
    assert not quantize_threshold(torch.zeros(1, 2, 2), 0.4).any()


def test_box_mask_known_answer_with_quirk() -> None:
    s = torch.zeros(1, 5, 6)
    s[0, 1, 1] = s[0, 2, 2] = 1.0  # diagonal neighbours: one 8-connected component
    s[0, 3:5, 4:6] = 1.0  # touches the bottom-right corner
    quirk = box_mask(s, 0.5, box_end_exclusive=True)[0].int()
    expected = torch.zeros(5, 6, dtype=torch.int32)
    expected[1:3, 1:3] = 1
    expected[3:4, 4:5] = 1  # end clipped to (H-1, W-1) and exclusive: one cell left
    assert torch.equal(quirk, expected)
    full = box_mask(s, 0.5, box_end_exclusive=False)[0].int()
    expected[3:5, 4:6] = 1
    assert torch.equal(full, expected)


def test_box_mask_hole_and_empty() -> None:
    s = torch.zeros(2, 6, 6)
    s[0, 1:5, 1:5] = 1.0
    s[0, 2:4, 2:4] = 0.0  # ring with a hole: the hole is covered by the outer box
    out = box_mask(s, 0.4, box_end_exclusive=False)
    assert out[0, 1:5, 1:5].all() and out[0].sum() == 16
    assert not out[1].any()  # no pixel above threshold -> empty mask


def test_component_boxes_matches_scipy() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    binary = rng.random((20, 9, 11)) > 0.6
    boxes = component_boxes(torch.from_numpy(binary)).numpy()
    for k in range(binary.shape[0]):
        lab, _ = ndimage.label(binary[k], structure=np.ones((3, 3)))
        for i, sl in enumerate(ndimage.find_objects(lab), start=1):
            ys, xs = np.nonzero(lab == i)
            want = [sl[0].start, sl[1].start, sl[0].stop - 1, sl[1].stop - 1]
            got = boxes[k, :, ys, xs]
            assert (got == np.asarray(want)[None]).all()


def _cv2_box_mask(score: np.ndarray, thresh: float) -> np.ndarray:
    """Literal port of FMA-WSSS ``scoremap2bbox`` + ``get_aff_mask`` box filling."""
    cv2 = pytest.importorskip("cv2")
    h, w = score.shape
    img = np.expand_dims((score * 255).astype(np.uint8), 2)
    _, binary = cv2.threshold(img, int(thresh * np.max(img)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    boxes = [[0, 0, 0, 0]]
    if len(contours):
        boxes = []
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            boxes.append([x, y, min(x + bw, w - 1), min(y + bh, h - 1)])
    m = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def test_box_mask_equals_opencv_contours() -> None:
    pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    for t in range(150):
        h, w = (int(v) for v in rng.integers(1, 18, size=2))
        s = rng.random((h, w)).astype(np.float32)
        if t % 3 == 0:  # smooth maps: larger blobs, holes
            s = (s + np.roll(s, 1, 0) + np.roll(s, 1, 1)) / 3
        s = (s - s.min()) / (s.max() - s.min() + 1e-7)
        thr = float(rng.choice([0.2, 0.4, 0.5, 0.6, 0.8]))
        ours = box_mask(torch.from_numpy(s)[None], thr)[0].numpy()
        assert np.array_equal(ours, _cv2_box_mask(s, thr)), (t, h, w, thr)


def test_propagate_known_answer() -> None:
    aff = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.5, 0.0],
                        [0.0, 0.0, 0.0, 1.0]])  # fmt: skip
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    mask = torch.tensor([[[True, False], [True, True]]])
    out = propagate(aff, mask, x, power=1)
    # sources (1, 0, 3, 4): row i -> sum_j A_ij src_j
    assert torch.allclose(out.flatten(), torch.tensor([0.5, 2.0, 1.5, 4.0]))
    out2 = propagate(aff, mask, x, power=2)
    a2 = aff @ aff
    src = torch.tensor([1.0, 0.0, 3.0, 4.0])
    assert torch.allclose(out2.flatten(), a2 @ src)


def _reference_caa(cam, att, n_iter, power, thresh, at):
    """Literal port of FMA-WSSS ``att_cam`` (att2aff, get_aff_mask 'in_bbox', aff_cam)."""
    score = cam_to_score(cam)
    aff = att
    for _ in range(n_iter):
        aff = aff / torch.sum(aff, dim=0, keepdim=True)
        aff = aff / torch.sum(aff, dim=1, keepdim=True)
    aff = (aff + aff.transpose(1, 0)) / 2
    p, h, w = score.shape
    mask = torch.stack([torch.from_numpy(_cv2_box_mask(s.numpy(), thresh)) for s in score]).float()
    mask = mask.view(p, h * w)
    inner = mask.view(p, h * w, 1) * mask.view(p, 1, -1)
    outer = (1 - mask.view(p, h * w, 1)) * mask.view(p, 1, -1)
    a_t = torch.linalg.matrix_power(aff, power)[None] * (inner + outer)
    src = score if at == "score" else cam
    return (a_t @ src.reshape(p, h * w, 1)).view(p, h, w)


@pytest.mark.parametrize(
    ("n_iter", "power", "thresh", "at"),
    [(1, 2, 0.4, "score"), (1, 2, 0.5, "cam"), (1, 2, 0.6, "cam"), (3, 1, 0.4, "cam")],
)
def test_caa_refine_matches_original(n_iter: int, power: int, thresh: float, at: str) -> None:
    pytest.importorskip("cv2")
    g = torch.Generator().manual_seed(3)
    h, w = 6, 7
    cam = torch.randn(3, h, w, generator=g, dtype=torch.float64)
    att = torch.rand(h * w, h * w, generator=g, dtype=torch.float64) ** 4
    got = caa_refine(cam, att, sinkhorn_iters=n_iter, power=power, box_thresh=thresh, apply_to=at)
    want = _reference_caa(cam, att, n_iter, power, thresh, at)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_caa_refine_empty_and_errors() -> None:
    att = torch.rand(12, 12)
    assert caa_refine(torch.zeros(0, 3, 4), att).shape == (0, 3, 4)
    with pytest.raises(ValueError, match="apply_to"):
        caa_refine(torch.zeros(1, 3, 4), att, apply_to="logit")
    with pytest.raises(ValueError, match="aff must be"):
        caa_refine(torch.zeros(1, 3, 5), att)
