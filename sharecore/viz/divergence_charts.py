"""Divergence charts: how far the untied copies of a shared tensor drift apart, and what training did to the weights.

Tidy frames of a run in (`TrainResult.divergence`, `weights`), a plotly figure out. Builders do not
raise on missing data: an empty frame (a tensor with a single use and so no pairs, pairs that read
no common entry) gives a figure whose annotation says why it is empty. They raise `ValueError` for a
tensor name the data or the spec does not know.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sharecore.core.plan import plan
from sharecore.core.rules import split_pairs
from sharecore.core.spec import ModelSpec
from sharecore.viz.style import (
    NEUTRAL,
    PAIR_PALETTE,
    VARIANT_COLORS,
    VARIANTS,
    house_layout,
    line_mode,
    message_figure,
    panel_note,
    variants_in,
)

HISTOGRAM_BINS = 40  # bins of the weight histograms, on one grid from the smallest value to the largest


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
                if group
                else f"No use reads {tensor}, so there is no pair of copies to compare."
            )
        if not pairs_left_out(spec, tensor)[0]:
            return divergence.iloc[0:0], (
                f"No two uses of {tensor} read a common entry (their slices lie side by side), so no pair "
                "has anything to compare."
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


def pairs_left_out(spec: ModelSpec, tensor: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(pairs of uses of `tensor` that divergence compares, pairs it leaves out), in model order.

    A pair is compared on the entries both uses read; a pair that reads no common entry (two
    slices side by side) has nothing to compare and is not recorded.
    """
    group = plan(spec).group(tensor)
    if not group:
        return [], []
    return split_pairs([(u.use.name, u.use.rule) for u in group], group[0].tensor_shape)


def _left_out_note(spec: ModelSpec | None, tensor: str, most: int = 3) -> str:
    """' · left out, no common entry: a ↔ c, c ↔ d' for a subtitle, or ''."""
    apart = pairs_left_out(spec, tensor)[1] if spec is not None else []
    if not apart:
        return ""
    names = ", ".join(f"{a} ↔ {b}" for a, b in apart[:most])
    more = f" and {len(apart) - most} more" if len(apart) > most else ""
    return f" · left out, no common entry: {names}{more}"


def _pair_uses(rows: pd.DataFrame) -> list[str]:
    # Pairs come as combinations in model order, so first appearance gives the model order.
    return list(dict.fromkeys(u for a, b in zip(rows["use_a"], rows["use_b"]) for u in (a, b)))


