"""The model diagram and the parameter bars: a spec (or its parameter report) in, a drawing out.

The diagram is Graphviz DOT text (`model_dot`), laid out by Graphviz itself (in the browser,
by `st.graphviz_chart`; any `dot` binary draws it too), so labels never collide however many
uses a model has. Plain Python over the plan: importing this module does not import
TensorFlow, so the Build page draws a spec before any model exists.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go

from sharecore.core.params import BYTES_PER_PARAM, ParamReport
from sharecore.core.plan import UsePlan, plan
from sharecore.core.shapes import rule_output_shape
from sharecore.core.spec import ModelSpec, Rule
from sharecore.core.text import NOT_IN_A_LINE
from sharecore.viz.style import (
    NEUTRAL,
    VARIANT_COLORS,
    house_layout,
    message_figure,
    readable,
    shape_text,
    tensor_colors,
    use_colors,
    variants_in,
)

# ----------------------------------------------------------------------------- model diagram
# Node ids are made by the diagram (in0, u3, t1, c3_0, out0), never from user text: a name only
# ever appears inside an escaped label or tooltip.


def _clean(text: object) -> str:
    """User text as one line of printable characters (controls, line breaks and lone surrogates become spaces or U+FFFD)."""
    text = str(text).encode("utf-8", "replace").decode("utf-8")  # a lone surrogate cannot be written out
    return NOT_IN_A_LINE.sub(" ", text)


def dot_html(text: object) -> str:
    """Text for inside a Graphviz HTML-like label (`label=<...>`): shown as written, never as markup.

    The HTML-like label is XML: escaping `&`, `<`, `>` and quotes leaves nothing that can close
    the label or add markup; braces, brackets and backslashes have no meaning there.
    """
    return html.escape(_clean(text), quote=True)


def dot_string(text: object) -> str:
    """A double-quoted DOT string (with its quotes) for an attribute such as `tooltip`.

    Inside quotes DOT only gives `\\"` a meaning, and Graphviz's escString expands `\\N`,
    `\\G`, `\\n`... in tooltips: doubling each backslash and escaping each quote leaves the
    user's text as written. A line break of our own is written as `\\n` by the caller.
    """
    return '"' + _clean(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tooltip(lines: list[str]) -> str:
    """A tooltip attribute value of several lines: each line escaped, joined by Graphviz's `\\n`."""
    return '"' + "\\n".join(dot_string(line)[1:-1] for line in lines) + '"'


def _axis_ranges(begin: tuple[int, ...], size: tuple[int, ...], shape: tuple[int, ...] | None) -> str:
    """'[0:4, :]': the part of each axis a slice reads, ':' for a whole axis."""
    parts = []
    for i, (b, s) in enumerate(zip(begin, size)):
        whole = shape is not None and i < len(shape) and b == 0 and s == shape[i]
        parts.append(":" if whole else f"{b}:{b + s}")
    return "[" + ", ".join(parts) + "]"


def rule_text(rule: Rule, tensor_shape: tuple[int, ...]) -> str:
    """How a use reads its tensor, in a few words: 'as stored', 'transpose', 'slice [0:4, :]', ...

    Args:
        rule: the use's reshape rule.
        tensor_shape: the shape of the stored tensor it reads.

    Returns:
        The rule's steps in order, joined by ' then '.
    """
    words = []
    shape: tuple[int, ...] | None = tuple(tensor_shape)
    for step in rule.steps:
        if step.kind == "identity":
            words.append("as stored")
        elif step.kind == "slice":
            words.append(f"slice {_axis_ranges(step.begin or (), step.size or (), shape)}")
        elif step.kind == "transpose":
            words.append("transpose" if step.perm is None else f"transpose {tuple(step.perm)}")
        else:
            words.append(step.describe())
        try:
            shape = None if shape is None else tuple(rule_output_shape(step, shape, "diagram"))
        except ValueError:  # a plan has checked the rule; without one, stop naming whole axes
            shape = None
    return " then ".join(words) if words else "as stored"


