"""Section `growth`: speed and memory against the number of uses of one shared tensor and its size."""

from __future__ import annotations

import functools
from pathlib import Path

import sharecore
from bench.common import Mode, Section, alternate, median, steps, table
from bench.reference import chain_spec
from bench.trainer import BarePair
from sharecore.core.config import TrainConfig
from sharecore.nn.tfimport import tf


def _sweeps(mode: Mode) -> tuple[tuple[int, ...], int, tuple[int, ...], int]:
    """(uses to try, width for that sweep, widths to try, uses for that sweep)."""
    if mode.name == "full":
        return tuple(range(1, 9)), 32, (16, 32, 64, 128, 256, 512), 4
    if mode.name == "quick":
        return (1, 2, 4, 8), 32, (32, 256), 4
    return (1, 2), 16, (16,), 2


def measure(uses: int, width: int, mode: Mode, quick_steps: int = 80) -> dict[str, float]:
    """Everything one row of the growth table holds, for a chain of `uses` dense uses of a (width, width) W."""
    spec = chain_spec(uses, width)
    n = steps(mode, quick_steps)
    config = TrainConfig(steps=n, seed=0)
    first = sharecore.train(spec, config)  # builds and traces this spec's trainer
    recorded = first.gradients.step.eq(1).sum() + first.divergence.step.eq(1).sum()
    frames = (first.history, first.gradients, first.divergence)
    recorded_kb = sum(int(f.memory_usage(deep=True).sum()) for f in frames) / 1024 * 100 / first.steps_done
    tied, untied = BarePair(spec, config, (True,)), BarePair(spec, config, (False,))
    for bare in (tied, untied):
        bare.chunk(tf.constant(bare.idx[:2]))  # traces, not timed

    def train_case(every: int) -> float:
        result = sharecore.train(spec, TrainConfig(steps=n, seed=0, record_every=every))
        return result.steps_done / result.seconds

    result = alternate(
        {
            "tied": functools.partial(tied.chunked, n),
            "untied": functools.partial(untied.chunked, n),
            "train": functools.partial(train_case, 1),
            "train10": functools.partial(train_case, 10),
        },
        mode.rounds,
    )
    return {
        "uses": uses,
        "width": width,
        "tied": median(result["tied"]),
        "untied": median(result["untied"]),
        "train": median(result["train"]),
        "train10": median(result["train10"]),
        "tied_kb": tied.state_bytes() / 1024,
        "untied_kb": untied.state_bytes() / 1024,
        "recorded": int(recorded),
        "pairs": uses * (uses - 1) // 2,
        "recorded_kb": recorded_kb,
    }


