"""sharecore: tied versus untied weight sharing in Keras 3, built right and made visible.

Specs, plans, presets, parameter counts, limits and URL state are plain Python: importing
them costs a fraction of a second. TensorFlow (about 2.6 s and 570 MB) is imported by the
first call that builds, trains or loads a model (`build`, `train`, `load_model`, ...), so a
CLI that lists presets answers at once and a dashboard can draw before TensorFlow is up.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from sharecore.core.config import TrainConfig
from sharecore.core.limits import Limits, check_limits
from sharecore.core.params import ParamReport, param_report
from sharecore.core.plan import Plan, plan, validate
from sharecore.core.presets import preset, presets
from sharecore.core.spec import ModelSpec, Rule, SharedTensor, Use

# TensorFlow's C++ start-up chatter is noise for learners; real errors still surface.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Public names that need TensorFlow -> the module that defines them, imported on first use.
_NEEDS_TENSORFLOW = {
    "build": "sharecore.nn.model",
    "initial_values": "sharecore.nn.model",
    "inspect": "sharecore.nn.inspect",
    "Inspection": "sharecore.core.inspection",
    "SharingMonitor": "sharecore.nn.monitor",
    "kernel_variables": "sharecore.nn.model",
    "load_model": "sharecore.nn.model",
    "TrainProgress": "sharecore.core.results",
    "TrainResult": "sharecore.core.results",
    "resolve_device": "sharecore.nn.devices",
    "train": "sharecore.nn.training",
}

if TYPE_CHECKING:
    from sharecore.core.inspection import Inspection
    from sharecore.core.results import TrainProgress, TrainResult
    from sharecore.nn.devices import resolve_device
    from sharecore.nn.inspect import inspect
    from sharecore.nn.model import build, initial_values, kernel_variables, load_model
    from sharecore.nn.monitor import SharingMonitor
    from sharecore.nn.training import train

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
    "load_model",
    "inspect",
    "Inspection",
    "SharingMonitor",
    "Limits",
    "check_limits",
    "ParamReport",
    "param_report",
    "TrainProgress",
    "TrainResult",
    "resolve_device",
    "train",
    "import_tensorflow",
    "tensorflow_ready",
]


def import_tensorflow() -> None:
    """Imports TensorFlow, Keras and sharecore's layers, with TensorFlow's start-up lines silenced.

    Safe to call from several threads (a dashboard loads TensorFlow in the background while
    pages ask for it): Python's import lock makes every call return once the import is done.
    The silencing is `sharecore.nn.tfimport`'s, which every sharecore module that needs TensorFlow
    imports it through, so importing such a module directly is as quiet; Python exceptions
    still propagate.
    """
    import sharecore.nn.layers  # noqa: F401  imports TensorFlow (quietly) and registers SharedKernel for load_model


def tensorflow_ready() -> bool:
    """True once `import_tensorflow()` has finished in this process."""
    return "sharecore.nn.layers" in sys.modules


def __getattr__(name: str) -> Any:
    # PEP 562: the TensorFlow half of the public API is imported on first use.
    module = _NEEDS_TENSORFLOW.get(name)
    if module is None:
        raise AttributeError(f"module 'sharecore' has no attribute {name!r}")
    import_tensorflow()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