def _of(tensor: str, rule: str) -> str:
    """'W as stored' or 'slice [:, 0:4] of W'."""
    return f"{tensor} as stored" if rule == "as stored" else f"{rule} of {tensor}"


def _use_tooltip(u: UsePlan, tied: bool) -> list[str]:
    """The hover detail of a use: what it reads, its shapes, its kernel and bias."""
    rule = rule_text(u.use.rule, u.tensor_shape)
    if u.shared and tied:
        kernel = f"reads {_of(u.use.tensor, rule)}, one shared tensor {shape_text(u.tensor_shape)}"
    elif u.shared:
        kernel = f"stores its own copy {shape_text(u.kernel_shape)}, initialised as {_of(u.use.tensor, rule)}"
    else:
        kernel = f"stores its own kernel {shape_text(u.kernel_shape)}"
    lines = [
        f"{u.use.name} ({u.use.op}, {u.use.activation})",
        f"reads node '{u.source}' {shape_text(u.in_shape)} -> {shape_text(u.out_shape)}",
        kernel,
    ]
    if u.use.op == "conv2d_transpose":
        # Its channel axes are conv2d's the other way round, so a reader of the shape needs telling.
        c_out, c_in = u.kernel_shape[-2:]
        lines.append(f"kernel axes (height, width, out, in): {c_in} -> {c_out} channels")
    lines.append(f"bias: {u.use.bias}")
    return lines


