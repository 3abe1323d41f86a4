"""Pictures for inspecting labels and scores (numpy + PIL)."""

from fma.visualization.panels import (
    IGNORE_COLOR,
    add_legend,
    class_legend,
    colorize,
    legend_layout,
    overlay,
    panel_image,
    save_png,
    score_colormap,
    side_by_side,
    title_height,
)

__all__ = [
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
