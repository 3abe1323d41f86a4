"""Image panels for inspecting labels and scores: colouring, overlays, side-by-side strips.

numpy + PIL only. Conventions: images are (H, W, 3) uint8 RGB; label maps are (H, W) integer
arrays coloured through a dataset palette, with the ignore label (255) drawn in
:data:`IGNORE_COLOR` (white); score maps are (H, W) floats in [0, 1] coloured with a built-in
jet-like colormap (:func:`score_colormap`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fma.io.atomic import write_bytes_atomic

__all__ = [
    "BACKGROUND_COLOR",
    "IGNORE_COLOR",
    "add_legend",
    "class_legend",
    "colorize",
    "legend_layout",
    "overlay",
    "panel_image",
    "save_png",
    "score_colormap",
    "side_by_side",
    "title_height",
]

#: Colour of ignore pixels (label 255) in :func:`colorize`.
IGNORE_COLOR = (255, 255, 255)
#: Colour of the gaps, padding and title bars of :func:`side_by_side`.
BACKGROUND_COLOR = (255, 255, 255)
_TITLE_COLOR = (0, 0, 0)


def _as_palette(palette: np.ndarray) -> np.ndarray:
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3 or pal.shape[0] == 0:
        raise ValueError(f"palette must have shape (N, 3), got {pal.shape}")
    return pal.astype(np.uint8)


def colorize(
    label: np.ndarray,
    palette: np.ndarray,
    *,
    ignore_index: int = 255,
    ignore_color: tuple[int, int, int] = IGNORE_COLOR,
) -> np.ndarray:
    """Colour a label map.

    Args:
        label: (H, W) integer label map.
        palette: (N, 3) uint8 colours; label ``i`` gets ``palette[i]``.
        ignore_index: label drawn in ``ignore_color`` instead of its palette colour.
        ignore_color: RGB colour of ignore pixels (white by default).

    Returns:
        (H, W, 3) uint8 RGB image.

    Raises:
        ValueError: not 2-D, or a label (other than ignore) outside the palette.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label map must be 2-D (H, W), got shape {label.shape}")
    pal = _as_palette(palette)
    ignore = label == ignore_index
    idx = np.where(ignore, 0, label).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= len(pal)):
        raise ValueError(
            f"label values {int(idx.min())}..{int(idx.max())} do not fit a palette of "
            f"{len(pal)} colours"
        )
    rgb = pal[idx]
    rgb[ignore] = np.asarray(ignore_color, dtype=np.uint8)
    return rgb


def score_colormap(score: np.ndarray) -> np.ndarray:
    """Colour an (H, W) float score map with a jet-like colormap: (H, W, 3) uint8.

    Scores are clipped to [0, 1] (NaN counts as 0). Channel ``k`` (r, g, b) is
    ``clip(1.5 - |4 s - c_k|, 0, 1) * 255`` rounded, with centres ``c = (3, 2, 1)``:
    0 -> dark blue (0, 0, 128), 0.5 -> (128, 255, 128), 1 -> dark red (128, 0, 0).
    """
    s = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0)
    s = np.clip(s, 0.0, 1.0)[..., None]
    centres = np.array([3.0, 2.0, 1.0])
    rgb = np.clip(1.5 - np.abs(4.0 * s - centres), 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"image must have shape (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got dtype {img.dtype}")
    return img[..., :3]


