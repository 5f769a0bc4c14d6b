"""sharecore: tied versus untied weight sharing in Keras 3, built right and made visible."""

from __future__ import annotations

import os
import sys

# TensorFlow's C++ start-up chatter is noise for learners; real errors still surface.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with the C++ stderr lines it prints at start-up silenced.

    Even with TF_CPP_MIN_LOG_LEVEL set, TensorFlow 2.21 writes absl's 'All log messages
    before absl::InitializeLog()' lines straight to file descriptor 2, which would break the
    CLI's promise of one line on stderr per error. Python exceptions still propagate.
    """
    if "tensorflow" in sys.modules:
        return
    try:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no usable fd 2 (some embedded hosts): import as is
        import tensorflow  # noqa: F401

        return
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()

from sharecore.limits import Limits, check_limits  # noqa: E402
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
    "Limits",
    "check_limits",
    "ParamReport",
    "param_report",
    "TrainProgress",
    "TrainResult",
    "resolve_device",
    "train",
]
