"""The house style shared by the plot modules: colors, layout, empty-figure messages.

Colors mean the same thing in every chart:

* `VARIANT_COLORS`: the tied model is blue, the untied model orange.
* `use_colors`: a use's color is set by its position among the uses of its shared tensor,
  in model order. Every per-tensor frame lists uses in that order, so `dense_1` has the same
  color in the diagram's labels, the gradient charts and the cosine chart.
* `tensor_colors`: each shared tensor's color (declaration order) marks its uses in the diagram.

Every chart module draws through the helpers below: `house_layout` (title, subtitle, size and the
one line on how to read a chart), `message_figure` and `panel_note` (why there is nothing to draw),
`line_mode`, `variants_in`, `tensor_rows`, `flat_2d` and `shape_text`. This module imports neither
TensorFlow nor streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sharecore.core.results import VARIANTS
from sharecore.core.spec import ModelSpec

# Okabe-Ito blue and orange: distinct for the common color-vision deficiencies.
VARIANT_COLORS: dict[str, str] = {"tied": "#0072B2", "untied": "#E69F00"}
# Per-use colors avoid the two variant colors so a use's line never reads as "tied" or "untied".
USE_PALETTE = ("#009E73", "#CC79A7", "#882255", "#999933", "#AA4499", "#44AA99", "#661100", "#555555")
TENSOR_PALETTE = ("#5E3C99", "#B35806", "#1A9850", "#D01C8B", "#4D4D4D")
# Pairs of untied copies: shades around the untied orange, so every pair reads as "untied".
PAIR_PALETTE = ("#E69F00", "#B2182B", "#8C510A", "#F4A582", "#7F3B08", "#D6604D")
NEUTRAL = "#9E9E9E"  # input/output nodes, own kernels, weights before training
# Text on a chart: ticks, axis and panel titles. Streamlit's chart theme draws them grey (#808495, a
# contrast of 3.7:1 on white); this is its body text colour, 12.6:1, readable from the back of a room.
INK = "#31333F"
# WCAG 2's least contrast for normal text ("AA"): what every text of the app meets.
MIN_CONTRAST = 4.5
TEMPLATE = "plotly_white"
HEIGHT = 340
STEP_AXIS = "step (optimizer updates)"


# ----------------------------------------------------------------------------- colors
def use_colors(uses: Sequence[str]) -> dict[str, str]:
    """The color of each use of one shared tensor, by its position among them.

    Args:
        uses: the uses of one tensor in model order (`plan(spec).group(tensor)` order, which is
            also the order of a tensor's rows in the gradient and divergence frames).

    Returns:
        A dict use name -> hex color.
    """
    return {u: USE_PALETTE[i % len(USE_PALETTE)] for i, u in enumerate(uses)}


def readable(color: str, background: str = "#ffffff") -> str:
    """`color` (#rrggbb), darkened just enough to reach `MIN_CONTRAST` as text on `background`.

    A use's or tensor's colour marks its lines and boxes; written as text (a use's name in the
    diagram, a rule on its arrow) the lighter ones (Okabe-Ito green, 3.4:1 on white) were too faint.

    Example:
        >>> readable("#0072B2")  # already 5.2:1 on white
        '#0072b2'
        >>> readable("#009E73")
        '#008763'
    """
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    base = [int(background[i : i + 2], 16) for i in (1, 3, 5)]
    while _contrast(rgb, base) < MIN_CONTRAST:
        rgb = [max(0, round(c * 0.95)) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _contrast(a: Sequence[int], b: Sequence[int]) -> float:
    """WCAG 2's contrast ratio of two sRGB colours (0-255 channels)."""

    def luminance(rgb: Sequence[int]) -> float:
        lin = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def tensor_colors(spec: ModelSpec) -> dict[str, str]:
    """The color of each shared tensor of `spec`, by declaration order."""
    return {t.name: TENSOR_PALETTE[i % len(TENSOR_PALETTE)] for i, t in enumerate(spec.tensors)}


# ----------------------------------------------------------------------------- the house layout and its helpers
def diverging_axis(limit: float, title: str, **colorbar: object) -> dict:
    """A color axis for signed values: red above zero, blue below, white at zero, symmetric to `limit`."""
    return {
        "colorscale": "RdBu",
        "reversescale": True,
        "cmin": -limit,
        "cmax": limit,
        "colorbar": {"title": {"text": title}, "thickness": 12, **colorbar},
    }


def house_layout(
    fig: go.Figure,
    title: str,
    subtitle: str = "",
    height: int = HEIGHT,
    panel_title_lines: int = 0,
    how_to_read: str = "",
    **kwargs: Any,
) -> go.Figure:
    """The house style: white template, compact height, title (the question) and subtitle at the top.

    `panel_title_lines` makes room under the subtitle for subplot titles of that many lines.
    `how_to_read` is one line on how to read the chart (what is better, what each line and color
    is); it is kept in `fig.layout.meta["how_to_read"]` (see `how_to_read`), which the dashboard
    shows as a caption under the chart, where it wraps at any width.
    """
    if how_to_read:
        fig.update_layout(meta={"how_to_read": how_to_read})
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        title={
            "text": title,
            "subtitle": {"text": subtitle, "font": {"size": 12, "color": "#555555"}},
            "font": {"size": 16},
            "x": 0.01,
            "xanchor": "left",
            "y": 0.98,
            "yanchor": "top",
        },
        margin={"l": 64, "r": 20, "t": (66 if subtitle else 46) + 17 * panel_title_lines, "b": 52},
        **kwargs,
    )
    fig.update_xaxes(title_font_size=12, title_font_color=INK, tickfont_color=INK)
    fig.update_yaxes(title_font_size=12, title_font_color=INK, tickfont_color=INK)
    fig.update_annotations(selector=lambda a: a.font.color is None, font_color=INK)  # panel titles
    return fig


def how_to_read(fig: go.Figure) -> str:
    """The chart's one line on how to read it, or '' (a message figure has none)."""
    meta = fig.layout.meta
    return str(meta.get("how_to_read", "")) if isinstance(meta, dict) else ""


def message_figure(title: str, message: str, subtitle: str = "", fig: go.Figure | None = None) -> go.Figure:
    """A figure that explains why there is nothing to draw (yet)."""
    fig = go.Figure() if fig is None else fig
    fig.add_annotation(
        text=message,
        name="empty",
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 14, "color": "#555555"},
    )
    if not fig.data:
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return house_layout(fig, title, subtitle)


