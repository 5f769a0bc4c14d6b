"""Charts of several runs overlaid: one color per run, one dash per variant (tied solid, untied dashed).

Built from `sharecore.runs.compare.curves`; no TensorFlow, no streamlit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sharecore.viz.style import ACCURACY_AXIS, HEIGHT, STEP_AXIS, house_layout, line_mode, message_figure, panel_note

# Runs take colors from a palette with neither the variant blue nor orange in it: a run's color
# says which run, and the dash says which variant (Paul Tol's "muted", colour-blind safe).
RUN_PALETTE = ("#332288", "#117733", "#CC6677", "#88CCEE", "#AA4499", "#44AA99", "#999933", "#882255", "#DDCC77")
VARIANT_DASH = {"tied": "solid", "untied": "dash"}
# The legend sits at the bottom of the figure (container coordinates), under the x-axis title: plotly
# grows the bottom margin to hold it, so at any width and text size it never covers the plot or the
# axis title. (At y=-0.22 of the plot area it ran into the axis title in presenter mode.)
LEGEND_BELOW = {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0, "font": {"size": 12}}
# Height added per run for its two legend entries, which take a row each on a narrow chart.
LEGEND_ROOM_PER_RUN = 28


def run_colors(labels: list[str]) -> dict[str, str]:
    """Each run's color, by its position in the comparison."""
    return {label: RUN_PALETTE[i % len(RUN_PALETTE)] for i, label in enumerate(labels)}


def _add_lines(fig: go.Figure, rows: pd.DataFrame, colors: dict[str, str], row: int, col: int, legend: bool) -> None:
    for label in colors:
        of_run = rows[rows["run"] == label]
        for variant, dash in VARIANT_DASH.items():
            line = of_run[of_run["variant"] == variant].sort_values("step")
            if line.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=line["step"],
                    y=line["value"],
                    name=f"{_text(label)} · {variant}",
                    legendgroup=label,
                    showlegend=legend,
                    mode=line_mode(len(line)),
                    marker={"size": 4},
                    line={"color": colors[label], "dash": dash, "width": 2},
                    hovertemplate=f"{_hover(label)} · {variant}<br>step %{{x}}<br>%{{y:.4g}}<extra></extra>",
                ),
                row=row,
                col=col,
            )


def _text(label: str) -> str:
    """A label (user text) for a legend name: plotly draws <a href>, <b>, <br> ... in it as markup and
    then decodes &lt; &gt; &amp;, so escaping those three shows the label exactly as typed."""
    return label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _log_y(fig: go.Figure, values: pd.Series) -> None:
    """A log y axis labelled in full numbers at 1-2-5 steps (powers of 10 beyond three decades).

    Plotly's own log ticks label the steps within a decade by their digit alone: '1, 5' read as
    five below one, where the 5 is 0.5.
    """
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.empty:
        fig.update_yaxes(type="log")
        return
    low, high = float(positive.min()), float(positive.max())
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    steps = (1, 2, 5) if last - first <= 3 else (1,)
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in steps if low / 2 <= m * 10.0**e <= high * 2]
    fig.update_yaxes(type="log", tickmode="array", tickvals=ticks, tickformat="~g")


def _hover(label: str) -> str:
    # A hover template also reads %{...}: '%%' shows a '%'.
    return _text(label).replace("%", "%%")


def loss_overlay(curves: pd.DataFrame, labels: list[str], *, log_y: bool = False) -> go.Figure:
    """Training and held-out loss of every run: two panels, one color per run, one dash per variant."""
    title = "Loss of each run"
    reading = "Lower is better. Color: run; solid: tied, dashed: untied. Left: training, right: held-out samples."
    rows = curves[curves["series"].isin(["loss", "heldout_loss"])] if not curves.empty else curves
    if rows.empty:
        return message_figure(title, "No runs to compare yet: train, change one thing, train again.")
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05, subplot_titles=("training", "held-out")
    )
    colors = run_colors(labels)
    _add_lines(fig, rows[rows["series"] == "loss"], colors, 1, 1, legend=True)
    held = rows[rows["series"] == "heldout_loss"]
    if held.empty:
        panel_note(fig, "no held-out split in these runs", col=2)
    _add_lines(fig, held, colors, 1, 2, legend=False)
    fig.update_xaxes(title_text=STEP_AXIS)
    fig.update_yaxes(title_text="loss", col=1)
    if log_y:
        _log_y(fig, rows["value"])
    return house_layout(
        fig,
        title,
        height=HEIGHT + 60 + LEGEND_ROOM_PER_RUN * len(colors),
        panel_title_lines=1,
        how_to_read=reading,
        legend=LEGEND_BELOW,
    )


