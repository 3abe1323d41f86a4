"""Panels: exact palette colours, blending arithmetic, strip geometry, atomic PNG writing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from fma.datasets.meta import VOC12
from fma.io.label_maps import bitwise_palette
from fma.visualization import (
    IGNORE_COLOR,
    add_legend,
    class_legend,
    colorize,
    legend_layout,
    overlay,
    save_png,
    score_colormap,
    side_by_side,
    title_height,
)

PAL = bitwise_palette()
VOC_NAMES = VOC12.class_names


def test_colorize_voc_colours_and_ignore():
    label = np.array([[0, 1, 2], [15, 20, 255]], dtype=np.uint8)
    rgb = colorize(label, PAL)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    # VOC colour map: 0 black, 1 aeroplane (128,0,0), 2 bicycle (0,128,0), 15 person (192,128,128),
    # 20 tvmonitor (0,64,128); ignore is white (the palette's own 255 entry is not used).
    expected = [[[0, 0, 0], [128, 0, 0], [0, 128, 0]], [[192, 128, 128], [0, 64, 128], [255] * 3]]
    np.testing.assert_array_equal(rgb, expected)
    assert IGNORE_COLOR == (255, 255, 255)
    red = colorize(label, PAL, ignore_color=(1, 2, 3))
    np.testing.assert_array_equal(red[1, 2], [1, 2, 3])


def test_colorize_rejects_out_of_palette_and_bad_shape():
    with pytest.raises(ValueError, match="palette of 3 colours"):
        colorize(np.array([[0, 3]]), PAL[:3])
    with pytest.raises(ValueError, match="2-D"):
        colorize(np.zeros((1, 2, 3), dtype=np.uint8), PAL)
    with pytest.raises(ValueError, match="palette must have shape"):
        colorize(np.zeros((2, 2), dtype=np.uint8), np.zeros(6))


def test_overlay_label_alpha_arithmetic():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    label = np.array([[0, 1], [15, 255]], dtype=np.uint8)
    out = overlay(image, label, PAL, alpha=0.5)
    # 0.5 * 100 + 0.5 * colour: black -> 50, (128,0,0) -> (114,50,50),
    # (192,128,128) -> (146,114,114)
    np.testing.assert_array_equal(out[0, 0], [50, 50, 50])
    np.testing.assert_array_equal(out[0, 1], [114, 50, 50])
    np.testing.assert_array_equal(out[1, 0], [146, 114, 114])
    np.testing.assert_array_equal(out[1, 1], [100, 100, 100])  # ignore keeps the image
    out = overlay(image, label, PAL, alpha=0.25)
    np.testing.assert_array_equal(out[0, 1], [107, 75, 75])  # 75 + 32, 75 + 0
    np.testing.assert_array_equal(overlay(image, label, PAL, alpha=0.0), image)


def test_overlay_score_map():
    np.testing.assert_array_equal(
        score_colormap(np.array([[0.0, 0.5, 1.0, 2.0, np.nan]])),
        [[[0, 0, 128], [128, 255, 128], [128, 0, 0], [128, 0, 0], [0, 0, 128]]],
    )
    image = np.zeros((1, 2, 3), dtype=np.uint8)
    image[..., 0] = 200
    out = overlay(image, np.array([[0.0, 1.0]], dtype=np.float32), alpha=0.5)
    # (200,0,0) blended with (0,0,128) -> (100,0,64); with (128,0,0) -> (164,0,0)
    np.testing.assert_array_equal(out, [[[100, 0, 64], [164, 0, 0]]])
    grey = overlay(np.full((1, 1), 10, dtype=np.uint8), np.array([[1.0]]), alpha=1.0)
    np.testing.assert_array_equal(grey, [[[128, 0, 0]]])


def test_overlay_errors():
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="palette"):
        overlay(image, np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="differs"):
        overlay(image, np.zeros((2, 3), dtype=np.uint8), PAL)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, np.zeros((2, 2), dtype=np.uint8), PAL, alpha=1.5)


def test_side_by_side_geometry_and_padding():
    a = np.full((4, 3, 3), 10, dtype=np.uint8)
    b = np.full((6, 5, 3), 20, dtype=np.uint8)
    c = np.full((2, 2), 30, dtype=np.uint8)  # grey panel
    out = side_by_side([a, b, c], gap=4)
    assert out.shape == (6, 3 + 5 + 2 + 2 * 4, 3) and out.dtype == np.uint8
    assert (out[:4, 0:3] == 10).all() and (out[4:, 0:3] == 255).all()  # a padded below
    assert (out[:, 3:7] == 255).all()  # gap
    assert (out[:, 7:12] == 20).all()
    assert (out[:2, 16:18] == 30).all() and (out[2:, 16:18] == 255).all()
    assert side_by_side([a, b], gap=0).shape == (6, 8, 3)


def test_side_by_side_titles():
    a = np.zeros((10, 60, 3), dtype=np.uint8)
    out = side_by_side([a, a], titles=["image", "pred"], gap=2)
    top = title_height()
    assert top > 0
    assert out.shape == (10 + top, 122, 3)
    assert (out[top:, :60] == 0).all()  # panels untouched below the bar
    bar = out[:top]
    assert (bar[:, :60] < 128).any() and (bar[:, 62:] < 128).any()  # black text in each bar
    with pytest.raises(ValueError, match="titles"):
        side_by_side([a, a], titles=["one"])
    with pytest.raises(ValueError, match="at least one"):
        side_by_side([])


def test_save_png_roundtrip_atomic(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    path = tmp_path / "sub" / "x.png"
    save_png(path, rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]  # no temporary left behind
    with pytest.raises(ValueError, match="uint8"):
        save_png(tmp_path / "y.png", rgb.astype(np.float32))
    assert not (tmp_path / "y.png").exists()


def test_panel_image_resizes_and_falls_back_to_grey(tmp_path):
    from PIL import Image

    from fma.visualization import panel_image

    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).convert("L").save(tmp_path / "g.png")  # grey input becomes RGB
    out = panel_image(tmp_path / "g.png", (8, 12))
    assert out.shape == (8, 12, 3) and out.dtype == np.uint8
    assert np.all(out == out[0, 0]) and out[0, 0, 0] == out[0, 0, 1]
    (tmp_path / "bad.png").write_bytes(b"nope")
    assert np.all(panel_image(tmp_path / "bad.png", (2, 3)) == 128)
    assert panel_image(None, (2, 3)).shape == (2, 3, 3)


def test_legend_names_every_present_label_with_its_colour():
    a = np.array([[0, 15], [255, 15]], dtype=np.uint8)
    b = np.array([[0, 2], [2, 2]], dtype=np.uint8)
    panel = np.full((2, 300, 3), 7, np.uint8)
    out = add_legend(panel, [a, b], VOC_NAMES, PAL)
    texts = ["0 background", "2 bicycle", "15 person", "ignore"]  # sorted; 255 is "ignore"
    origins, swatch, height = legend_layout(texts, 300)
    assert out.shape == (2 + height, 300, 3) and np.array_equal(out[:2], panel)
    assert height == title_height() and [y for _, y in origins] == [3] * 4  # one row
    xs = [x for x, _ in origins]
    assert xs == sorted(xs) and xs[0] == 3
    for (x, y), colour in zip(origins, [PAL[0], PAL[2], PAL[15], IGNORE_COLOR], strict=True):
        np.testing.assert_array_equal(out[2 + y + swatch // 2, x + swatch // 2], colour)
        np.testing.assert_array_equal(out[2 + y, x], (0, 0, 0))  # outlined, so white shows
        name = out[2 + y : 2 + y + swatch, x + swatch + 3 : x + swatch + 20]
        assert (name.sum(axis=2) < 384).any()  # dark text right of the swatch


def test_legend_wraps_at_the_panel_width_and_shows_ids_without_names():
    texts = [str(v) for v in range(12)]
    origins, _, height = legend_layout(texts, 60)
    rows = sorted({y for _, y in origins})
    assert len(rows) > 1 and height == len(rows) * title_height()
    for (x, _), nxt in itertools.pairwise(origins):
        assert nxt[0] > x or nxt[0] == 3  # left to right, a new row starts at the left
    strip = class_legend(range(12), None, PAL, 60)
    assert strip.shape == (height, 60, 3)
    assert class_legend([], None, PAL, 60).shape == (0, 60, 3)
