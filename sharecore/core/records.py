"""How many gradient and divergence rows a run records: what `sharecore.core.limits` caps with
``max_recorded_rows`` before a run starts, counted from the spec's plan and the run's settings."""

from __future__ import annotations

from sharecore.core.config import TrainConfig
from sharecore.core.plan import Plan


def recorded_steps(config: TrainConfig) -> int:
    """How many steps a run records: step 1, every `record_every`-th step and the last one."""
    steps, every = config.steps, config.record_every
    if steps <= 1:
        return steps
    return steps // every + (every > 1) + (steps % every != 0)


def rows_per_recorded_step(p: Plan) -> int:
    """Rows a recorded step adds, both models: one per use of a shared tensor, one per pair of its uses.

    Every pair is counted; pairs that read no common entry are not recorded, so this is an upper bound.
    """
    return 2 * sum(len(p.group(t)) for t in p.shared_tensors) + pair_rows(p)


def pair_rows(p: Plan) -> int:
    """Divergence rows of one recorded step, both models (also recorded once at step 0)."""
    return 2 * sum(len(p.group(t)) * (len(p.group(t)) - 1) // 2 for t in p.shared_tensors)


def recorded_rows(p: Plan, config: TrainConfig) -> int:
    """Gradient and divergence rows a run records: every recorded step, and the divergence at step 0."""
    return rows_per_recorded_step(p) * recorded_steps(config) + pair_rows(p)
