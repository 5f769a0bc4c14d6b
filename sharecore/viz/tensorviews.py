"""The tensor views: a shared tensor, then the kernel each use reads from it, as heatmaps.

The views draw the values they are given: a seed's initial values come from the Keras engine
(`sharecore.initial_values(spec, seed)`), a run's weights from its result. Plain NumPy and plotly:
drawing imports no TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sharecore.core.plan import plan
from sharecore.core.rules import apply_rule_np, reads_part, rule_mask
from sharecore.core.spec import ModelSpec
from sharecore.viz.diagram import rule_text
from sharecore.viz.style import (
    HEIGHT,
    flat_2d,
    house_layout,
    shape_text,
    use_colors,
)

MAX_PANELS_PER_ROW = 6  # more uses wrap onto further rows (a spec may have up to 32 uses)
ROW_HEIGHT = 170  # px of heatmap per row when the panels wrap and are not square
# A heatmap of two million values is unreadable and its JSON is tens of MB. Large panels draw
# every k-th row and column instead (true values, not averages: an average of zero-mean weights
# fades to white and shows values nobody stores). All panels together draw at most CELL_BUDGET
# cells, about 0.5 MB of float32 JSON, and one panel at most MAX_CELLS_PER_AXIS per axis.
CELL_BUDGET = 80_000
MAX_CELLS_PER_AXIS = 200
MIN_CELLS_PER_AXIS = 32


# ----------------------------------------------------------------------------- tensor views
def tensor_views(spec: ModelSpec, tensor: str, values: np.ndarray) -> go.Figure:
    """Heatmaps side by side: the stored tensor, then the kernel each use reads from it.

    All panels share one diverging color scale centred on 0. Arrays with more than two axes are
    shown flattened to (prod(shape[:-1]), shape[-1]); a 1-D array as one row. The panel title
    then says "shown as".

    Args:
        spec: the model spec.
        tensor: a shared tensor of `spec` (or the name of a use with its own kernel).
        values: the stored tensor, in its stored shape: e.g. `sharecore.initial_values(spec, seed)[tensor]`
            (the values a seed starts from) or `result.weights['end']['tied'][tensor]` (where a run ended).

    Returns:
        The figure; trace 0 is the stored tensor, trace i the i-th use in model order.

    Raises:
        ValueError: for an unknown tensor, or `values` of the wrong shape.
    """
    p = plan(spec)
    shapes = {t.name: tuple(t.shape) for t in spec.tensors}
    own = {u.use.name: u for u in p.uses if not u.shared}
    if tensor in shapes:
        group = p.group(tensor)
        stored_shape = shapes[tensor]
    elif tensor in own:
        group = (own[tensor],)
        stored_shape = tuple(own[tensor].tensor_shape)
    else:
        raise ValueError(
            f"spec {spec.name!r} has no shared tensor {tensor!r}. Pick one of its shared tensors "
            f"{list(shapes)} (or a use with its own kernel: {list(own)}). Received: tensor={tensor!r}"
        )
    w = np.asarray(values)
    if w.shape != stored_shape:
        raise ValueError(
            f"values for {tensor!r} must have its stored shape {stored_shape}, not a use's view of it. "
            f"Pass the stored tensor, e.g. result.weights['end']['tied'][{tensor!r}]. Received: shape={w.shape}"
        )
    panels = [(f"stored {tensor}", "", w)]
    for u in group:
        kernel = apply_rule_np(u.use.rule, w) if u.shared else w
        rule = rule_text(u.use.rule, stored_shape) if u.shared else "own kernel"
        # A use that reads the tensor as stored shows only its shape: narrow panels keep their titles apart.
        panels.append((u.use.name, "" if rule == "as stored" else f"{rule} → ", kernel))
    # The part of the stored tensor each slicing use reads: (use, its color, (row0, row1, col0, col1)) on the 2-D view.
    colors = use_colors([u.use.name for u in group])
    boxes = []
    for u in group:
        if u.shared and reads_part(u.use.rule):
            rows_read, cols_read = np.nonzero(flat_2d(rule_mask(u.use.rule, stored_shape)))
            if rows_read.size:
                box = (int(rows_read.min()), int(rows_read.max()) + 1, int(cols_read.min()), int(cols_read.max()) + 1)
                boxes.append((u.use.name, colors[u.use.name], box))

    flats = [flat_2d(a) for _, _, a in panels]
    per_axis = _cells_per_axis(len(panels))
    strides = [(-(-f.shape[0] // per_axis), -(-f.shape[1] // per_axis)) for f in flats]  # ceil division

    # One subtitle line when every panel is sampled alike; else a title line on each sampled panel.
    sampled = {stride for stride in strides if stride != (1, 1)}
    same_sampling = len(sampled) == 1 and all(stride != (1, 1) for stride in strides)

    # Name on the first line, (rule and) shape on the second, so narrow panels keep their titles apart.
    titles = []
    for (label, rule, a), stride in zip(panels, strides):
        text = f"<b>{label}</b><br>{rule}{shape_text(a.shape)}"
        if a.ndim != 2:
            text += f"<br>shown as {shape_text(flat_2d(a).shape)}"
        if stride != (1, 1) and not same_sampling:
            text += f"<br>{_stride_text(*stride)}"
        titles.append(text)
    lines = max(t.count("<br>") + 1 for t in titles)
    # Square cells show a transpose as a turned rectangle, unless a very long tensor would be a sliver.
    square = all(1 / 3 <= f.shape[0] / f.shape[1] <= 3 for f in flats)
    rows = -(-len(panels) // MAX_PANELS_PER_ROW)
    cols = -(-len(panels) // rows)  # balanced rows: 7 panels are 4 + 3, not 6 + 1
    if rows == 1:
        height = HEIGHT + 17 * (lines - 2)  # a "shown as" line takes room from the heatmaps
        vertical_spacing = 0.0
    else:
        # Between two rows: the upper row's tick labels and axis title, then the lower row's panel titles.
        gap = 46 + 17 * lines
        # Square panels are about as tall as a column of a ~650 px wide figure is wide.
        row_height = 60 + 360 // cols if square else ROW_HEIGHT
        plot_area = rows * row_height + (rows - 1) * gap
        height = plot_area + 118 + 17 * lines  # plus the title, subtitle and bottom margins of house_layout
        vertical_spacing = gap / plot_area
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.05 if cols > 1 else 0.0,
        vertical_spacing=vertical_spacing,
    )
    finite = np.abs(w[np.isfinite(w)]) if w.size else np.zeros(1)
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    for k, ((label, _, _), flat, (row_step, col_step)) in enumerate(zip(panels, flats, strides)):
        row, col = divmod(k, cols)
        row, col = row + 1, col + 1
        strided = (row_step, col_step) != (1, 1)
        fig.add_trace(
            go.Heatmap(
                z=flat[::row_step, ::col_step].astype(np.float32, copy=False),
                # Strided panels keep the true row and column indices on their axes and in the hover.
                x=np.arange(0, flat.shape[1], col_step) if strided else None,
                y=np.arange(0, flat.shape[0], row_step) if strided else None,
                coloraxis="coloraxis",
                name=label,
                hovertemplate="row %{y}, column %{x}: %{z:.4f}<extra>" + label + "</extra>",
                meta={"stride": [row_step, col_step], "shape": list(flat.shape)},
            ),
            row=row,
            col=col,
        )
        if k + cols >= len(panels):  # no panel below this one
            fig.update_xaxes(title_text="column index", row=row, col=col)
        fig.update_yaxes(autorange="reversed", row=row, col=col)
        if col == 1:
            fig.update_yaxes(title_text="row index", row=row, col=col)
        if square:
            x_axis = fig.get_subplot(row, col).xaxis.plotly_name  # "xaxis7"
            fig.update_yaxes(scaleanchor=x_axis.replace("axis", ""), constrain="domain", row=row, col=col)
            fig.update_xaxes(constrain="domain", row=row, col=col)
    fig.update_annotations(font_size=12 if cols <= 2 else 10)
    for name, color, (row0, row1, col0, col1) in boxes:
        # Cell i covers [i - 0.5, i + 0.5] on both axes of a heatmap.
        fig.add_shape(
            type="rect",
            x0=col0 - 0.5,
            x1=col1 - 0.5,
            y0=row0 - 0.5,
            y1=row1 - 0.5,
            xref="x",
            yref="y",
            line={"color": color, "width": 3},
            fillcolor="rgba(0,0,0,0)",
            name=f"read by {name}",
        )
        index = [label for label, _, _ in panels].index(name)
        fig.layout.annotations[index].font.color = color  # the use's title in its box's color
    fig.update_layout(
        coloraxis={
            "colorscale": "RdBu",
            "reversescale": True,
            "cmin": -limit,
            "cmax": limit,
            "colorbar": {"title": {"text": "value"}, "thickness": 12},
        }
    )
    subtitle = "The stored tensor, then each use's kernel after its rule; one color scale, white = 0"
    if sampled:
        which = f"each panel shows {_stride_text(*sampled.pop())}" if same_sampling else "large panels show every k-th"
        subtitle += f"<br>Too large to draw whole: {which} (axes keep the true indices)"
    how = "Red: positive, blue: negative, white: 0, one color scale for all panels."
    if boxes:
        how += " An outlined box on the stored tensor marks the part a slice reads, in the color of its use's title."
    return house_layout(
        fig,
        f"What does each use see of {tensor}?",
        subtitle,
        how_to_read=how,
        height=height + 17 * bool(sampled),
        # The second subtitle line needs the room of one more panel-title line.
        panel_title_lines=lines + bool(sampled),
    )


def _cells_per_axis(panels: int) -> int:
    """The most rows (and columns) one panel draws, so that all panels together stay within CELL_BUDGET."""
    return max(MIN_CELLS_PER_AXIS, min(MAX_CELLS_PER_AXIS, math.isqrt(CELL_BUDGET // panels)))


def _stride_text(row_step: int, col_step: int) -> str:
    """E.g. 'every 5th row, 10th col' (the starting row and column 0 are always drawn)."""
    parts = [f"{_ordinal(step)} {axis}" for step, axis in ((row_step, "row"), (col_step, "col")) if step > 1]
    return "every " + ", ".join(parts)


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
