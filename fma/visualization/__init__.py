"""Pictures for inspecting labels and scores (numpy + PIL)."""

from fma.visualization.panels import (
    IGNORE_COLOR,
    colorize,
    overlay,
    panel_image,
    save_png,
    score_colormap,
    side_by_side,
    title_height,
)

__all__ = [
    "IGNORE_COLOR",
    "colorize",
    "overlay",
    "panel_image",
    "save_png",
    "score_colormap",
    "side_by_side",
    "title_height",
]
