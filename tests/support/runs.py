"""Tiny real training runs, trained once per test process and shared (tests/conftest.py's `tiny_run`).

A run is keyed by its preset and its TrainConfig: two files that train the same tiny run get the
same result, trained once per pytest-xdist worker. The result is shared, so a test must not change
it (copy what it edits).
"""

from __future__ import annotations

import functools

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.core.results import TrainResult


@functools.cache
def _train(preset: str, config: TrainConfig) -> TrainResult:
    return sharecore.train(sharecore.preset(preset), config)


def tiny_run(preset: str, **config) -> TrainResult:
    """`sharecore.train(sharecore.preset(preset), TrainConfig(**config))`, trained once per process."""
    return _train(preset, TrainConfig(**config))