def panel_note(fig: go.Figure, text: str, col: int) -> None:
    """Writes `text` in the middle of panel `col` of a one-row subplot figure: why that panel is empty."""
    fig.add_annotation(
        text=text,
        name="empty",
        x=0.5,
        y=0.5,
        xref="x domain",
        yref="y domain",
        row=1,
        col=col,
        showarrow=False,
        font={"size": 13, "color": "#555555"},
    )


def line_mode(points: int) -> str:
    """The plotly scatter mode for a line of `points` points: with markers for a short or sparse line."""
    # Markers show where a short or sparsely recorded run actually has data.
    return "lines+markers" if points <= 40 else "lines"


def variants_in(frame: pd.DataFrame) -> list[str]:
    """The variants a frame has rows of, tied then untied first, then any other in order of appearance."""
    present = list(dict.fromkeys(frame["variant"]))
    return [v for v in VARIANTS if v in present] + [v for v in present if v not in VARIANTS]


def tensor_rows(frame: pd.DataFrame, tensor: str, frame_name: str) -> pd.DataFrame:
    """The rows of `tensor`; a ValueError if a non-empty frame never mentions it."""
    if frame.empty:
        return frame
    known = list(dict.fromkeys(frame["tensor"]))
    if tensor not in known:
        raise ValueError(
            f"the {frame_name} frame has no rows for shared tensor {tensor!r}. Pick one of the "
            f"recorded shared tensors {known}. Received: tensor={tensor!r}"
        )
    return frame[frame["tensor"] == tensor]


