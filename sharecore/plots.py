"""Plot builders, one import away: re-exports the figure builders of the plot modules.

The builders live by subject: `sharecore.diagram` (model diagram, parameter bars; no
TensorFlow), `sharecore.tensorviews` (the shared-tensor heatmaps), `sharecore.charts`
(training, gradient, divergence and weight charts) and `sharecore.plotstyle` (colors and
layout). Every builder is a pure function returning a `plotly.graph_objects.Figure`; none
imports streamlit, so a notebook, the CLI and the tests draw exactly what the pages show.
"""

from __future__ import annotations

from sharecore.charts import (
    divergence_chart,
    divergence_heatmap,
    gradient_cosine,
    gradient_flow,
    loss_chart,
    weight_histograms,
)
from sharecore.diagram import OUTPUT_NODE, model_diagram, param_bars
from sharecore.plotstyle import (
    HEIGHT,
    NEUTRAL,
    PAIR_PALETTE,
    STEP_AXIS,
    TEMPLATE,
    TENSOR_PALETTE,
    USE_PALETTE,
    VARIANT_COLORS,
    VARIANTS,
    tensor_colors,
    use_colors,
)
from sharecore.tensorviews import tensor_views

__all__ = [
    "HEIGHT",
    "NEUTRAL",
    "OUTPUT_NODE",
    "PAIR_PALETTE",
    "STEP_AXIS",
    "TEMPLATE",
    "TENSOR_PALETTE",
    "USE_PALETTE",
    "VARIANT_COLORS",
    "VARIANTS",
    "divergence_chart",
    "divergence_heatmap",
    "gradient_cosine",
    "gradient_flow",
    "loss_chart",
    "model_diagram",
    "param_bars",
    "tensor_colors",
    "tensor_views",
    "use_colors",
    "weight_histograms",
]
