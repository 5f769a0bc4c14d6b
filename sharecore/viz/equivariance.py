"""The equivariance view: an input, its turn (or flip), and each use's output maps on both, tied and
untied, so that one sees the maps move to the next use's slot (`sharecore.core.symmetry`)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sharecore.core.symmetry import Equivariance
from sharecore.viz.style import diverging_axis, house_layout

ROW_PX = 120  # one row of square panels
SAME_MAPS = 1e-5  # relative error under which the view says 'the same' (float32 rounding is ~1e-7)


def _sources(found: Equivariance) -> dict[str, str]:
    """Slot -> the use whose turned maps it should hold."""
    return {b: a for a, b in found.slot.items() if b is not None}


def _verdict(error: float) -> str:
    if not np.isfinite(error):
        return "no slot"
    return f"same ({error:.0e})" if error < SAME_MAPS else f"off by {error:.2f}"


def _short(transform: str) -> str:
    """'turned' or 'flipped': how a panel title says what was done to the maps it names."""
    return "turned" if transform == "a quarter turn" else "flipped"


def equivariance_view(tied: Equivariance, untied: Equivariance | None = None, channel: int = 0) -> go.Figure:
    """An image and its transform through every turned or flipped use, tied (and untied) side by side.

    Per variant, two rows: the image, then each use's output maps on it; the transformed image, then
    each use's maps on that, titled with the use whose maps (the row above), transformed, should be
    there and by how much they differ (relative to the largest output; 'same' below SAME_MAPS).

    Args:
        tied: `sharecore.nn.equivariance.equivariance(spec, tied=True, ...)`.
        untied: the same for the untied model (e.g. where a run ended), or None.
        channel: the output channel drawn of each use's maps.

    Returns:
        The figure, a row per variant and input (tied on the input, on its transform, then untied); traces
        carry `meta={"variant", "turned": bool, "use": name, or None for the input}`.

    Raises:
        ValueError: for a channel the maps do not have.
    """
    # (variant, on the turned input?, its measurement): each variant's maps on the input, then on its turn.
    runs = [("tied", False, tied), ("tied", True, tied)]
    if untied is not None:
        runs += [("untied", False, untied), ("untied", True, untied)]
    channels = next(iter(tied.maps.values())).shape[-1]
    if not 0 <= channel < channels:
        raise ValueError(f"the uses' maps have channels 0 to {channels - 1}. Received: channel={channel}")
    cols = 1 + len(tied.uses)
    titles = []
    for _, turned, found in runs:
        titles.append(f"<b>{tied.transform.removeprefix('a ')}</b>" if turned else "<b>input</b>")
        came_from = _sources(found)
        for use in tied.uses:
            if not turned:
                titles.append(f"<b>{use}</b>")
            else:
                source = came_from.get(use)
                # Three short lines: five panels side by side leave about 20 characters each.
                titles.append(
                    f"<b>{use}</b><br>← {source} {_short(tied.transform)}<br>{_verdict(found.error[source])}"
                    if source
                    else f"<b>{use}</b><br>no slot"
                )
    fig = make_subplots(
        rows=len(runs), cols=cols, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.16
    )
    drawn = [found.turned_maps if turned else found.maps for _, turned, found in runs]
    limit = max(float(np.abs(m).max()) for maps in drawn for m in maps.values()) or 1.0
    image_limit = float(np.abs(tied.image).max()) or 1.0
    for r, ((variant, turned, _), maps) in enumerate(zip(runs, drawn), start=1):
        picture = tied.turned if turned else tied.image
        meta = {"variant": variant, "turned": turned}
        fig.add_trace(_heatmap(picture[:, :, 0], "coloraxis2", {**meta, "use": None}), row=r, col=1)
        for c, use in enumerate(tied.uses, start=2):
            fig.add_trace(_heatmap(maps[use][:, :, channel], "coloraxis", {**meta, "use": use}), row=r, col=c)
        fig.update_yaxes(title_text=f"{variant}, {'turned' if turned else 'input'}", row=r, col=1)
    fig.update_xaxes(showticklabels=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, autorange="reversed", constrain="domain")
    for r in range(1, len(runs) + 1):  # square pixels
        for c in range(1, cols + 1):
            x_axis = fig.get_subplot(r, c).xaxis.plotly_name  # "xaxis7"
            fig.update_yaxes(scaleanchor=x_axis.replace("axis", ""), row=r, col=c)
    fig.update_annotations(font_size=10)
    fig.update_layout(
        coloraxis=diverging_axis(limit, "output", x=1.02),
        coloraxis2={
            "colorscale": "Greys",
            "cmin": -image_limit if tied.image.min() < 0 else 0,
            "cmax": image_limit,
            "showscale": False,
        },
    )
    worst = {variant: found.worst for variant, _, found in runs}
    subtitle = f"Channel {channel} of each use's output maps. Tied: {_verdict(worst['tied'])}" + (
        f"; untied: {_verdict(worst['untied'])}" if "untied" in worst else ""
    )
    return house_layout(
        fig,
        "Turn the input: does each use's output move to the next use's slot?"
        if tied.transform == "a quarter turn"
        else "Flip the input: do the uses' outputs swap slots?",
        subtitle,
        height=len(runs) * (ROW_PX + 50) + 110,  # a row of squares and its three title lines
        panel_title_lines=3,
        how_to_read=f"For tied, then untied: the input and each use's output on it; below, the input after "
        f"{tied.transform} and each use's output on that, titled with the use whose output above, transformed the "
        "same way, should appear there and by how much it differs (of the largest output). Tied uses read one "
        "kernel, so the outputs move exactly; untied copies that trained apart do not.",
    )


def _heatmap(z: np.ndarray, coloraxis: str, meta: dict) -> go.Heatmap:
    return go.Heatmap(
        z=np.asarray(z, dtype=np.float32),
        coloraxis=coloraxis,
        meta=meta,
        hovertemplate="row %{y}, column %{x}: %{z:.4f}<extra></extra>",
    )
