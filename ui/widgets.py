"""Small widgets every page draws the same way: a chart, the learning-rate picker, the shared-tensor
picker and rows of columns that stack on a narrow window."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import streamlit as st

from sharecore.core.config import LEARNING_RATES
from sharecore.core.spec import ModelSpec
from ui import presenter
from ui.text import plain

if TYPE_CHECKING:
    import pandas as pd


def stack_columns_when_narrow(first: str, below_px: int = 1200) -> None:
    """Below `below_px` of window, the row of columns holding the container keyed `first` stacks,
    that container on top (CSS; `first` is a key of ours, never user text)."""
    row = f'[data-testid="stHorizontalBlock"]:has(.st-key-{first})'
    st.html(
        f"""<style>
    @media (max-width: {below_px - 0.02}px) {{
      {row} {{ flex-direction: column; }}
      {row} > [data-testid="stColumn"] {{ width: 100% !important; flex: 1 1 auto !important; }}
      {row} > [data-testid="stColumn"]:has(.st-key-{first}) {{ order: -1; }}
    }}
    </style>"""
    )


def chart(fig, key: str | None = None) -> None:
    """Draws a figure (larger text in presenter mode) with its one line on how to read it beneath."""
    from sharecore.viz import style as plotstyle

    if presenter.on():
        fig = plotstyle.apply_presenter(fig)  # a copy: `fig` may be a cached, shared figure
    st.plotly_chart(fig, key=key, width="stretch")
    reading = plotstyle.how_to_read(fig)
    if reading:
        st.caption(reading)


def figures_table(frame: pd.DataFrame, *, first: Sequence[str] = (), pinned: str | None = None) -> None:
    """A read-only table of figures, the columns a class compares (`first`, in that order) first and
    columns with no value at all left out; numbers to 4 significant digits.

    In presenter mode it is an HTML table (st.table): its text grows with the page's, and a header
    wraps where the grid of st.dataframe, drawn on a canvas at a fixed 14 px, cut it ("loss ti...").
    Cells and headers may be user text (run labels): there they are shown as written (`plain`).
    """
    import pandas as pd

    frame = frame.dropna(axis="columns", how="all")
    order = [c for c in first if c in frame.columns] + [c for c in frame.columns if c not in first]
    frame = frame[order]
    numbers = [c for c in order if pd.api.types.is_float_dtype(frame[c])]
    if not presenter.on():
        config = {c: st.column_config.NumberColumn(format="%.4g") for c in numbers}
        if pinned:
            config[pinned] = st.column_config.TextColumn(pinned=True)
        st.dataframe(frame, hide_index=True, width="stretch", column_config=config)
        return
    shown = pd.DataFrame(
        {
            plain(str(c)): ["–" if pd.isna(v) else f"{v:.4g}" if c in numbers else plain(str(v)) for v in frame[c]]
            for c in order
        }
    )
    st.table(shown, hide_index=True)


def data_table(frame: pd.DataFrame, *, first: Sequence[str] = ()) -> None:
    """A read-only table that is not only figures (measurements, parameter counts, a model's shared
    weights): off presenter mode Streamlit's grid, every value as computed, sortable; in presenter mode
    `figures_table`'s HTML table, whose text a class reads from the back of a room (the grid, drawn on
    a canvas, keeps 14 px)."""
    if presenter.on():
        figures_table(frame, first=first)
    else:
        st.dataframe(frame, hide_index=True, width="stretch")


def learning_rate_picker(
    key: str, value: float, *, disabled: bool = False, on_change: Callable[..., None] | None = None, args: tuple = ()
) -> float:
    """The log-scale learning-rate picker of every page: `LEARNING_RATES` (1-2-5 steps over the range the
    app trains with, `sharecore.core.config`); returns the rate picked.

    A value between the steps (from a link) is kept as an option of its own, so opening a link
    never changes its rate.
    """
    options = sorted({*LEARNING_RATES, float(value)})
    if st.session_state.get(key) not in options:
        st.session_state[key] = float(value)
    return float(
        st.select_slider(
            "Learning rate",
            options,
            key=key,
            format_func=lambda lr: f"{lr:g}",
            disabled=disabled,
            on_change=on_change,
            args=args,
            help="Log scale: each step multiplies the rate by 2 or 2.5. Too high and the loss jumps or "
            "grows; too low and it hardly moves.",
        )
    )


def tensor_picker(spec_: ModelSpec, key: str, min_uses: int = 1) -> str | None:
    """A selector over the shared tensors read by at least `min_uses` uses; None if there are none."""
    counts = {t.name: sum(u.tensor == t.name for u in spec_.uses) for t in spec_.tensors}
    names = [name for name, n in counts.items() if n >= min_uses]
    if not names:
        return None
    if len(names) == 1:
        return names[0]
    return st.selectbox(
        "Shared tensor",
        names,
        key=key,
        format_func=lambda n: f"{n} ({counts[n]} uses)",
    )


def uses_of(spec_: ModelSpec, tensor: str) -> int:
    return sum(u.tensor == tensor for u in spec_.uses)
