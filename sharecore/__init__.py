"""sharecore: tied versus untied weight sharing in Keras 3, built right and made visible."""

from __future__ import annotations

import os

# TensorFlow's C++ start-up chatter is noise for learners; real errors still surface.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sharecore.model import build, initial_values, kernel_variables  # noqa: E402
from sharecore.params import ParamReport, param_report  # noqa: E402
from sharecore.plan import Plan, plan, validate  # noqa: E402
from sharecore.presets import preset, presets  # noqa: E402
from sharecore.spec import ModelSpec, Rule, SharedTensor, TrainConfig, Use  # noqa: E402
from sharecore.training import TrainProgress, TrainResult, resolve_device, train  # noqa: E402

__all__ = [
    "ModelSpec",
    "Rule",
    "SharedTensor",
    "TrainConfig",
    "Use",
    "Plan",
    "plan",
    "validate",
    "preset",
    "presets",
    "build",
    "initial_values",
    "kernel_variables",
    "ParamReport",
    "param_report",
    "TrainProgress",
    "TrainResult",
    "resolve_device",
    "train",
]
