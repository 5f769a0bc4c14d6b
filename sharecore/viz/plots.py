"""Plot builders, one import away: re-exports the figure builders of the plot modules.

The builders live by subject: `sharecore.viz.diagram` (the model diagram as Graphviz DOT, parameter
bars; no TensorFlow), `sharecore.viz.tensorviews` (the shared-tensor heatmaps),
`sharecore.viz.training_charts` (loss and gradient charts), `sharecore.viz.divergence_charts`
(divergence and weight charts) and `sharecore.viz.style` (colors and layout). Every builder is a pure
function returning a `plotly.graph_objects.Figure` (`model_dot`: DOT text); none imports streamlit,
so a notebook, the CLI and the tests draw exactly what the pages show.
"""

from __future__ import annotations

from sharecore.viz.diagram import model_dot, param_bars
from sharecore.viz.divergence_charts import divergence_chart, divergence_heatmap, weight_histograms
from sharecore.viz.style import (
    ACCURACY_AXIS,
    HEIGHT,
    NEUTRAL,
    PAIR_PALETTE,
    STEP_AXIS,
    TEMPLATE,
    TENSOR_PALETTE,
    USE_PALETTE,
    VARIANT_COLORS,
    VARIANTS,
    apply_presenter,
    tensor_colors,
    use_colors,
)
from sharecore.viz.tensorviews import tensor_views
from sharecore.viz.training_charts import gradient_cosine, gradient_flow, gradient_split, loss_chart

__all__ = [
    "ACCURACY_AXIS",
    "HEIGHT",
    "NEUTRAL",
    "PAIR_PALETTE",
    "STEP_AXIS",
    "TEMPLATE",
    "TENSOR_PALETTE",
    "USE_PALETTE",
    "VARIANT_COLORS",
    "VARIANTS",
    "apply_presenter",
    "divergence_chart",
    "divergence_heatmap",
    "gradient_cosine",
    "gradient_flow",
    "gradient_split",
    "loss_chart",
    "model_dot",
    "param_bars",
    "tensor_colors",
    "tensor_views",
    "use_colors",
    "weight_histograms",
]