def _light(color: str) -> str:
    """`color` (#rrggbb) mixed 80 % with white: a fill that black text stays readable on."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * 0.8):02x}" for c in (r, g, b))


def model_dot(spec: ModelSpec, tied: bool = True) -> str:
    """The model graph as Graphviz DOT, left to right, with each shared tensor in its own color.

    Input and output are grey boxes; each use is a box with its name (in the use's color, the
    color of its lines in the gradient charts, darkened where needed to read as text: `readable`), op
    and kernel shape, outlined in the color of
    the shared tensor it reads (grey for an own kernel). Solid grey arrows carry the data.
    Tied: one node per shared tensor ("stored once, read by n uses") with a dashed arrow in its
    color to each use that reads it, labelled with the rule ("as stored", "transpose",
    "slice [0:4, :]"). Untied: one node per use for the copy it stores, with a solid arrow
    labelled with the rule its copy was initialised by. Every node and tensor arrow has a
    tooltip with the detail.

    Names are user text: they appear only inside escaped labels and tooltips (`dot_html`,
    `dot_string`), never as node ids.

    Args:
        spec: the model spec.
        tied: draw the tied model (True) or the untied one.

    Returns:
        The DOT source of a `digraph`.

    Raises:
        ValueError: if the spec cannot be built.
    """
    p = plan(spec)
    t_colors = tensor_colors(spec)
    ids = {"input": "in0"} | {u.use.name: f"u{i}" for i, u in enumerate(p.uses)}
    lines = [
        "digraph model {",
        '  graph [rankdir=LR, bgcolor="transparent", nodesep=0.25, ranksep=0.45, fontname="Helvetica", fontsize=11, '
        f'labelloc=b, fontcolor="#555555", label=<{"tied" if tied else "untied"} model: {dot_html(spec.name)}>, '
        f"tooltip={dot_string(spec.name)}];",
        '  node [fontname="Helvetica", fontsize=11, shape=box, style="rounded,filled", fillcolor="white", margin="0.1,0.05"];',
        '  edge [fontname="Helvetica", fontsize=10, color="#777777", arrowsize=0.7];',
        f'  in0 [label=<<b>input</b><br/>{dot_html(shape_text(spec.input_shape))}>, fillcolor="#eeeeee", '
        f'color="{NEUTRAL}", tooltip={_tooltip([f"input, per sample: {shape_text(spec.input_shape)}"])}];',
        f'  out0 [label=<<b>output</b><br/>{dot_html(shape_text(p.output_shape))}>, fillcolor="#eeeeee", '
        f'color="{NEUTRAL}", tooltip={_tooltip([f"output, per sample: {shape_text(p.output_shape)}"])}];',
    ]
    for t, uses in ((t.name, p.group(t.name)) for t in spec.tensors):
        colors = use_colors([u.use.name for u in uses])
        for u in uses:
            lines.append(
                f'  {ids[u.use.name]} [label=<<font color="{readable(colors[u.use.name])}"><b>{dot_html(u.use.name)}</b></font>'
                f"<br/>{dot_html(u.use.op)} {dot_html(shape_text(u.kernel_shape))}>, "
                f'color="{t_colors[t]}", penwidth=2, tooltip={_tooltip(_use_tooltip(u, tied))}];'
            )
    for u in p.uses:
        if not u.shared:
            lines.append(
                f"  {ids[u.use.name]} [label=<<b>{dot_html(u.use.name)}</b><br/>{dot_html(u.use.op)} "
                f'{dot_html(shape_text(u.kernel_shape))}<br/>own kernel>, color="{NEUTRAL}", '
                f"tooltip={_tooltip(_use_tooltip(u, tied))}];"
            )
    for u in p.uses:
        lines.append(f"  {ids[u.source]} -> {ids[u.use.name]};")
    for o in p.outputs:
        lines.append(f"  {ids[o]} -> out0;")
    for k, t in enumerate(spec.tensors):
        group = p.group(t.name)
        color = t_colors[t.name]
        if tied:
            reads = f"read by {len(group)} use{'s' * (len(group) != 1)}"
            lines.append(
                f"  t{k} [label=<<b>{dot_html(t.name)}</b> {dot_html(shape_text(t.shape))}<br/>stored once, {reads}>, "
                f'shape=box, style="filled", fillcolor="{_light(color)}", color="{color}", penwidth=2, '
                f"tooltip={_tooltip([f'shared tensor {t.name} {shape_text(t.shape)}', f'one variable, {reads}', 'its gradient is the sum of their gradients'])}];"
            )
            for u in group:
                rule = rule_text(u.use.rule, u.tensor_shape)
                lines.append(
                    f'  t{k} -> {ids[u.use.name]} [style=dashed, color="{color}", fontcolor="{readable(color)}", penwidth=1.5, '
                    f"label=<{dot_html(rule)}>, tooltip={_tooltip([f'{u.use.name} reads {_of(t.name, rule)}'])}];"
                )
        else:
            for j, u in enumerate(group):
                rule = rule_text(u.use.rule, u.tensor_shape)
                lines.append(
                    f"  c{k}_{j} [label=<copy of <b>{dot_html(t.name)}</b><br/>{dot_html(shape_text(u.kernel_shape))}>, "
                    f'shape=box, style="filled,dashed", fillcolor="{_light(color)}", color="{color}", '
                    f"tooltip={_tooltip([f'{u.use.name} stores its own copy {shape_text(u.kernel_shape)}', f'initialised as {_of(t.name, rule)}, then trained on its own'])}];"
                )
                lines.append(
                    f'  c{k}_{j} -> {ids[u.use.name]} [color="{color}", fontcolor="{readable(color)}", '
                    f"label=<init: {dot_html(rule)}>];"
                )
    lines.append("}")
    return "\n".join(lines) + "\n"


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
        return message_figure(title, "The report has no uses.")
    uses = list(dict.fromkeys(table["use"]))
    fig = go.Figure()
    for variant in variants_in(table):
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
    return house_layout(
        fig,
        title,
        subtitle,
        barmode="group",
        bargap=0.25,
        how_to_read="Solid bars: parameters a use stores; hatched: parameters it reads that another use stores. "
        "Blue: tied, orange: untied.",
    )
