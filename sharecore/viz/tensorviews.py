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
    diverging_axis,
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
# For panel titles: the panels' width together on a typical page (px), and one character of a 10-12 px title.
PANELS_PX = 600
TITLE_CHAR_PX = 5.5


# ----------------------------------------------------------------------------- tensor views
def tensor_views(spec: ModelSpec, tensor: str, values: np.ndarray) -> go.Figure:
    """Heatmaps side by side: the stored tensor, then the kernel each use reads from it.

    All panels share one diverging color scale centred on 0. Conv kernels (kh, kw, c_in, c_out) with
    kh x kw > 1 are drawn as they are used: one kh x kw tile per input (row) and output (column)
    channel, so a turned kernel shows turned. Other arrays with more than two axes are shown
    flattened to (prod(shape[:-1]), shape[-1]); a 1-D array as one row. The panel title then says
    "shown as".

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

    tiled = not boxes and all(_tiles(a) for _, _, a in panels)
    flats = [kernel_tiles(a)[0] if tiled else flat_2d(a) for _, _, a in panels]
    per_axis = _cells_per_axis(len(panels))
    strides = [(-(-f.shape[0] // per_axis), -(-f.shape[1] // per_axis)) for f in flats]  # ceil division

    # One subtitle line when every panel is sampled alike; else a title line on each sampled panel.
    sampled = {stride for stride in strides if stride != (1, 1)}
    same_sampling = len(sampled) == 1 and all(stride != (1, 1) for stride in strides)

    rows = -(-len(panels) // MAX_PANELS_PER_ROW)
    cols = -(-len(panels) // rows)  # balanced rows: 7 panels are 4 + 3, not 6 + 1
    # Name on the first line, (rule and) shape on the second, so narrow panels keep their titles apart;
    # a line wider than its panel (five panels and 'rot90 k=1 → (3, 3, 1, 4)') puts the shape on a third.
    titles = []
    for (label, rule, a), stride in zip(panels, strides):
        too_wide = len(rule + shape_text(a.shape)) * TITLE_CHAR_PX > PANELS_PX / cols
        rule_line = rule.replace(" → ", "<br>") if too_wide else rule
        text = f"<b>{label}</b><br>{rule_line}{shape_text(a.shape)}"
        if a.ndim != 2 and not tiled:
            text += f"<br>shown as {shape_text(flat_2d(a).shape)}"
        if stride != (1, 1) and not same_sampling:
            text += f"<br>{_stride_text(*stride)}"
        titles.append(text)
    lines = max(t.count("<br>") + 1 for t in titles)
    # Square cells show a transpose as a turned rectangle, unless a very long tensor would be a sliver.
    square = tiled or all(1 / 3 <= f.shape[0] / f.shape[1] <= 3 for f in flats)
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
                customdata=kernel_tiles(panels[k][2])[1] if tiled else None,
                hovertemplate=("%{customdata}: %{z:.4f}" if tiled else "row %{y}, column %{x}: %{z:.4f}")
                + "<extra>"
                + label
                + "</extra>",
                meta={"stride": [row_step, col_step], "shape": list(flat.shape)},
            ),
            row=row,
            col=col,
        )
        x_title, y_title = _tile_axis_titles(panels[k][2].shape) if tiled else ("column index", "row index")
        if k + cols >= len(panels):  # no panel below this one
            fig.update_xaxes(title_text=x_title, row=row, col=col)
        fig.update_yaxes(autorange="reversed", row=row, col=col)
        if col == 1:
            fig.update_yaxes(title_text=y_title, row=row, col=col)
        if tiled:
            _tile_ticks(fig, panels[k][2].shape, row, col)
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
    fig.update_layout(coloraxis=diverging_axis(limit, "value"))
    subtitle = "The stored tensor, then each use's kernel after its rule; one color scale, white = 0"
    if tiled:
        kh, kw, c_in, c_out = panels[0][2].shape
        subtitle += f"<br>One {kh} x {kw} tile per kernel, as it slides over the image" + (
            f": output channels 0 to {c_out - 1}, left to right, top to bottom" if c_in == 1 else ""
        )
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
        height=height + 17 * (bool(sampled) or tiled),
        # The second subtitle line needs the room of one more panel-title line.
        panel_title_lines=lines + (bool(sampled) or tiled),
    )


def _tiles(a: np.ndarray) -> bool:
    """Whether `a` is a conv kernel (kh, kw, c_in, c_out) with more than one tap, small enough to tile whole."""
    return a.ndim == 4 and a.shape[0] * a.shape[1] > 1 and max(kernel_tiles_shape(a.shape)) <= MAX_CELLS_PER_AXIS


def _tile_axis_titles(shape: tuple[int, ...]) -> tuple[str, str]:
    return ("", "") if shape[2] == 1 else ("output channel", "input channel")


def _tile_ticks(fig: go.Figure, shape: tuple[int, ...], row: int, col: int) -> None:
    """One tick per channel at the middle of its tiles; none when the tiles of one input channel wrap."""
    kh, kw, c_in, c_out = shape
    if c_in == 1:
        fig.update_xaxes(showticklabels=False, row=row, col=col)
        fig.update_yaxes(showticklabels=False, row=row, col=col)
        return
    # At most about 8 labels per axis: 16 channels' labels would overlap on a narrow panel.
    x_step, y_step = math.ceil(c_out / 8), math.ceil(c_in / 8)
    fig.update_xaxes(
        tickvals=[j * (kw + 1) + (kw - 1) / 2 for j in range(0, c_out, x_step)],
        ticktext=list(range(0, c_out, x_step)),
        tickangle=0,
        row=row,
        col=col,
    )
    fig.update_yaxes(
        tickvals=[i * (kh + 1) + (kh - 1) / 2 for i in range(0, c_in, y_step)],
        ticktext=list(range(0, c_in, y_step)),
        row=row,
        col=col,
    )


def tile_grid(shape: tuple[int, ...]) -> tuple[int, int]:
    """Rows and columns of kernel tiles: one row per input channel and one column per output channel,
    or, for one input channel (an image's first conv), the output channels wrapped into a square."""
    _, _, c_in, c_out = shape
    if c_in == 1:
        cols = math.ceil(math.sqrt(c_out))
        return -(-c_out // cols), cols
    return c_in, c_out


def tile_position(shape: tuple[int, ...], i: int, j: int) -> tuple[int, int]:
    """The grid cell of the kernel from input channel i to output channel j."""
    grid_rows, grid_cols = tile_grid(shape)
    return divmod(j, grid_cols) if shape[2] == 1 else (i, j)


def kernel_tiles_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The 2-D size of `kernel_tiles` for a kernel of `shape`: tiles with a blank row or column between them."""
    kh, kw = shape[:2]
    grid_rows, grid_cols = tile_grid(shape)
    return grid_rows * (kh + 1) - 1, grid_cols * (kw + 1) - 1


def kernel_tiles(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A conv kernel (kh, kw, c_in, c_out) as a 2-D mosaic of kh x kw tiles, each the kernel from one input
    channel to one output channel as the conv slides it over the image (`tile_grid` places them), NaN
    (drawn blank) between tiles; and beside it, for the hover, which channels and tap each cell is."""
    kh, kw, c_in, c_out = a.shape
    out = np.full(kernel_tiles_shape(a.shape), np.nan, dtype=np.float32)
    where = np.full(out.shape, "", dtype=object)
    for i in range(c_in):
        for j in range(c_out):
            r, c = tile_position(a.shape, i, j)
            out[r * (kh + 1) : r * (kh + 1) + kh, c * (kw + 1) : c * (kw + 1) + kw] = a[:, :, i, j]
            for y in range(kh):
                for x in range(kw):
                    where[r * (kh + 1) + y, c * (kw + 1) + x] = f"in {i} → out {j}, tap ({y}, {x})"
    return out, where


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