def chart(by_uses: list[dict], by_width: list[dict], path: Path) -> None:
    """Steps per second and memory against uses and against width, as a small standalone HTML file."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            f"Steps per second vs uses (W {by_uses[0]['width']}x{by_uses[0]['width']})",
            f"Steps per second vs width ({by_width[0]['uses']} uses)",
            "Weights + Adam state (KB) vs uses",
            "Weights + Adam state (KB) vs width",
        ),
    )
    lines = [
        ("tied", "bare step, tied", "#2f6fdf", "solid"),
        ("untied", "bare step, untied", "#e4572e", "solid"),
        ("train", "train(), both, recording every step", "#444444", "dash"),
        ("train10", "train(), both, recording every 10", "#999999", "dot"),
    ]
    for col, rows, x in ((1, by_uses, "uses"), (2, by_width, "width")):
        for key, label, color, dash in lines:
            fig.add_trace(
                go.Scatter(
                    x=[r[x] for r in rows],
                    y=[r[key] for r in rows],
                    name=label,
                    legendgroup=key,
                    showlegend=col == 1,
                    line={"color": color, "dash": dash},
                ),
                row=1,
                col=col,
            )
        for key, label, color in (("tied_kb", "memory, tied", "#2f6fdf"), ("untied_kb", "memory, untied", "#e4572e")):
            fig.add_trace(
                go.Scatter(
                    x=[r[x] for r in rows],
                    y=[r[key] for r in rows],
                    name=label,
                    legendgroup=key,
                    showlegend=col == 1,
                    line={"color": color, "dash": "dot"},
                    mode="lines+markers",
                ),
                row=2,
                col=col,
            )
        fig.update_xaxes(title_text=x, row=2, col=col)
        if x == "width":
            for row in (1, 2):
                fig.update_xaxes(type="log", row=row, col=col)
                fig.update_yaxes(type="log", row=row, col=col)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_layout(height=700, width=1000, title="How cost grows with the uses and the size of one shared tensor")
    fig.write_html(path, include_plotlyjs="cdn", full_html=True)


def _fall(rows: list[dict], key: str) -> float:
    return rows[-1][key] / rows[0][key]


def summary(by_uses: list[dict]) -> str:
    """One sentence on what the curve shows, from the measured numbers."""
    lo, hi = by_uses[0], by_uses[-1]
    return (
        f"Tied and untied do the same forward and backward arithmetic, so their bare steps slow alike "
        f"from {lo['uses']} to {hi['uses']} uses (to {_fall(by_uses, 'tied'):.2f}x and "
        f"{_fall(by_uses, 'untied'):.2f}x; untied / tied {lo['untied'] / lo['tied']:.2f} and "
        f"{hi['untied'] / hi['tied']:.2f}, the untied step also updating {hi['uses']} copies and their Adam "
        f"state, {hi['untied_kb'] / hi['tied_kb']:.0f}x the memory), while `train()` recording every step "
        f"slows to {_fall(by_uses, 'train'):.2f}x because what it records per step grows with the pairs of "
        f"uses, from {lo['recorded']} values to {hi['recorded']} ({hi['pairs']} pairs, quadratic); recording "
        f"every 10 steps slows to {_fall(by_uses, 'train10'):.2f}x."
    )


def run(mode: Mode, out_dir: Path | None) -> Section:
    section = Section("Growth: cost against the number of uses and the size of one shared tensor")
    uses_sweep, width, width_sweep, uses_at = _sweeps(mode)
    measured: dict[tuple[int, int], dict] = {}
    for k in uses_sweep:
        measured[(k, width)] = measure(k, width, mode)
    for w in width_sweep:
        if (uses_at, w) not in measured:
            measured[(uses_at, w)] = measure(uses_at, w, mode, quick_steps=80 if w <= 128 else 30)
    by_uses = [measured[(k, width)] for k in uses_sweep]
    by_width = [measured[(uses_at, w)] for w in width_sweep]
    header = [
        "uses",
        "W",
        "bare tied steps/s",
        "bare untied steps/s",
        "untied / tied",
        "train, every step",
        "train, every 10",
        "values recorded per step",
        "tied KB",
        "untied KB",
        "result KB per 100 steps",
    ]

    def cells(r: dict) -> list:
        return [
            r["uses"],
            f"{r['width']}x{r['width']}",
            r["tied"],
            r["untied"],
            f"{r['untied'] / r['tied']:.2f}",
            r["train"],
            r["train10"],
            r["recorded"],
            r["tied_kb"],
            r["untied_kb"],
            r["recorded_kb"],
        ]

    section.add(
        "A chain of k dense uses of one square tensor W (tanh between uses; `bench.reference.chain_spec`). "
        "**Bare** is one model alone (tied or untied) with nothing recorded, 50 steps per "
        "`tf.function` call, so the columns compare the two models' arithmetic. **train** is "
        "`sharecore.train` (both models, counted as one step, after a first untimed run). Memory: "
        "the exact bytes of one model's weights plus its Adam state, and the memory of what `train()` "
        "returns (its history, gradient and divergence tables, `DataFrame.memory_usage(deep=True)`) "
        "per 100 steps recording every step; the dashboard section measures the server's RSS. Steps per "
        f"timed run: {steps(mode, 80)} (widths above 128: {steps(mode, 30)}); medians of {mode.rounds} "
        "alternating rounds.",
        "",
        "By the number of uses:",
        "",
        *table(header, [cells(r) for r in by_uses]),
        "",
        "By the size of W:",
        "",
        *table(header, [cells(r) for r in by_width]),
        "",
        summary(by_uses),
    )
    if out_dir is not None:
        path = out_dir / "growth.html"
        chart(by_uses, by_width, path)
        section.add("", f"Chart: [`{path.name}`]({path.name}) (plotly; the library loads from its CDN).")
    return section
