"""Plot builders: a spec or the tidy frames of a run in, a plotly figure out.

Every builder is a pure function returning a `plotly.graph_objects.Figure`. None of them
imports streamlit, so a notebook, the CLI and the tests draw exactly what the pages show.

Colors mean the same thing in every chart:

* `VARIANT_COLORS`: the tied model is blue, the untied model orange.
* `use_colors`: a use's color is set by its position among the uses of its shared tensor,
  in model order. Every per-tensor frame lists uses in that order, so `dense_1` has the same
  color in the diagram's labels, the gradient charts and the cosine chart.
* `tensor_colors`: each shared tensor's color (declaration order) marks its uses in the diagram.

Builders do not raise on missing data: an empty frame (a live chart before the first step, a
tensor with a single use and so no pairs) gives a figure whose annotation says why it is
empty. They raise `ValueError` for a tensor name the data does not know.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sharecore.model import initial_values
from sharecore.params import BYTES_PER_PARAM, ParamReport
from sharecore.plan import UsePlan, plan
from sharecore.rules import apply_rule_np
from sharecore.spec import INPUT_NODE, ModelSpec

VARIANTS = ("tied", "untied")
# Okabe-Ito blue and orange: distinct for the common color-vision deficiencies.
VARIANT_COLORS: dict[str, str] = {"tied": "#0072B2", "untied": "#E69F00"}
# Per-use colors avoid the two variant colors so a use's line never reads as "tied" or "untied".
USE_PALETTE = ("#009E73", "#CC79A7", "#882255", "#999933", "#AA4499", "#44AA99", "#661100", "#555555")
TENSOR_PALETTE = ("#5E3C99", "#B35806", "#1A9850", "#D01C8B", "#4D4D4D")
# Pairs of untied copies: shades around the untied orange, so every pair reads as "untied".
PAIR_PALETTE = ("#E69F00", "#B2182B", "#8C510A", "#F4A582", "#7F3B08", "#D6604D")
NEUTRAL = "#9E9E9E"  # input/output nodes, own kernels, weights before training
TEMPLATE = "plotly_white"
HEIGHT = 340
STEP_AXIS = "step (optimizer updates)"
OUTPUT_NODE = "__output__"  # diagram key of the output node; cannot clash with a use name


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


def tensor_colors(spec: ModelSpec) -> dict[str, str]:
    """The color of each shared tensor of `spec`, by declaration order."""
    return {t.name: TENSOR_PALETTE[i % len(TENSOR_PALETTE)] for i, t in enumerate(spec.tensors)}


# ----------------------------------------------------------------------------- shared helpers
def _layout(
    fig: go.Figure, title: str, subtitle: str = "", height: int = HEIGHT, panel_title_lines: int = 0, **kwargs: Any
) -> go.Figure:
    """The house style: white template, compact height, title (the question) and subtitle at the top.

    `panel_title_lines` makes room under the subtitle for subplot titles of that many lines.
    """
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
    fig.update_xaxes(title_font_size=12)
    fig.update_yaxes(title_font_size=12)
    return fig


def _message(title: str, message: str, subtitle: str = "", fig: go.Figure | None = None) -> go.Figure:
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
    return _layout(fig, title, subtitle)


def _panel_note(fig: go.Figure, text: str, col: int) -> None:
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


def _mode(points: int) -> str:
    # Markers show where a short or sparsely recorded run actually has data.
    return "lines+markers" if points <= 40 else "lines"


def _variants(frame: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(frame["variant"]))
    return [v for v in VARIANTS if v in present] + [v for v in present if v not in VARIANTS]


def _tensor_rows(frame: pd.DataFrame, tensor: str, frame_name: str) -> pd.DataFrame:
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


def _flat_2d(a: np.ndarray) -> np.ndarray:
    """A 2-D view for a heatmap: (prod(shape[:-1]), shape[-1]); a 1-D array becomes one row."""
    a = np.asarray(a)
    if a.ndim == 2:
        return a
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


# ----------------------------------------------------------------------------- model diagram
def _node_label(u: UsePlan) -> str:
    reads = f"{u.use.tensor} · {u.use.rule.describe()}" if u.shared else "own kernel"
    return f"<b>{u.use.name}</b><br>{u.use.op} {_shape_text(u.kernel_shape)}<br>{reads}"


def _node_hover(u: UsePlan, tied: bool) -> str:
    if u.shared and tied:
        kernel = (
            f"reads shared tensor {u.use.tensor} {_shape_text(u.tensor_shape)} through rule {u.use.rule.describe()}"
        )
    elif u.shared:
        kernel = (
            f"stores its own copy {_shape_text(u.kernel_shape)}, initialised as {u.use.rule.describe()}({u.use.tensor})"
        )
    else:
        kernel = f"stores its own kernel {_shape_text(u.kernel_shape)}"
    return (
        f"<b>{u.use.name}</b> ({u.use.op}, {u.use.activation})<br>reads node '{u.source}' "
        f"{_shape_text(u.in_shape)} -> {_shape_text(u.out_shape)}<br>{kernel}<br>bias: {u.use.bias}"
    )


def _label_side(depth: int) -> str:
    # Neighbouring columns put their labels on opposite sides, so a long chain's labels do not overlap.
    return "bottom center" if depth % 2 else "top center"


def _spread(xs: list[float], taken: list[float], gap: float = 0.6) -> list[float]:
    """Shifts new node positions right until they keep `gap` from nodes already in the row."""
    out = []
    for x in xs:
        while any(abs(x - t) < gap - 1e-9 for t in taken + out):
            x += gap
        out.append(x)
    return out


def model_diagram(spec: ModelSpec, tied: bool = True) -> go.Figure:
    """The model graph, laid out left to right by depth, with shared tensors marked.

    Input and output are grey squares; each use is a circle filled with the color of the shared
    tensor it reads (grey outline for an own kernel) and labelled with its name, op, kernel
    shape, tensor and rule; the label text has the use's color. Arrows run source -> use and
    output use -> output. Tied: one diamond per shared tensor with dashed lines to its uses.
    Untied: one square per use, the copy it stores, with a solid line to it.

    Args:
        spec: the model spec.
        tied: draw the tied model (True) or the untied one.

    Returns:
        The figure. Node traces carry `meta={"role": "use" | "tensor" | "copy" | "io", ...}`;
        each arrow is an annotation named ``"edge: <source> -> <target>"``.

    Raises:
        ValueError: if the spec cannot be built.
    """
    p = plan(spec)
    t_colors = tensor_colors(spec)
    depth = {INPUT_NODE: 0}
    for u in p.uses:
        depth[u.use.name] = depth[u.source] + 1
    depth[OUTPUT_NODE] = max(depth.values()) + 1
    columns: dict[int, list[str]] = {}
    for node, d in depth.items():
        columns.setdefault(d, []).append(node)
    pos: dict[str, tuple[float, float]] = {}
    for d, nodes in columns.items():
        for i, node in enumerate(nodes):
            pos[node] = (float(d), (len(nodes) - 1) / 2 - i)
    half = max((len(nodes) - 1) / 2 for nodes in columns.values())
    rows_y = {1: half + 0.95, -1: -(half + 0.95)}  # the row of tensors/copies above and below

    fig = go.Figure()
    groups = {t.name: p.group(t.name) for t in spec.tensors}
    taken: dict[int, list[float]] = {1: [], -1: []}
    for k, (t, group) in enumerate(groups.items()):
        # Alternate above/below so the dashed lines of two tensors do not cross one another.
        side = 1 if k % 2 == 0 else -1
        y = rows_y[side]
        color = t_colors[t]
        if tied:
            x = float(np.mean([depth[u.use.name] for u in group]))
            if len({depth[u.use.name] for u in group}) == 1:
                x += 0.45  # uses stacked in one column: a vertical line would run through them
            (x,) = _spread([x], taken[side])
            taken[side].append(x)
            node_x, node_y = [x], [y]
            shape = next(s.shape for s in spec.tensors if s.name == t)
            # One line beside the node, so the tensor row stays thin.
            text = [f"<b>{t}</b> {_shape_text(shape)}<br>stored once, read by {len(group)} use{'s' * (len(group) > 1)}"]
            hover = text
            links = [(x, y, u.use.name) for u in group]
            name, symbol, size, role = f"shared {t}", "diamond", 26, "tensor"
        else:
            by_depth: dict[int, list[UsePlan]] = {}
            for u in group:
                by_depth.setdefault(depth[u.use.name], []).append(u)
            wanted = []
            for d, members in by_depth.items():
                wanted += [d + (j - (len(members) - 1) / 2) * 0.4 for j in range(len(members))]
            xs = _spread(wanted, taken[side], gap=0.35)
            taken[side] += xs
            ordered = [u for members in by_depth.values() for u in members]
            node_x, node_y = xs, [y] * len(xs)
            # Copies can sit 0.35 apart, so the visible label is just the tensor; the hover says more.
            text = [t] * len(ordered)
            hover = [
                f"{u.use.name}'s own copy of {t}: {_shape_text(u.kernel_shape)}, "
                f"initialised as {u.use.rule.describe()}({t})"
                for u in ordered
            ]
            links = [(x, y, u.use.name) for x, u in zip(xs, ordered)]
            name, symbol, size, role = f"copies of {t} (one per use)", "square", 16, "copy"
        seg_x: list[float | None] = []
        seg_y: list[float | None] = []
        for x0, y0, use in links:
            seg_x += [x0, pos[use][0], None]
            seg_y += [y0, pos[use][1], None]
        fig.add_trace(
            go.Scatter(
                x=seg_x,
                y=seg_y,
                mode="lines",
                line={"color": color, "width": 2, "dash": "dash" if tied else "solid"},
                name=name,
                legendgroup=t,
                showlegend=False,
                hoverinfo="skip",
                meta={"role": "shared_link" if tied else "copy_link", "tensor": t},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=node_x,
                y=node_y,
                mode="markers+text",
                marker={"symbol": symbol, "size": size, "color": color, "line": {"color": "white", "width": 1}},
                text=text,
                # Above a tensor and beside a copy: a label that ran sideways was cut off in narrow columns.
                textposition=("top center" if side == 1 else "bottom center") if tied else "middle right",
                textfont={"size": 11, "color": color},
                hovertext=hover,
                hoverinfo="text",
                name=name,
                legendgroup=t,
                meta={"role": role, "tensor": t},
            )
        )

    for t, group in [*groups.items(), (None, tuple(u for u in p.uses if not u.shared))]:
        if not group:
            continue
        colors = use_colors([u.use.name for u in group])
        fig.add_trace(
            go.Scatter(
                x=[pos[u.use.name][0] for u in group],
                y=[pos[u.use.name][1] for u in group],
                mode="markers+text",
                marker={
                    "size": 22,
                    "color": t_colors[t] if t else "white",
                    "line": {"color": "white" if t else NEUTRAL, "width": 2},
                },
                text=[_node_label(u) for u in group],
                textposition=[_label_side(depth[u.use.name]) for u in group],
                textfont={"size": 10, "color": [colors[u.use.name] if t else "#444444" for u in group]},
                hovertext=[_node_hover(u, tied) for u in group],
                hoverinfo="text",
                name=f"uses of {t}" if t else "own kernel",
                legendgroup=t or "own",
                showlegend=t is None,
                meta={"role": "use", "tensor": t},
            )
        )
    io = [INPUT_NODE, OUTPUT_NODE]
    fig.add_trace(
        go.Scatter(
            x=[pos[n][0] for n in io],
            y=[pos[n][1] for n in io],
            mode="markers+text",
            marker={"symbol": "square", "size": 18, "color": NEUTRAL},
            text=[
                f"<b>input</b><br>{_shape_text(spec.input_shape)}",
                f"<b>output</b><br>{_shape_text(p.output_shape)}",
            ],
            textposition=[_label_side(depth[n]) for n in io],
            textfont={"size": 11, "color": "#444444"},
            hoverinfo="text",
            name="input / output",
            showlegend=False,
            meta={"role": "io"},
        )
    )
    edges = [(u.source, u.use.name) for u in p.uses] + [(o, OUTPUT_NODE) for o in p.outputs]
    for src, dst in edges:
        fig.add_annotation(
            name=f"edge: {src} -> {'output' if dst == OUTPUT_NODE else dst}",
            x=pos[dst][0],
            y=pos[dst][1],
            ax=pos[src][0],
            ay=pos[src][1],
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            text="",
            showarrow=True,
            arrowhead=2,
            arrowsize=1.2,
            arrowwidth=1.5,
            arrowcolor="#777777",
            standoff=12,
            startstandoff=10,
        )
    ys = [y for _, y in pos.values()] + [y for tr in fig.data for y in tr.y if y is not None]
    fig.update_xaxes(visible=False, range=[-0.6, depth[OUTPUT_NODE] + 0.6])
    y_range = [min(ys) - 0.85, max(ys) + 0.85]
    fig.update_yaxes(visible=False, range=y_range)
    # About 60 px per unit leaves room for a node and its three-line label above or below it.
    height = int(min(420, max(340, 60 * (y_range[1] - y_range[0]) + 118)))
    if tied:
        title = "Which uses read the same stored tensor?"
        subtitle = "Tied: each shared tensor ◆ is stored once; dashed lines go to its uses"
    else:
        title = "Which uses would share a tensor if tied?"
        subtitle = "Untied: each use stores its own copy ■ of the shared tensor"
    return _layout(
        fig,
        title,
        subtitle,
        height=height,
        hovermode="closest",
        legend={"orientation": "h", "x": 0, "y": 0, "yanchor": "top", "font": {"size": 11}},
    )


# ----------------------------------------------------------------------------- tensor views
def tensor_views(spec: ModelSpec, tensor: str, values: np.ndarray | None = None, seed: int = 0) -> go.Figure:
    """Heatmaps side by side: the stored tensor, then the kernel each use reads from it.

    All panels share one diverging color scale centred on 0. Arrays with more than two axes are
    shown flattened to (prod(shape[:-1]), shape[-1]); a 1-D array as one row. The panel title
    then says "shown as".

    Args:
        spec: the model spec.
        tensor: a shared tensor of `spec` (or the name of a use with its own kernel).
        values: the stored tensor, in its stored shape; defaults to `initial_values(spec, seed)[tensor]`.
        seed: the seed of the default values.

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
    w = initial_values(spec, seed)[tensor] if values is None else np.asarray(values)
    if w.shape != stored_shape:
        raise ValueError(
            f"values for {tensor!r} must have its stored shape {stored_shape}, not a use's view of it. "
            f"Pass the stored tensor, e.g. result.weights['end']['tied'][{tensor!r}]. Received: shape={w.shape}"
        )
    panels = [(f"stored {tensor}", "", w)]
    for u in group:
        kernel = apply_rule_np(u.use.rule, w) if u.shared else w
        rule = u.use.rule.describe() if u.shared else "own kernel"
        panels.append((u.use.name, f"{rule} → ", kernel))

    # Name on the first line, (rule and) shape on the second, so narrow panels keep their titles apart.
    titles = []
    for label, rule, a in panels:
        text = f"<b>{label}</b><br>{rule}{_shape_text(a.shape)}"
        if a.ndim != 2:
            text += f"<br>shown as {_shape_text(_flat_2d(a).shape)}"
        titles.append(text)
    lines = max(t.count("<br>") + 1 for t in titles)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, horizontal_spacing=0.05)
    finite = np.abs(w[np.isfinite(w)]) if w.size else np.zeros(1)
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    flats = [_flat_2d(a) for _, _, a in panels]
    # Square cells show a transpose as a turned rectangle, unless a very long tensor would be a sliver.
    square = all(1 / 3 <= f.shape[0] / f.shape[1] <= 3 for f in flats)
    for col, ((label, _, _), flat) in enumerate(zip(panels, flats), start=1):
        fig.add_trace(
            go.Heatmap(
                z=flat,
                coloraxis="coloraxis",
                name=label,
                hovertemplate="row %{y}, column %{x}: %{z:.4f}<extra>" + label + "</extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="column index", row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
        if square:
            fig.update_yaxes(scaleanchor=f"x{col if col > 1 else ''}", constrain="domain", row=1, col=col)
            fig.update_xaxes(constrain="domain", row=1, col=col)
    fig.update_yaxes(title_text="row index", row=1, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        coloraxis={
            "colorscale": "RdBu",
            "reversescale": True,
            "cmin": -limit,
            "cmax": limit,
            "colorbar": {"title": {"text": "value"}, "thickness": 12},
        }
    )
    return _layout(
        fig,
        f"What does each use see of {tensor}?",
        "The stored tensor, then each use's kernel after its rule; one color scale, white = 0",
        height=HEIGHT + 17 * (lines - 2),  # a "shown as" line takes room from the heatmaps
        panel_title_lines=lines,
    )


# ----------------------------------------------------------------------------- parameters
def param_bars(report: ParamReport) -> go.Figure:
    """Parameters stored (owned) and only read (referenced) by each use, tied next to untied.

    Args:
        report: the `param_report(spec)` of a spec.

    Returns:
        The figure; its title states both totals. Traces carry `meta={"variant", "kind"}` with
        kind 'owned' or 'referenced'.
    """
    table = report.table
    title = f"Who stores the parameters? Tied {report.tied_total:,} vs untied {report.untied_total:,}"
    if table.empty:
        return _message(title, "The report has no uses.")
    uses = list(dict.fromkeys(table["use"]))
    fig = go.Figure()
    for variant in _variants(table):
        rows = table[table["variant"] == variant].set_index("use").reindex(uses)
        color = VARIANT_COLORS.get(variant, NEUTRAL)
        hover = [
            f"{variant} · {u}<br>{r['op']} kernel {r['kernel_shape']} from {r['tensor']} ({r['rule']})"
            f"<br>stores {r['owned_params']:,} ({r['bytes']:,} bytes), reads {r['referenced_params']:,} stored elsewhere"
            for u, r in rows.iterrows()
        ]
        owned = rows["owned_params"].to_numpy()
        referenced = rows["referenced_params"].to_numpy()
        fig.add_trace(
            go.Bar(
                x=uses,
                y=owned,
                name=f"{variant}: stored",
                marker={"color": color},
                offsetgroup=variant,
                hovertext=hover,
                hoverinfo="text",
                meta={"variant": variant, "kind": "owned"},
            )
        )
        if referenced.any():
            fig.add_trace(
                go.Bar(
                    x=uses,
                    y=referenced,
                    base=owned,
                    name=f"{variant}: read, stored by another use",
                    marker={
                        "color": "white",
                        "line": {"color": color, "width": 1.5},
                        "pattern": {"shape": "/", "fgcolor": color},
                    },
                    offsetgroup=variant,
                    hovertext=hover,
                    hoverinfo="text",
                    meta={"variant": variant, "kind": "referenced"},
                )
            )
    if report.saved > 0:
        subtitle = (
            f"Tying saves {report.saved:,} parameters ({report.saved * BYTES_PER_PARAM:,} bytes); "
            f"untied stores {report.ratio:.2f}× as many"
        )
    else:
        subtitle = "Nothing is shared, so both models store the same parameters"
    fig.update_xaxes(title_text="use (model order)")
    fig.update_yaxes(title_text="parameters (count)", rangemode="tozero")
    return _layout(fig, title, subtitle, barmode="group", bargap=0.25)


# ----------------------------------------------------------------------------- training curves
def loss_chart(history: pd.DataFrame, total_steps: int | None = None) -> go.Figure:
    """Training loss per step, tied vs untied, and accuracy on a second axis when there is one.

    Args:
        history: `TrainResult.history` (or `TrainProgress.history`): step, variant, loss, accuracy.
        total_steps: fixes the x range to [1, total_steps], so a live chart does not rescale.

    Returns:
        The figure; loss traces are named "<variant> loss", accuracy traces "<variant> accuracy".
    """
    title = "Does sharing change how fast the loss falls?"
    has_accuracy = not history.empty and bool(history["accuracy"].notna().any())
    # The trainer uses cross-entropy when there are classes (and so accuracy), else MSE.
    loss_label = "loss (cross-entropy, nats)" if has_accuracy else "loss (mean squared error)"
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x_range = None
    if total_steps is not None:
        x_range = [1, total_steps] if total_steps > 1 else [0.5, 1.5]
    if history.empty:
        if total_steps is None:
            return _message(title, "No training steps yet: the curves appear as training runs.")
        fig.update_xaxes(title_text=STEP_AXIS, range=x_range)
        fig.update_yaxes(title_text="loss", secondary_y=False)
        fig = _message(title, "No training steps yet: the curves appear as training runs.", fig=fig)
        fig.update_xaxes(visible=True)
        fig.update_yaxes(visible=True)
        return fig
    for variant in _variants(history):
        rows = history[history["variant"] == variant].sort_values("step")
        color = VARIANT_COLORS.get(variant, NEUTRAL)
        mode = _mode(len(rows))
        fig.add_trace(
            go.Scatter(
                x=rows["step"].to_numpy(),
                y=rows["loss"].to_numpy(),
                name=f"{variant} loss",
                mode=mode,
                line={"color": color, "width": 2.5},
                marker={"size": 5},
                meta={"variant": variant, "metric": "loss"},
            ),
            secondary_y=False,
        )
        if has_accuracy:
            fig.add_trace(
                go.Scatter(
                    x=rows["step"].to_numpy(),
                    y=rows["accuracy"].to_numpy(),
                    name=f"{variant} accuracy",
                    mode=mode,
                    line={"color": color, "width": 1.5, "dash": "dot"},
                    marker={"size": 4},
                    meta={"variant": variant, "metric": "accuracy"},
                ),
                secondary_y=True,
            )
    fig.update_xaxes(title_text=STEP_AXIS, range=x_range)
    fig.update_yaxes(title_text=loss_label, secondary_y=False)
    if has_accuracy:
        fig.update_yaxes(title_text="accuracy (fraction correct)", range=[0, 1.02], secondary_y=True, showgrid=False)
    subtitle = "Same start, same batches; solid = loss" + (", dotted = accuracy (right axis)" if has_accuracy else "")
    return _layout(fig, title, subtitle, hovermode="x unified")


def _add_use_lines(
    fig: go.Figure, vrows: pd.DataFrame, uses: list[str], colors: dict[str, str], column: str, variant: str, col: int
) -> None:
    """One line per use of `column` over steps, in the use's colour, into panel `col`."""
    for use in uses:
        urows = vrows[vrows["use"] == use].sort_values("step")
        fig.add_trace(
            go.Scatter(
                x=urows["step"].to_numpy(),
                y=urows[column].to_numpy(),
                name=use,
                mode=_mode(len(urows)),
                line={"color": colors[use], "width": 1.8},
                marker={"size": 5},
                legendgroup=use,
                showlegend=col == 1,
                meta={"variant": variant, "use": use},
            ),
            row=1,
            col=col,
        )


def gradient_flow(gradients: pd.DataFrame, tensor: str) -> go.Figure:
    """How hard each use pushes on a shared tensor, per step.

    Left (tied): each use's contribution to the one gradient of the shared tensor, and the norm
    of their sum, the gradient the optimizer applies (thick). Right (untied): each copy's own
    kernel gradient, mapped into the tensor's shape. Both panels share the y axis.

    Args:
        gradients: `TrainResult.gradients`.
        tensor: a shared tensor of the run.

    Returns:
        The figure; traces carry `meta={"variant", "use"}` or `meta={"variant": "tied", "role": "sum"}`.

    Raises:
        ValueError: if the frame has rows but none for `tensor`.
    """
    title = f"How hard does each use push on {tensor}?"
    rows = _tensor_rows(gradients, tensor, "gradients")
    if rows.empty:
        return _message(title, "No gradients recorded yet: they appear after the first recorded step.")
    uses = list(dict.fromkeys(rows["use"]))
    colors = use_colors(uses)
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.05,
        subplot_titles=("tied: each use's part, and the sum", "untied: each copy's own gradient"),
    )
    for col, variant in enumerate(VARIANTS, start=1):
        vrows = rows[rows["variant"] == variant]
        if vrows.empty:
            _panel_note(fig, f"no {variant} gradients recorded", col)
            continue
        _add_use_lines(fig, vrows, uses, colors, "grad_norm", variant, col)
        if variant == "tied":
            # Every use's row of a step repeats the same sum norm.
            sums = vrows.drop_duplicates("step").sort_values("step")
            fig.add_trace(
                go.Scatter(
                    x=sums["step"].to_numpy(),
                    y=sums["sum_norm"].to_numpy(),
                    name=f"sum: the gradient {tensor} gets",
                    mode=_mode(len(sums)),
                    line={"color": VARIANT_COLORS["tied"], "width": 4.5},
                    marker={"size": 6},
                    meta={"variant": "tied", "role": "sum"},
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text=STEP_AXIS)
    fig.update_yaxes(title_text="gradient norm (L2)", rangemode="tozero", row=1, col=1)
    fig.update_annotations(font_size=12)
    return _layout(
        fig,
        title,
        f"{len(uses)} use{'s' * (len(uses) > 1)} of {tensor}; thin: one use's gradient, thick: their sum (tied)",
        panel_title_lines=1,
    )


def gradient_cosine(gradients: pd.DataFrame, tensor: str) -> go.Figure:
    """Whether the uses of a shared tensor agree on which way to move it, per step.

    The cosine between one use's gradient and the sum of the other uses' gradients: above the
    zero line the uses agree, below they pull against each other.

    Args:
        gradients: `TrainResult.gradients`.
        tensor: a shared tensor of the run.

    Returns:
        The figure: tied (left) and untied (right) panels, y fixed to [-1, 1].

    Raises:
        ValueError: if the frame has rows but none for `tensor`.
    """
    title = f"Do the uses of {tensor} agree on which way to move it?"
    rows = _tensor_rows(gradients, tensor, "gradients")
    if rows.empty:
        return _message(title, "No gradients recorded yet: they appear after the first recorded step.")
    uses = list(dict.fromkeys(rows["use"]))
    if len(uses) == 1:
        return _message(
            title, f"Only one use ({uses[0]}) reads {tensor}, so there is no other use to agree or conflict with."
        )
    if rows["cosine_with_others"].isna().all():
        return _message(title, f"Every recorded gradient of {tensor} was zero, so there is no direction to compare.")
    colors = use_colors(uses)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05, subplot_titles=("tied", "untied"))
    for col, variant in enumerate(VARIANTS, start=1):
        fig.add_hrect(
            y0=0, y1=1, fillcolor="#1A9850", opacity=0.06, line_width=0, row=1, col=col, exclude_empty_subplots=False
        )
        fig.add_hrect(
            y0=-1, y1=0, fillcolor="#D73027", opacity=0.06, line_width=0, row=1, col=col, exclude_empty_subplots=False
        )
        fig.add_hline(y=0, line={"color": "#444444", "width": 1}, row=1, col=col, exclude_empty_subplots=False)
        for y, text in ((0.93, "agree ↑"), (-0.93, "conflict ↓")):
            fig.add_annotation(
                text=text,
                x=0.01,
                y=y,
                xref="x domain",
                xanchor="left",
                showarrow=False,
                row=1,
                col=col,
                font={"size": 11, "color": "#666666"},
            )
        vrows = rows[rows["variant"] == variant]
        if vrows.empty:
            _panel_note(fig, f"no {variant} gradients recorded", col)
            continue
        _add_use_lines(fig, vrows, uses, colors, "cosine_with_others", variant, col)
    fig.update_xaxes(title_text=STEP_AXIS)
    fig.update_yaxes(range=[-1.05, 1.05])
    fig.update_yaxes(title_text="cosine (−1 … 1)", row=1, col=1)
    return _layout(
        fig, title, "Cosine of each use's gradient with the sum of the others': above 0 they agree", panel_title_lines=1
    )


# ----------------------------------------------------------------------------- divergence
def _pair_rows(divergence: pd.DataFrame, tensor: str, spec: ModelSpec | None) -> tuple[pd.DataFrame, str]:
    """The divergence rows of `tensor`, or no rows and the reason why."""
    if spec is not None:
        names = [t.name for t in spec.tensors]
        if tensor not in names:
            raise ValueError(
                f"spec {spec.name!r} has no shared tensor {tensor!r}. Pick one of {names}. Received: tensor={tensor!r}"
            )
        group = plan(spec).group(tensor)
        if len(group) < 2:
            return divergence.iloc[0:0], (
                f"Only one use ({group[0].use.name}) reads {tensor}, so there is no pair of copies to compare."
            )
    if divergence.empty:
        return divergence, "No divergence recorded yet: it appears once training starts."
    rows = divergence[divergence["tensor"] == tensor]
    if rows.empty:
        # Without the spec a single-use tensor (no pairs) and a misspelt name look the same.
        known = list(dict.fromkeys(divergence["tensor"]))
        return rows, (
            f"No pairs of uses of {tensor!r} were recorded: a tensor read by one use has no pair.<br>"
            f"Tensors with pairs: {', '.join(known)}."
        )
    return rows, ""


def _pair_uses(rows: pd.DataFrame) -> list[str]:
    # Pairs come as combinations in model order, so first appearance gives the model order.
    return list(dict.fromkeys(u for a, b in zip(rows["use_a"], rows["use_b"]) for u in (a, b)))


def divergence_chart(divergence: pd.DataFrame, tensor: str, *, spec: ModelSpec | None = None) -> go.Figure:
    """How far apart the copies of a shared tensor drift, per pair of uses and step.

    Left: the distance ||W_a - W_b|| / ||W_0|| on the entries both uses read. Right: the cosine
    between them. Untied pairs are solid lines; the tied model (one variable, so always 0 and
    1) is the dashed reference.

    Args:
        divergence: `TrainResult.divergence` (step 0 is before training).
        tensor: a shared tensor of the run.
        spec: optional; when given, an unknown tensor raises and a single-use tensor is named.

    Returns:
        The figure; traces carry `meta={"variant", "pair": [a, b], "metric"}`.

    Raises:
        ValueError: if `spec` is given and has no shared tensor `tensor`.
    """
    title = f"How far do the untied copies of {tensor} drift apart?"
    rows, why = _pair_rows(divergence, tensor, spec)
    if rows.empty:
        return _message(title, why)
    pairs = list(dict.fromkeys(zip(rows["use_a"], rows["use_b"])))
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("how far apart", "how aligned"),
    )
    tied_in_legend = False
    for k, (a, b) in enumerate(pairs):
        prow = rows[(rows["use_a"] == a) & (rows["use_b"] == b)]
        for variant in _variants(prow):
            vrows = prow[prow["variant"] == variant].sort_values("step")
            tied = variant == "tied"
            for col, metric in enumerate(("relative_distance", "cosine"), start=1):
                show = col == 1 and (not tied or not tied_in_legend)
                fig.add_trace(
                    go.Scatter(
                        x=vrows["step"].to_numpy(),
                        y=vrows[metric].to_numpy(),
                        name="tied (one variable: 0 apart)" if tied else f"{a} ↔ {b}",
                        mode=_mode(len(vrows)),
                        line={
                            "color": VARIANT_COLORS["tied"] if tied else PAIR_PALETTE[k % len(PAIR_PALETTE)],
                            "width": 1.5 if tied else 2.2,
                            "dash": "dash" if tied else "solid",
                        },
                        marker={"size": 4},
                        legendgroup="tied" if tied else f"{a} ↔ {b}",
                        showlegend=show,
                        meta={"variant": variant, "pair": [a, b], "metric": metric},
                    ),
                    row=1,
                    col=col,
                )
            tied_in_legend = tied_in_legend or tied
    fig.update_xaxes(title_text="step (0 = before training)")
    fig.update_yaxes(title_text="‖Wa − Wb‖ / ‖W0‖ (ratio)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="cosine (1 = same direction)", row=1, col=2)
    fig.update_annotations(font_size=12)
    return _layout(
        fig,
        title,
        f"Each pair of uses of {tensor}, on the entries both read; tied stays at 0 and 1",
        panel_title_lines=1,
    )


def divergence_heatmap(
    divergence: pd.DataFrame, tensor: str, step: int, variant: str = "untied", *, spec: ModelSpec | None = None
) -> go.Figure:
    """Uses x uses matrix of the relative distance between their copies at one step.

    Args:
        divergence: `TrainResult.divergence`.
        tensor: a shared tensor of the run.
        step: the step to show; the nearest recorded step at or below it is used.
        variant: 'untied' (the interesting one) or 'tied' (all zeros).
        spec: optional; when given, an unknown tensor raises and a single-use tensor is named.

    Returns:
        The figure: one symmetric heatmap with a zero diagonal, uses in model order.

    Raises:
        ValueError: for a variant other than 'tied' or 'untied', or (with `spec`) an unknown tensor.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be 'tied' or 'untied'. Received: variant={variant!r}")
    rows, why = _pair_rows(divergence, tensor, spec)
    if rows.empty:
        return _message(f"Which uses of {tensor} have drifted apart?", why)
    uses = _pair_uses(rows)
    vrows = rows[rows["variant"] == variant]
    recorded = sorted(int(s) for s in vrows["step"].unique())
    at = max((s for s in recorded if s <= step), default=None)
    title = f"Which uses of {tensor} have drifted apart by step {step if at is None else at}?"
    if at is None:
        note = f"first recorded step is {recorded[0]}" if recorded else f"no {variant} rows recorded"
        return _message(title, f"No {variant} record at or before step {step} ({note}).")
    index = {u: i for i, u in enumerate(uses)}
    matrix = np.zeros((len(uses), len(uses)))
    for r in vrows[vrows["step"] == at].itertuples():
        i, j = index[r.use_a], index[r.use_b]
        matrix[i, j] = matrix[j, i] = r.relative_distance
    top = float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 0.0
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=uses,
            y=uses,
            zmin=0,
            zmax=top if top > 0 else 1.0,
            colorscale="Oranges" if variant == "untied" else "Blues",
            texttemplate="%{z:.3f}",
            colorbar={"title": {"text": "relative<br>distance"}, "thickness": 12},
            hovertemplate="%{y} ↔ %{x}: %{z:.4f}<extra></extra>",
            meta={"variant": variant, "step": at},
        )
    )
    fig.update_xaxes(title_text="use", constrain="domain")
    fig.update_yaxes(title_text="use", autorange="reversed", scaleanchor="x", constrain="domain")
    shown = f"step {at}" if at == step else f"step {at}, the last recorded step at or before {step}"
    return _layout(fig, title, f"{variant} model · ‖Wa − Wb‖ / ‖W0‖ at {shown}", height=360)


# ----------------------------------------------------------------------------- weights
def _weight_keys(weights: dict, name: str | None, spec: ModelSpec | None) -> tuple[dict[str, list[str]], str]:
    """The stored names each variant contributes, and a label for them."""
    first = next(iter(weights.values()))
    available = {v: list(first.get(v, {})) for v in VARIANTS}
    if name is None:
        return available, "all stored values"
    if spec is not None:
        p = plan(spec)
        tensors = [t.name for t in spec.tensors]
        if name in tensors:
            copies = [u.use.name for u in p.group(name)]
            return {"tied": [name], "untied": copies}, f"{name} and its {len(copies)} untied copies"
        for u in p.uses:
            if u.use.name == name:
                if u.shared:
                    return {
                        "tied": [u.use.tensor],
                        "untied": [name],
                    }, f"{name}: its copy, and the {u.use.tensor} it reads"
                return {"tied": [name], "untied": [name]}, f"{name}'s own kernel"
        raise ValueError(
            f"spec {spec.name!r} has no tensor or use {name!r}. Pick a shared tensor {tensors} or a use "
            f"{[u.use.name for u in p.uses]}, or None for all values. Received: name={name!r}"
        )
    if not any(name in keys for keys in available.values()):
        raise ValueError(
            f"no stored weights are named {name!r}. The tied model stores {available['tied']}; the untied "
            f"model stores {available['untied']}. Pick one of those, or None for all values. Received: name={name!r}"
        )
    return {v: [name] if name in keys else [] for v, keys in available.items()}, name


def weight_histograms(weights: dict, name: str | None = None, *, spec: ModelSpec | None = None) -> go.Figure:
    """Histograms of the stored weight values before and after training, tied and untied.

    Args:
        weights: `TrainResult.weights`: phase ('start' | 'end') -> variant -> name -> array.
        name: a stored name (shared tensor, untied copy = use name, own kernel) or None for all
            values. With `spec`, a tensor name also selects its untied copies, and a use name the
            tied tensor it reads.
        spec: optional; lets one name select the matching weights of both variants.

    Returns:
        The figure: tied (left) and untied (right) panels, before (grey) and after (variant
        color) overlaid on shared bins. Traces carry `meta={"variant", "phase", "names"}`.

    Raises:
        ValueError: for a name that no variant stores (or, with `spec`, that the spec lacks).
    """
    title = "Did training move the weight values?"
    phases = [ph for ph in ("start", "end") if weights.get(ph)]
    if not phases:
        return _message(title, "No weights recorded yet: they appear when a run has finished.")
    keys, label = _weight_keys({ph: weights[ph] for ph in phases}, name, spec)
    values = {
        (ph, v): np.concatenate(
            [np.ravel(weights[ph][v][k]) for k in keys[v] if k in weights[ph].get(v, {})] or [np.zeros(0)]
        )
        for ph in phases
        for v in VARIANTS
    }
    everything = np.concatenate(list(values.values()))
    everything = everything[np.isfinite(everything)]
    if everything.size == 0:
        return _message(title, "The selected weights hold no finite values.")
    lo, hi = float(everything.min()), float(everything.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    size = (hi - lo) / 40
    bins = {"start": lo, "end": hi + size * 1e-3, "size": size}  # one bin grid, so the shapes compare
    fig = make_subplots(rows=1, cols=2, shared_xaxes=True, horizontal_spacing=0.08, subplot_titles=VARIANTS)
    for col, variant in enumerate(VARIANTS, start=1):
        if not keys[variant]:
            _panel_note(fig, f"the {variant} model stores no {name!r};<br>pass spec= to match its weights", col)
            continue
        for ph in phases:
            before = ph == "start"
            fig.add_trace(
                go.Histogram(
                    x=values[(ph, variant)],
                    xbins=bins,
                    name="before training" if before else f"{variant} after training",
                    marker={"color": NEUTRAL if before else VARIANT_COLORS[variant]},
                    opacity=0.55 if before else 0.7,
                    legendgroup="start" if before else variant,
                    showlegend=not before or col == 1,
                    meta={"variant": variant, "phase": ph, "names": keys[variant]},
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="weight value")
    fig.update_yaxes(title_text="count (weights)", row=1, col=1)
    return _layout(fig, title, f"{label}; grey: before training, color: after", barmode="overlay", panel_title_lines=1)
