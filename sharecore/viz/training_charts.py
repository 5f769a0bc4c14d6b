"""Training charts: the loss (and accuracy) per step, and the gradient each use sends to a shared tensor.

Tidy frames of a run in (`TrainResult.history`, `heldout`, `gradients`), a plotly figure out.
Builders do not raise on missing data: an empty frame (a live chart before the first step) gives
a figure whose annotation says why it is empty. They raise `ValueError` for a tensor name the data
does not know.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sharecore.core.results import gradients_zero_from
from sharecore.viz.style import (
    ACCURACY_AXIS,
    INK,
    NEUTRAL,
    STEP_AXIS,
    VARIANT_COLORS,
    VARIANTS,
    house_layout,
    line_mode,
    message_figure,
    panel_note,
    tensor_rows,
    use_colors,
    variants_in,
)


# ----------------------------------------------------------------------------- training curves
def loss_chart(
    history: pd.DataFrame,
    total_steps: int | None = None,
    heldout: pd.DataFrame | None = None,
    *,
    log_y: bool = False,
) -> go.Figure:
    """Training loss per step, tied vs untied, and accuracy on a second axis when there is one.

    Args:
        history: `TrainResult.history` (or a running `BackgroundRun.history`): `sharecore.core.results.HISTORY_COLUMNS`.
        total_steps: fixes the x range to [1, total_steps], so a live chart does not rescale.
        heldout: `TrainResult.heldout` (`HELDOUT_COLUMNS`, on held-out samples), drawn
            dashed; None or empty draws none.
        log_y: draw the loss axis on a log scale (a loss that falls by decades stays readable);
            the accuracy axis stays linear.

    Returns:
        The figure; loss traces are named "<variant> loss", accuracy traces "<variant> accuracy",
        held-out loss traces "<variant> held-out loss".
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
            return message_figure(title, "No training steps yet: the curves appear as training runs.")
        fig.update_xaxes(title_text=STEP_AXIS, range=x_range)
        fig.update_yaxes(title_text="loss", secondary_y=False)
        fig = message_figure(title, "No training steps yet: the curves appear as training runs.", fig=fig)
        fig.update_xaxes(visible=True)
        fig.update_yaxes(visible=True)
        return fig
    for variant in variants_in(history):
        rows = history[history["variant"] == variant].sort_values("step")
        color = VARIANT_COLORS.get(variant, NEUTRAL)
        mode = line_mode(len(rows))
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
    has_heldout = heldout is not None and not heldout.empty
    for variant in variants_in(heldout) if has_heldout else []:
        rows = heldout[heldout["variant"] == variant].sort_values("step")
        fig.add_trace(
            go.Scatter(
                x=rows["step"].to_numpy(),
                y=rows["loss"].to_numpy(),
                name=f"{variant} held-out loss",
                mode="lines+markers",
                line={"color": VARIANT_COLORS.get(variant, NEUTRAL), "width": 2, "dash": "dash"},
                marker={"size": 6, "symbol": "diamond"},
                meta={"variant": variant, "metric": "held-out loss"},
            ),
            secondary_y=False,
        )
    fig.update_xaxes(title_text=STEP_AXIS, range=x_range)
    fig.update_yaxes(title_text=loss_label + (", log scale" if log_y else ""), secondary_y=False)
    if log_y:
        fig.update_yaxes(type="log", secondary_y=False)
    if has_accuracy:
        fig.update_yaxes(title_text="accuracy (correct)", secondary_y=True, showgrid=False, **ACCURACY_AXIS)
    styles = ["dashed = held-out loss (samples never trained on)"] * has_heldout
    styles += ["dotted = accuracy (right axis)"] * has_accuracy
    # Line styles are named only when there is more than one to tell apart.
    subtitle = "Same start, same batches" + ("; " + ", ".join(["solid = training loss", *styles]) if styles else "")
    reading = ["Lower loss is better. Blue: tied, orange: untied. Solid: training loss"]
    reading += ["dashed: held-out loss"] * has_heldout
    reading += ["dotted: accuracy on the right axis (higher is better)"] * has_accuracy
    how = ", ".join(reading) + "." + (" The loss axis is logarithmic: equal steps are equal factors." if log_y else "")
    return house_layout(fig, title, subtitle, how_to_read=how, hovermode="x unified")


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
                mode=line_mode(len(urows)),
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
        gradients: `TrainResult.gradients`: `sharecore.core.results.GRADIENT_COLUMNS`.
        tensor: a shared tensor of the run.

    Returns:
        The figure; traces carry `meta={"variant", "use"}` or `meta={"variant": "tied", "role": "sum"}`.

    Raises:
        ValueError: if the frame has rows but none for `tensor`.
    """
    title = f"How hard does each use push on {tensor}?"
    rows = tensor_rows(gradients, tensor, "gradients")
    if rows.empty:
        return message_figure(title, "No gradients recorded yet: they appear after the first recorded step.")
    uses = list(dict.fromkeys(rows["use"]))
    colors = use_colors(uses)
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.05,
        subplot_titles=("tied", "untied"),  # short: the legend takes much of a narrow chart; the caption says more
    )
    for col, variant in enumerate(VARIANTS, start=1):
        vrows = rows[rows["variant"] == variant]
        if vrows.empty:
            panel_note(fig, f"no {variant} gradients recorded", col)
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
                    mode=line_mode(len(sums)),
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
    return house_layout(
        fig,
        title,
        f"{len(uses)} use{'s' * (len(uses) > 1)} of {tensor}; thin: one use's gradient, thick: their sum (tied)",
        panel_title_lines=1,
        how_to_read=f"Higher = a stronger push on {tensor}. Thin lines, one color per use: the gradient each use "
        f"sends; thick blue: their sum, the one gradient the tied {tensor} gets. Left: tied, right: untied.",
    )


def gradient_cosine(gradients: pd.DataFrame, tensor: str) -> go.Figure:
    """Whether the uses of a shared tensor agree on which way to move it, per step.

    The cosine between one use's gradient and the sum of the other uses' gradients: above the
    zero line the uses agree, below they pull against each other.

    Args:
        gradients: `TrainResult.gradients`: `sharecore.core.results.GRADIENT_COLUMNS`.
        tensor: a shared tensor of the run.

    Returns:
        The figure: tied (left) and untied (right) panels, y fixed to [-1, 1].

    Raises:
        ValueError: if the frame has rows but none for `tensor`.
    """
    title = f"Do the uses of {tensor} agree on which way to move it?"
    rows = tensor_rows(gradients, tensor, "gradients")
    if rows.empty:
        return message_figure(title, "No gradients recorded yet: they appear after the first recorded step.")
    uses = list(dict.fromkeys(rows["use"]))
    if len(uses) == 1:
        return message_figure(
            title, f"Only one use ({uses[0]}) reads {tensor}, so there is no other use to agree or conflict with."
        )
    if rows["cosine_with_others"].isna().all():
        return message_figure(
            title, f"Every recorded gradient of {tensor} was zero, so there is no direction to compare."
        )
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
                font={"size": 12, "color": "#666666"},  # 18 px in presenter mode (MIN_TEXT_PX)
            )
        vrows = rows[rows["variant"] == variant]
        if vrows.empty:
            panel_note(fig, f"no {variant} gradients recorded", col)
            continue
        if len(uses) == 2:
            # With two uses "the others" is the other use, and cos(a, b) = cos(b, a): one line, named for both.
            _add_use_lines(fig, vrows, uses[:1], colors, "cosine_with_others", variant, col)
            fig.data[-1].name = f"{uses[0]} = {uses[1]} (identical for two uses)"
            fig.data[-1].meta = {"variant": variant, "use": uses[0], "same_as": uses[1]}
        else:
            _add_use_lines(fig, vrows, uses, colors, "cosine_with_others", variant, col)
    fig.update_xaxes(title_text=STEP_AXIS)
    fig.update_yaxes(range=[-1.05, 1.05])
    fig.update_yaxes(title_text="cosine (−1 … 1)", row=1, col=1)
    if len(uses) == 2:
        subtitle = f"Cosine between the gradients of {uses[0]} and {uses[1]}: above 0 they agree"
        how = (
            "Above 0 (green): the two uses push the same way; below 0 (red): against each other. With two uses "
            "each one's line is the other's, so one line is drawn. Left: tied, right: untied."
        )
    else:
        subtitle = "Cosine of each use's gradient with the sum of the others': above 0 they agree"
        how = (
            f"Above 0 (green): the use pushes {tensor} the same way as the other uses together; below 0 (red): "
            "against them. One color per use. Left: tied, right: untied."
        )
    ends = gradients_zero_from(rows)
    for col, variant in enumerate(VARIANTS, start=1):
        if variant in ends:  # a collapsed run: its cosine has no value once every gradient is zero
            fig.add_vline(x=ends[variant], line={"color": "#666666", "width": 1, "dash": "dot"}, row=1, col=col)
            late = ends[variant] > rows["step"].max() / 2  # the note on the side of the line with room
            fig.add_annotation(
                x=ends[variant],
                y=0.6,
                text=f"every gradient zero<br>from step {ends[variant]}",
                name="gradient ends",
                xanchor="right" if late else "left",
                align="right" if late else "left",
                showarrow=False,
                row=1,
                col=col,
                font={"size": 12, "color": "#444444"},
            )
    if ends:
        how += (
            " A line that stops at the dotted step: from there every gradient was zero (the run collapsed), and "
            "zero gradients have no direction to compare."
        )
    return house_layout(fig, title, subtitle, panel_title_lines=1, how_to_read=how)


def gradient_split(gradients: pd.DataFrame, tensor: str) -> go.Figure:
    """How one batch's gradient of a shared tensor splits between its uses: a bar per use and their sum.

    For a single inspection (`sharecore.inspect`: one step, tied), where `gradient_flow`'s lines over
    steps would be single points beside an empty untied panel. The last recorded step is drawn.

    Args:
        gradients: `Inspection.gradients` or `TrainResult.gradients` (`GRADIENT_COLUMNS`).
        tensor: a shared tensor in it.

    Returns:
        The figure: one horizontal bar per use (its gradient's norm, colored as in `gradient_flow`) and a
        thick tied-blue bar for their sum; each use's hover gives its cosine with the other uses.

    Raises:
        ValueError: if the frame has rows but none for `tensor`.
    """
    title = f"How does one batch's gradient of {tensor} split between its uses?"
    rows = tensor_rows(gradients, tensor, "gradients")
    rows = rows[rows["variant"] == "tied"]
    if rows.empty:
        return message_figure(title, "No gradient of a tied model recorded for this tensor.")
    rows = rows[rows["step"] == rows["step"].max()]
    uses = list(dict.fromkeys(rows["use"]))
    colors = use_colors(uses)
    fig = go.Figure()
    for r in rows.itertuples():
        fig.add_trace(
            go.Bar(
                x=[r.grad_norm],
                y=[r.use],
                orientation="h",
                name=r.use,
                marker={"color": colors[r.use]},
                text=[f"{r.grad_norm:.3g}"],
                textposition="outside",
                outsidetextfont={"color": INK},  # plotly's default grey is 3.7:1 on white
                hovertemplate=f"{r.use}: norm %{{x:.4g}}, cosine with the other uses {r.cosine_with_others:.3f}"
                "<extra></extra>",
                meta={"variant": "tied", "use": r.use},
            )
        )
    total = float(rows["sum_norm"].iloc[0])  # every use's row repeats the sum's norm
    fig.add_trace(
        go.Bar(
            x=[total],
            y=["sum"],
            orientation="h",
            name=f"sum: the gradient {tensor} gets",
            marker={"color": VARIANT_COLORS["tied"]},
            text=[f"{total:.3g}"],
            textposition="outside",
            outsidetextfont={"color": INK},
            meta={"variant": "tied", "role": "sum"},
        )
    )
    fig.update_xaxes(title_text="gradient norm (L2)", rangemode="tozero")
    fig.update_yaxes(autorange="reversed")
    return house_layout(
        fig,
        title,
        f"{len(uses)} use{'s' * (len(uses) > 1)} of {tensor}, on one batch; the parts add up (as vectors) to the sum",
        how_to_read="Longer = a stronger push. The sum can be shorter than the parts when the uses pull apart.",
        showlegend=False,
    )
