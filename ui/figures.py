"""The pages' pure results, computed once: figures, reports, Keras scripts and the kept runs' curves.

Nothing is put in `st.cache_resource`, which every user of a hosted app shares; pure results go
into one byte-bounded cache for the process (`_cache`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import streamlit as st

import sharecore
from sharecore.core.spec import ModelSpec
from sharecore.share import codegen
from ui.cache import ByIdentity, ByteLRU

if TYPE_CHECKING:
    import pandas as pd

    from sharecore.teach import pitfalls

# One cache for the process, bounded by bytes (ui/cache.py): entry counts said nothing
# about memory, since one figure can be 5 kB or 0.5 MB. Keys hold everything a result depends
# on: frozen specs and reports by value, a finished run's frames and weights by identity (they
# never change, and hashing millions of rows on every rerun would cost more than drawing). A key
# holds nothing that one user could reach with another user's inputs. Values are shared, not
# copied: pages only hand them to `chart` (st.plotly_chart copies a figure via to_dict()) or
# read them, never modify them.
CACHE_MB = 64
_cache = ByteLRU(CACHE_MB * 2**20)


def _plots():
    """The plot builders, imported on first use: Home and the sidebar need neither them nor pandas."""
    from sharecore.viz import plots

    return plots


def param_report(spec_: ModelSpec) -> sharecore.ParamReport:
    return _cache.get_or_compute(("param_report", spec_), lambda: sharecore.param_report(spec_))


def model_dot(spec_: ModelSpec, tied: bool) -> str:
    """The model diagram as Graphviz DOT (`sharecore.viz.diagram.model_dot`), for `st.graphviz_chart`."""
    return _cache.get_or_compute(("model_dot", spec_, tied), lambda: _plots().model_dot(spec_, tied=tied))


def tensor_views(spec_: ModelSpec, tensor: str, seed: int):
    """The tensor views of `tensor` at the seed's initial values (a deterministic function of spec and seed)."""
    return _cache.get_or_compute(
        ("tensor_views", spec_, tensor, seed),
        lambda: _plots().tensor_views(spec_, tensor, sharecore.initial_values(spec_, seed)[tensor]),
    )


def param_bars(report: sharecore.ParamReport):
    return _cache.get_or_compute(("param_bars", report), lambda: _plots().param_bars(report))


def keras_code(spec_: ModelSpec, tied: bool) -> str:
    return _cache.get_or_compute(("keras_code", spec_, tied), lambda: codegen.keras_code(spec_, tied=tied))


def loss_chart(
    history: pd.DataFrame, total_steps: int | None, heldout: pd.DataFrame | None = None, log_y: bool = False
):
    # Keyed by the frame itself: a run hands out a new history frame once per chunk of steps, so
    # the live panel, which polls twice a second in every tab that watches, draws it once per chunk.
    return _cache.get_or_compute(
        ("loss_chart", ByIdentity(history), total_steps, None if heldout is None else ByIdentity(heldout), log_y),
        lambda: _plots().loss_chart(history, total_steps=total_steps, heldout=heldout, log_y=log_y),
    )


def gradient_figures(gradients: pd.DataFrame, tensor: str) -> tuple[Any, Any]:
    return _cache.get_or_compute(
        ("gradient_figures", ByIdentity(gradients), tensor),
        lambda: (_plots().gradient_flow(gradients, tensor), _plots().gradient_cosine(gradients, tensor)),
    )


def gradient_split(gradients: pd.DataFrame, tensor: str):
    return _cache.get_or_compute(
        ("gradient_split", ByIdentity(gradients), tensor), lambda: _plots().gradient_split(gradients, tensor)
    )


def divergence_chart(divergence: pd.DataFrame, tensor: str, spec_: ModelSpec):
    return _cache.get_or_compute(
        ("divergence_chart", ByIdentity(divergence), tensor, spec_),
        lambda: _plots().divergence_chart(divergence, tensor, spec=spec_),
    )


