"""The model diagram and the parameter bars: a spec (or its parameter report) in, a figure out.

Plain Python over the plan: importing this module does not import TensorFlow, so the Build
page draws a spec before any model exists.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from sharecore.params import BYTES_PER_PARAM, ParamReport
from sharecore.plan import UsePlan, plan
from sharecore.plotstyle import (
    NEUTRAL,
    VARIANT_COLORS,
    _layout,
    _message,
    _shape_text,
    _variants,
    tensor_colors,
    use_colors,
)
from sharecore.spec import INPUT_NODE, ModelSpec

OUTPUT_NODE = "__output__"  # diagram key of the output node; cannot clash with a use name


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
    if u.use.op == "conv2d_transpose":
        # Its channel axes are conv2d's the other way round, so a reader of the shape needs telling.
        c_out, c_in = u.kernel_shape[-2:]
        kernel += f"<br>kernel axes (height, width, out, in): {c_in} -> {c_out} channels"
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
