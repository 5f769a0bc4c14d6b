"""The chart builders under their earlier module name: `sharecore.viz.training_charts` and
`sharecore.viz.divergence_charts` hold them, and `sharecore.viz.plots` is the one import for a front end.

Kept so that existing imports (`from sharecore.viz.charts import pairs_left_out`) go on working.
"""

from __future__ import annotations

from sharecore.viz.divergence_charts import (
    HISTOGRAM_BINS,
    divergence_chart,
    divergence_heatmap,
    pairs_left_out,
    weight_histograms,
)
from sharecore.viz.training_charts import gradient_cosine, gradient_flow, loss_chart

__all__ = [
    "HISTOGRAM_BINS",
    "divergence_chart",
    "divergence_heatmap",
    "gradient_cosine",
    "gradient_flow",
    "loss_chart",
    "pairs_left_out",
    "weight_histograms",
]