def divergence_chart(divergence: pd.DataFrame, tensor: str, *, spec: ModelSpec | None = None) -> go.Figure:
    """How far apart the copies of a shared tensor drift, per pair of uses and step.

    Left: the distance ||W_a - W_b|| / ||W_0|| on the entries both uses read. Right: the cosine
    between them. Untied pairs are solid lines; the tied model (one variable, so always 0 and
    1) is the dashed reference.

    Args:
        divergence: `TrainResult.divergence`: `sharecore.core.results.DIVERGENCE_COLUMNS` (step 0 is before training).
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
        return message_figure(title, why)
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
        for variant in variants_in(prow):
            vrows = prow[prow["variant"] == variant].sort_values("step")
            tied = variant == "tied"
            for col, metric in enumerate(("relative_distance", "cosine"), start=1):
                show = col == 1 and (not tied or not tied_in_legend)
                fig.add_trace(
                    go.Scatter(
                        x=vrows["step"].to_numpy(),
                        y=vrows[metric].to_numpy(),
                        name="tied (one variable: 0 apart)" if tied else f"{a} ↔ {b}",
                        mode=line_mode(len(vrows)),
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
    return house_layout(
        fig,
        title,
        f"Each pair of uses of {tensor}, on the entries both read; tied stays at 0 and 1"
        + _left_out_note(spec, tensor),
        panel_title_lines=1,
        how_to_read="Left: 0 = the copies are identical, higher = further apart. Right: 1 = they point the same "
        "way. One color per pair of untied copies; dashed blue: tied, which stays at 0 and 1.",
    )


def divergence_heatmap(
    divergence: pd.DataFrame, tensor: str, step: int, variant: str = "untied", *, spec: ModelSpec | None = None
) -> go.Figure:
    """Uses x uses matrix of the relative distance between their copies at one step.

    Args:
        divergence: `TrainResult.divergence`: `sharecore.core.results.DIVERGENCE_COLUMNS`.
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
        return message_figure(f"Which uses of {tensor} have drifted apart?", why)
    # Every use of the tensor, in model order, also one whose pairs were all left out.
    named = [u.use.name for u in plan(spec).group(tensor)] if spec is not None else []
    uses = list(dict.fromkeys([*named, *_pair_uses(rows)]))
    vrows = rows[rows["variant"] == variant]
    recorded = sorted(int(s) for s in vrows["step"].unique())
    at = max((s for s in recorded if s <= step), default=None)
    title = f"Which uses of {tensor} have drifted apart by step {step if at is None else at}?"
    if at is None:
        note = f"first recorded step is {recorded[0]}" if recorded else f"no {variant} rows recorded"
        return message_figure(title, f"No {variant} record at or before step {step} ({note}).")
    index = {u: i for i, u in enumerate(uses)}
    # Blank, not 0, for a pair that was not compared (no common entry): 0 would read "identical".
    matrix = np.full((len(uses), len(uses)), np.nan)
    np.fill_diagonal(matrix, 0.0)
    for r in vrows[vrows["step"] == at].itertuples():
        i, j = index[r.use_a], index[r.use_b]
        matrix[i, j] = matrix[j, i] = r.relative_distance
    top = float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 0.0
    fig = go.Figure(
        go.Heatmap(
            z=[[None if np.isnan(v) else float(v) for v in row] for row in matrix],
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
    left_out = " · blank: no common entry to compare" if np.isnan(matrix).any() else ""
    return house_layout(
        fig,
        title,
        f"{variant} model · ‖Wa − Wb‖ / ‖W0‖ at {shown}{left_out}",
        height=360,
        how_to_read="Each cell: how far apart the copies of two uses are (0 = identical); darker = further apart.",
    )


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
        return message_figure(title, "No weights recorded yet: they appear when a run has finished.")
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
        return message_figure(title, "The selected weights hold no finite values.")
    lo, hi = float(everything.min()), float(everything.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    # One bin grid for all four, so the shapes compare. The counts are binned here, not by plotly:
    # a histogram trace would carry every weight to the browser (40 MB of JSON for 2 million values).
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    width = (hi - lo) / HISTOGRAM_BINS
    fig = make_subplots(rows=1, cols=2, shared_xaxes=True, horizontal_spacing=0.08, subplot_titles=VARIANTS)
    for col, variant in enumerate(VARIANTS, start=1):
        if not keys[variant]:
            panel_note(fig, f"the {variant} model stores no {name!r};<br>pass spec= to match its weights", col)
            continue
        for ph in phases:
            before = ph == "start"
            v = values[(ph, variant)]
            counts, _ = np.histogram(v[np.isfinite(v)], bins=edges)
            fig.add_trace(
                go.Bar(
                    x=centres,
                    y=counts,
                    width=width,
                    customdata=np.stack([edges[:-1], edges[1:]], axis=1),
                    hovertemplate="%{customdata[0]:.4f} … %{customdata[1]:.4f}: %{y:,} weights",
                    name="before training" if before else f"{variant} after training",
                    marker={"color": NEUTRAL if before else VARIANT_COLORS[variant], "line": {"width": 0}},
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
    return house_layout(
        fig,
        title,
        f"{label}; grey: before training, color: after",
        barmode="overlay",
        bargap=0,
        panel_title_lines=1,
        how_to_read="Grey: the values before training; blue (tied) and orange (untied): after. "
        "A wider spread than grey means training moved the weights.",
    )