def overlay(
    image: np.ndarray,
    label_or_score: np.ndarray,
    palette: np.ndarray | None = None,
    alpha: float = 0.5,
    *,
    ignore_index: int = 255,
) -> np.ndarray:
    """Blend a label map or a score map over an image.

    ``out = round((1 - alpha) * image + alpha * colour)`` per channel.

    Args:
        image: (H, W, 3) uint8 RGB (greyscale (H, W) is repeated to RGB).
        label_or_score: (H, W) integer label map, coloured by ``palette`` (ignore pixels keep the
            image unchanged), or (H, W) float score map in [0, 1], coloured by
            :func:`score_colormap`.
        palette: (N, 3) uint8 colours; required for a label map.
        alpha: weight of the colour, 0..1.
        ignore_index: label left uncoloured.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    img = _as_rgb(image)
    m = np.asarray(label_or_score)
    if m.shape != img.shape[:2]:
        raise ValueError(f"map shape {m.shape} differs from image size {img.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    keep = np.zeros(m.shape, dtype=bool)
    if np.issubdtype(m.dtype, np.floating):
        colour = score_colormap(m)
    elif np.issubdtype(m.dtype, np.integer) or m.dtype == bool:
        if palette is None:
            raise ValueError("overlaying a label map needs a palette")
        keep = m == ignore_index
        colour = colorize(m.astype(np.int64), palette, ignore_index=ignore_index)
    else:
        raise ValueError(f"map dtype {m.dtype} is neither integer (labels) nor float (scores)")
    out = (1.0 - alpha) * img.astype(np.float64) + alpha * colour.astype(np.float64)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    out[keep] = img[keep]
    return out


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def title_height() -> int:
    """Height in pixels of the title bar :func:`side_by_side` adds when given titles."""
    bottom = _font().getbbox("Ag|")[3]
    return int(bottom) + 6


def side_by_side(
    panels: Sequence[np.ndarray], titles: Sequence[str] | None = None, gap: int = 4
) -> np.ndarray:
    """Place images left to right with ``gap`` background pixels between them.

    Args:
        panels: (H_i, W_i, 3) uint8 RGB or (H_i, W_i) uint8 grey images; shorter panels are
            padded at the bottom with the background colour (white).
        titles: optional text per panel, drawn in black with PIL's default font in a white bar
            of :func:`title_height` pixels above the panels (text wider than its panel is cut).
        gap: pixels between neighbouring panels.

    Returns:
        (H, W_total, 3) uint8 with ``H = max(H_i)`` (plus the title bar when titles are given)
        and ``W_total = sum(W_i) + gap * (len(panels) - 1)``.
    """
    if not panels:
        raise ValueError("side_by_side needs at least one panel")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    rgbs = [_as_rgb(p) for p in panels]
    if titles is not None and len(titles) != len(rgbs):
        raise ValueError(f"{len(titles)} titles for {len(rgbs)} panels")
    top = title_height() if titles is not None else 0
    height = max(p.shape[0] for p in rgbs)
    width = sum(p.shape[1] for p in rgbs) + gap * (len(rgbs) - 1)
    canvas = np.empty((top + height, width, 3), dtype=np.uint8)
    canvas[:] = np.asarray(BACKGROUND_COLOR, dtype=np.uint8)
    x = 0
    starts = []
    for p in rgbs:
        canvas[top : top + p.shape[0], x : x + p.shape[1]] = p
        starts.append(x)
        x += p.shape[1] + gap
    if titles is not None:
        font = _font()
        for p, x0, text in zip(rgbs, starts, titles, strict=True):
            bar = Image.new("RGB", (p.shape[1], top), BACKGROUND_COLOR)
            ImageDraw.Draw(bar).text((2, 2), str(text), fill=_TITLE_COLOR, font=font)
            canvas[:top, x0 : x0 + p.shape[1]] = np.asarray(bar)
    return canvas


#: Padding (pixels) around a legend entry's swatch; the swatch is ``title_height() - 2 * pad``.
_LEGEND_PAD = 3


def _legend_name(value: int, class_names: Sequence[str] | None, ignore_index: int) -> str:
    if value == ignore_index:
        return "ignore"
    if class_names is not None and 0 <= value < len(class_names):
        return f"{value} {class_names[value]}"
    return str(value)


def legend_layout(texts: Sequence[str], width: int) -> tuple[list[tuple[int, int]], int, int]:
    """Where :func:`class_legend` puts its entries: left to right, wrapped at ``width``.

    Returns:
        ``(origins, swatch, height)``: the (x, y) top-left corner of each entry's square
        swatch (``swatch`` pixels wide, a 1-pixel black outline included; its name follows on
        the right), and the legend's height in pixels.
    """
    font, row = _font(), title_height()
    swatch = row - 2 * _LEGEND_PAD
    origins, x, y = [], 0, 0
    for text in texts:
        entry = _LEGEND_PAD + swatch + 3 + int(font.getlength(str(text))) + 2 * _LEGEND_PAD
        if x > 0 and x + entry > width:
            x, y = 0, y + row
        origins.append((x + _LEGEND_PAD, y + _LEGEND_PAD))
        x += entry
    return origins, swatch, (y + row if texts else 0)


def class_legend(
    labels: Sequence[int],
    class_names: Sequence[str] | None,
    palette: np.ndarray,
    width: int,
    *,
    ignore_index: int = 255,
) -> np.ndarray:
    """A colour -> class name key of ``labels``: (h, width, 3) uint8, white background.

    Each entry is a swatch of the label's colour (as :func:`colorize` draws it; the ignore label
    in :data:`IGNORE_COLOR`, named ``ignore``) with a black outline, then ``"<id> <name>"``.
    """
    pal = _as_palette(palette)
    values = [int(v) for v in labels]
    texts = [_legend_name(v, class_names, ignore_index) for v in values]
    origins, swatch, height = legend_layout(texts, width)
    strip = Image.new("RGB", (max(width, 1), max(height, 0)), BACKGROUND_COLOR)
    draw = ImageDraw.Draw(strip)
    font = _font()
    for v, text, (x, y) in zip(values, texts, origins, strict=True):
        colour = IGNORE_COLOR if v == ignore_index else tuple(int(c) for c in pal[v])
        draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=colour, outline=(0, 0, 0))
        draw.text((x + swatch + 3, y - 1), text, fill=_TITLE_COLOR, font=font)
    return np.asarray(strip)[:height, :width]


def add_legend(
    panel: np.ndarray,
    label_maps: Sequence[np.ndarray],
    class_names: Sequence[str] | None,
    palette: np.ndarray,
    *,
    ignore_index: int = 255,
) -> np.ndarray:
    """``panel`` with a :func:`class_legend` of every label present in ``label_maps`` below it.

    Returns:
        (H + h, W, 3) uint8: the panel unchanged on top, the legend strip under it.
    """
    img = _as_rgb(panel)
    present = sorted(set().union(*(np.unique(np.asarray(m)).tolist() for m in label_maps)))
    legend = class_legend(present, class_names, palette, img.shape[1], ignore_index=ignore_index)
    return np.concatenate([img, legend], axis=0)


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) or (H, W) uint8 image as PNG, atomically (parent folders created)."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(
            f"expected an (H, W, 3) or (H, W) uint8 image, got {arr.shape} {arr.dtype}"
        )
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())


def panel_image(path: str | os.PathLike | None, size_hw: tuple[int, int]) -> np.ndarray:
    """An image for a panel: (H, W, 3) uint8 RGB resized to ``size_hw`` (bilinear).

    A missing path or an unreadable file gives a grey placeholder, so a panel never fails
    because of its picture.
    """
    h, w = size_hw
    if path is not None:
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
                if rgb.size != (w, h):
                    rgb = rgb.resize((w, h), Image.BILINEAR)
                return np.asarray(rgb)
        except (OSError, ValueError):
            pass
    return np.full((h, w, 3), 128, dtype=np.uint8)