def flat_2d(a: np.ndarray) -> np.ndarray:
    """A 2-D view for a heatmap: (prod(shape[:-1]), shape[-1]); a 1-D array becomes one row."""
    a = np.asarray(a)
    if a.ndim == 2:
        return a
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def shape_text(shape: Sequence[int]) -> str:
    """A shape as Python writes a tuple: '(10, 5)', '(3,)'."""
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


# ----------------------------------------------------------------------------- axes and presenter mode
# An accuracy axis: 0 to 100 % in steps of 20 %, not the odd ticks (0.166, 0.468, ...) that a
# secondary axis gets when plotly picks them to line up with the loss axis.
ACCURACY_AXIS: dict[str, Any] = {"range": [0, 1.02], "tick0": 0, "dtick": 0.2, "tickformat": ".0%"}
PRESENTER_SCALE = 1.5  # 12 px ticks, legends and axis titles become 18 px
DEFAULT_FONT_SIZE = 12  # plotly's own default, for text the house style leaves unsized


def _scaled(size: float | None, scale: float, default: float = DEFAULT_FONT_SIZE) -> float:
    return round((size or default) * scale, 1)


def apply_presenter(fig: go.Figure, scale: float = PRESENTER_SCALE) -> go.Figure:
    """A copy of `fig` with all its text `scale` times larger, for a projector at the back of a room.

    Titles, subtitles, axis titles and ticks, legends, hover labels, annotations (subplot titles,
    notes), colorbars and trace text grow; the top margin and the height grow with the title so
    that nothing overlaps. `fig` itself is not changed (figures are cached and shared).

    Args:
        fig: a figure of the house style.
        scale: the factor, e.g. 1.4.

    Returns:
        The enlarged copy.

    Raises:
        ValueError: for a scale that is not a positive number.
    """
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, e.g. 1.4. Received: scale={scale!r}")
    out = go.Figure(fig)
    layout = out.layout
    layout.font.size = _scaled(layout.font.size, scale)
    layout.title.font.size = _scaled(layout.title.font.size, scale, 16)
    layout.title.subtitle.font.size = _scaled(layout.title.subtitle.font.size, scale)
    layout.legend.font.size = _scaled(layout.legend.font.size, scale)
    layout.hoverlabel.font.size = _scaled(layout.hoverlabel.font.size, scale, 13)
    for annotation in layout.annotations:
        annotation.font.size = _scaled(annotation.font.size, scale)
    for axis in [*out.select_xaxes(), *out.select_yaxes()]:
        axis.tickfont.size = _scaled(axis.tickfont.size, scale)
        axis.title.font.size = _scaled(axis.title.font.size, scale)
    for name in ("coloraxis",):
        bar = layout[name].colorbar
        bar.tickfont.size = _scaled(bar.tickfont.size, scale)
        bar.title.font.size = _scaled(bar.title.font.size, scale)
    for trace in out.data:
        if "textfont" in trace and trace.textfont.size is not None:
            sizes = trace.textfont.size
            trace.textfont.size = [s * scale for s in sizes] if isinstance(sizes, (list, tuple)) else sizes * scale
        if "colorbar" in trace:
            trace.colorbar.tickfont.size = _scaled(trace.colorbar.tickfont.size, scale)
    margin_top = layout.margin.t if layout.margin.t is not None else 66
    extra = round(margin_top * (scale - 1))
    layout.margin.t = margin_top + extra
    layout.margin.b = round((layout.margin.b if layout.margin.b is not None else 52) * scale)
    layout.margin.l = round((layout.margin.l if layout.margin.l is not None else 64) * scale)
    layout.height = (layout.height or HEIGHT) + extra + round(60 * (scale - 1))
    return out