def series_overlay(
    curves: pd.DataFrame,
    labels: list[str],
    series: str,
    *,
    title: str,
    reading: str,
    y_title: str,
    empty: str,
    subtitle: str = "",
) -> go.Figure:
    """One series ('divergence', 'cosine', 'heldout_accuracy') of every run in one panel; `reading` is
    its one line on how to read it."""
    rows = curves[curves["series"] == series] if not curves.empty else curves
    if rows.empty:
        return message_figure(title, empty)
    fig = make_subplots(rows=1, cols=1)
    colors = run_colors(labels)
    _add_lines(fig, rows, colors, 1, 1, legend=True)
    fig.update_xaxes(title_text=STEP_AXIS)
    fig.update_yaxes(title_text=y_title)
    if series == "cosine":
        fig.update_yaxes(range=[-1.05, 1.05], dtick=0.5)
    if series == "heldout_accuracy":
        fig.update_yaxes(**ACCURACY_AXIS)
    return house_layout(
        fig,
        title,
        subtitle,
        height=HEIGHT + 40 + LEGEND_ROOM_PER_RUN * len(colors),
        how_to_read=reading,
        legend=LEGEND_BELOW,
    )


def divergence_overlay(curves: pd.DataFrame, labels: list[str], *, log_y: bool = False) -> go.Figure:
    fig = series_overlay(
        curves,
        labels,
        "divergence",
        title="How far the untied copies drift",
        reading="0 = the copies are still identical; tied copies are one tensor, so 0 at every step. Color: run; dashed: untied.",
        y_title="relative distance",
        empty="Nothing to drift: no shared tensor has two uses that read common entries.",
    )
    if log_y and fig.data:
        _log_y(fig, curves.loc[curves["series"] == "divergence", "value"])
    return fig


def cosine_overlay(
    curves: pd.DataFrame, labels: list[str], *, gradient_ends: tuple[tuple[str, str, int], ...] = ()
) -> go.Figure:
    """The gradient cosine of every run. `gradient_ends` (`sharecore.runs.compare.gradient_ends`) names the
    lines that stop because the run's gradients became zero (a collapsed run): each gets a note at its last
    point, in the run's color, and the subtitle says why lines end."""
    reading = "+1: the uses' gradients agree, 0: unrelated, -1: they conflict. Color: run; solid: tied, dashed: untied."
    rows = curves[curves["series"] == "cosine"] if not curves.empty else curves
    ends = []
    for label, variant, step in gradient_ends:
        line = rows[(rows["run"] == label) & (rows["variant"] == variant)].sort_values("step")
        if not line.empty and label in labels:
            ends.append((label, variant, step, line.iloc[-1]))
    if ends:
        reading += (
            " A line that ends early: from the step its note names, every gradient of that run was zero, so there "
            "is no direction to compare (the run collapsed)."
        )
    fig = series_overlay(
        curves,
        labels,
        "cosine",
        title="Do the uses pull the same way?",
        reading=reading,
        y_title="gradient cosine",
        empty="No shared tensor has two uses: there is nothing to agree or conflict.",
        subtitle="A line that ends: that run's gradients became zero there" if ends else "",
    )
    colors = run_colors(labels)
    for label, variant, step, last in ends:
        fig.add_annotation(
            x=last["step"],
            y=last["value"],
            text=f"{variant}: zero gradient from step {step}",
            name="gradient ends",
            showarrow=True,
            arrowhead=0,
            ax=0,
            ay=-24 if last["value"] < 0.5 else 24,
            font={"size": 12, "color": colors[label]},  # 12 px: 18 px in presenter mode (MIN_TEXT_PX)
        )
    return fig