def divergence_heatmap(divergence: pd.DataFrame, tensor: str, step: int, spec_: ModelSpec):
    return _cache.get_or_compute(
        ("divergence_heatmap", ByIdentity(divergence), tensor, step, spec_),
        lambda: _plots().divergence_heatmap(divergence, tensor, step, variant="untied", spec=spec_),
    )


def weight_histograms(res: sharecore.TrainResult, name: str | None):
    # Keyed by the run: its weights never change once it has finished.
    return _cache.get_or_compute(
        ("weight_histograms", ByIdentity(res), name),
        lambda: _plots().weight_histograms(res.weights, name=name, spec=res.spec),
    )


@st.cache_data(max_entries=8, show_spinner="Running the demonstrations on tiny models…")
def all_pitfalls(seed: int) -> list[pitfalls.PitfallResult]:
    from sharecore.teach import pitfalls  # TensorFlow

    return pitfalls.all_pitfalls(seed=seed)


@st.cache_data(show_spinner=False)
def device_name(device: str) -> str:
    """The TensorFlow device 'auto' | 'cpu' | 'gpu' resolves to; raises ValueError for a missing GPU."""
    return sharecore.resolve_device(device).split("device:")[-1]


def compare_curves(runs: list, tensor: str | None = None) -> pd.DataFrame:
    """The kept runs' curves (`compare.curves`), computed once for the same runs, labels and tensor.

    Each run's part is cached too: a new run joining the overlay computes only its own curves.
    """
    import pandas as pd

    from sharecore.runs import compare

    def of_run(run) -> pd.DataFrame:
        return _cache.get_or_compute(
            ("run_curves", run.label, ByIdentity(run.result), tensor), lambda: compare.curves([run], tensor)
        )

    def together() -> pd.DataFrame:
        parts = [part for part in map(of_run, runs) if not part.empty]
        return pd.concat(parts, ignore_index=True) if parts else compare.curves([], tensor)

    return _cache.get_or_compute(("curves", tuple((r.label, ByIdentity(r.result)) for r in runs), tensor), together)


def overlay_figure(build: Callable[..., Any], curves: pd.DataFrame, labels: list[str], *args: Any, **kwargs: Any):
    """`build(curves, labels, *args, **kwargs)` (a `comparecharts` builder), drawn once per curves frame.

    Keyed by the frame `compare_curves` returned (by identity): a rerun with the same runs shown
    reuses the figures instead of building ten runs' traces again (seconds with plotly's checks).
    """
    return _cache.get_or_compute(
        ("overlay", build.__name__, ByIdentity(curves), tuple(labels), args, tuple(sorted(kwargs.items()))),
        lambda: build(curves, labels, *args, **kwargs),
    )


def of_runs(compute: Callable[[list], Any], runs: list) -> Any:
    """`compute(runs)` (a `sharecore.runs.compare` table of kept runs), computed once for the same runs and labels."""
    return _cache.get_or_compute(
        (compute.__name__, tuple((r.label, ByIdentity(r.result)) for r in runs)), lambda: compute(runs)
    )


def equivariance_view(spec_: ModelSpec, seed: int, result: sharecore.TrainResult | None = None):
    """The equivariance view of a spec with turned or flipped uses: at the seed's initial values, or
    where `result` (a run of this spec) ended, tied and untied."""

    def compute():
        from sharecore.nn.equivariance import equivariance, sample_image
        from sharecore.viz.equivariance import equivariance_view as view

        image = sample_image(spec_, seed)
        end = result.weights.get("end", {}) if result is not None else {}
        tied, untied = (
            equivariance(spec_, tied=variant == "tied", image=image, weights=end.get(variant), seed=seed)
            for variant in ("tied", "untied")
        )
        return view(tied, untied)

    return _cache.get_or_compute(
        ("equivariance_view", spec_, seed, None if result is None else ByIdentity(result)), compute
    )


def sweep_cache() -> int:
    """Drops the figures of runs that no longer exist (their sessions have ended); returns the bytes freed."""
    return _cache.sweep()
