"""Warnings about a run that went wrong, each with what was seen (in numbers) and what to try.

Plain NumPy and pandas on a `TrainResult`'s records: no TensorFlow, so a kept run is checked
without training anything. Four kinds, checked in this order:

* **diverged**: the run stopped because a loss or weight became non-finite (NaN or inf), or its
  history holds one. Nothing else is said about such a run.
* **collapsed**: over the last third of the run (at least `COLLAPSE_MIN_STEPS` steps) the tied
  and untied training losses are identical at every step (within `IDENTICAL` relative), though
  they differed by more than `MOVED` earlier, and their held-out losses (where there are) stayed
  constant within `CONSTANT`. Two differently shaped models that give the same loss on every
  batch compute something that no longer depends on their weights (for example a net whose
  ReLUs all went dead after one too-large step). A collapsed run gets no other warning.
* **flat**: after the first few steps (from step `max(3, steps // 10)`), a variant's loss curve
  stays within `FLAT` (1%) of its mean. Too small a learning rate when it barely moved from
  step 0 either; a stall when it moved first.
* **rising**: a variant's loss curve ends clearly above its lowest point: `RISE_HELDOUT` (10%)
  above it on the held-out curve, `RISE_TRAINING` (25%) on the training curve, and by at least
  `MIN_RISE` of the starting loss. Too large steps when the training loss rose too; overfitting
  when only the held-out loss did.

The loss curve of a variant is its held-out loss where the run has one (a fixed set of samples,
so its changes are the model's, not the batches'), else its training loss averaged over windows
of a tenth of the steps; batch noise makes that fallback less sensitive, never more. Runs of fewer
than `MIN_STEPS` steps are too short to judge and get a warning only when they diverged.
Thresholds were set on real runs: the default run of every preset gets none, `seed-conv` with
Adam at learning rate 0.1 collapses, Adam at 1e-5 is flat, and learning rates of 0.3 to 0.5 on
digits and tokens make the tied loss rise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sharecore.core.results import VARIANTS, TrainResult

WarningKind = Literal["flat", "collapsed", "rising", "diverged"]

MIN_STEPS = 10  # shorter runs are not judged (except for divergence)
COLLAPSE_MIN_STEPS = 5  # the identical stretch at the end must be at least this long
IDENTICAL = 1e-6  # relative difference under which the two variants' losses count as identical
MOVED = 0.01  # relative difference the variants must have had earlier for a collapse
CONSTANT = 1e-3  # relative range of a held-out loss that counts as unchanged
FLAT = 0.01  # relative range of a loss curve, after the first steps, that counts as flat
RISE_HELDOUT = 1.10  # final / lowest held-out loss that counts as rising
RISE_TRAINING = 1.25  # the same on the averaged training loss, which batch noise moves more
MIN_RISE = 0.02  # a rise must also be at least this fraction of the starting loss


@dataclass(frozen=True)
class TrainingWarning:
    """Something that went wrong in a run, for a person to read.

    Attributes:
        kind: 'flat' | 'collapsed' | 'rising' | 'diverged'.
        variant: 'tied' or 'untied', or None when it concerns both.
        message: what was seen, with numbers, and what to try.
    """

    kind: WarningKind
    variant: str | None
    message: str


def training_warnings(result: TrainResult) -> list[TrainingWarning]:
    """What looks wrong in a run: divergence, a collapse, a flat or a rising loss.

    See the module docstring for the definitions and their thresholds.

    Args:
        result: a finished (or stopped) run, e.g. from `sharecore.train`.

    Returns:
        The warnings, most serious first; empty for a run that looks healthy or is too short to judge.
    """
    diverged = _diverged(result)
    if diverged is not None:
        return [diverged]
    if result.steps_done < MIN_STEPS or result.history.empty:
        return []
    collapsed = _collapsed(result)
    if collapsed is not None:
        return [collapsed]
    curves = {v: _curve(result, v) for v in VARIANTS if (result.history.variant == v).any()}
    found: list[TrainingWarning] = []
    for check in (_flat, _rising):
        findings = [f for v, curve in curves.items() if (f := check(result, v, curve)) is not None]
        found.extend(_merge(findings))
    return found


# ----------------------------------------------------------------------------- curves
@dataclass(frozen=True)
class _Curve:
    steps: np.ndarray
    loss: np.ndarray
    source: str  # 'held-out' or 'training'

    def where(self, i: int) -> str:
        return f"{self.loss[i]:.4g} at step {int(self.steps[i])}"


def _curve(result: TrainResult, variant: str, training: bool = False) -> _Curve:
    """The variant's held-out loss by step, or (if there is none, or `training`) its training loss
    averaged over windows of a tenth of the run."""
    held = result.heldout[result.heldout.variant == variant].sort_values("step")
    if not training and len(held) >= 3 and np.isfinite(held.loss.to_numpy(float)).all():
        return _Curve(held.step.to_numpy(), held.loss.to_numpy(float), "held-out")
    train = result.history[result.history.variant == variant].sort_values("step")
    loss = train.loss.to_numpy(float)
    window = max(1, len(loss) // 10)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")  # the mean of the window ending at each step
    return _Curve(train.step.to_numpy()[window - 1 :], smooth, "training")


def _lr(result: TrainResult, factor: float) -> str:
    return f"{result.config.learning_rate * factor:.3g}"


# ----------------------------------------------------------------------------- the four checks
_NON_FINITE = re.compile(r"the (tied and untied|tied|untied) model's loss or weights became non-finite")


def _diverged(result: TrainResult) -> TrainingWarning | None:
    reason = result.stop_reason or ""
    losses = result.history.loss.to_numpy(float)
    if "non-finite" not in reason and np.isfinite(losses).all():
        return None
    match = _NON_FINITE.search(reason)
    who = match.group(1) if match else "the"
    variant = who if who in VARIANTS else None
    last = result.history[np.isfinite(losses)]
    last = last[last.variant == variant] if variant else last
    seen = f"; its last finite loss was {last.loss.iloc[-1]:.4g} at step {int(last.step.iloc[-1])}" if len(last) else ""
    # A stop for non-finite values keeps the steps before the one that failed.
    where = f"at step {result.steps_done + 1}" if match else f"by step {result.steps_done}"
    model = f"The {who} model's" if match else "A"
    return TrainingWarning(
        "diverged",
        variant,
        f"{model} loss or weights became non-finite (NaN or inf) {where}{seen}: "
        f"training diverged. Try a learning rate 10x smaller ({_lr(result, 0.1)}).",
    )


def _collapsed(result: TrainResult) -> TrainingWarning | None:
    table = result.history.pivot_table(index="step", columns="variant", values="loss")
    if set(table.columns) != set(VARIANTS):
        return None
    tied, untied = table["tied"].to_numpy(float), table["untied"].to_numpy(float)
    rel = np.abs(tied - untied) / np.maximum(np.abs(untied), 1e-12)
    tail = max(COLLAPSE_MIN_STEPS, len(rel) // 3)
    if len(rel) < tail or not (rel[-tail:] < IDENTICAL).all() or not (rel[:-tail] > MOVED).any():
        return None
    start = len(rel) - tail
    while start > 0 and rel[start - 1] < IDENTICAL:
        start -= 1
    steps = table.index.to_numpy()
    held = result.heldout[result.heldout.step >= steps[len(rel) - tail]]
    if len(held):
        values = held.loss.to_numpy(float)
        if np.ptp(values) > CONSTANT * abs(values.mean()):
            return None
        held_text = f"; the held-out loss of both stayed at {values[-1]:.4g}"
    else:
        held_text = ""
    return TrainingWarning(
        "collapsed",
        None,
        f"From step {int(steps[start])} to {int(steps[-1])} the tied and untied losses were identical at every "
        f"step (mean {tied[start:].mean():.4g}{held_text}), though they had differed by up to "
        f"{rel[:start].max():.0%} before: the run collapsed, both models now compute something that no longer "
        f"depends on their weights (for example ReLUs that all went dead after one too-large step). "
        f"Try a learning rate 10x smaller ({_lr(result, 0.1)}).",
    )


@dataclass(frozen=True)
class _Finding:
    kind: WarningKind
    variant: str
    seen: str  # what was seen, for this variant, with numbers
    verdict: str  # what it means and what to try, the same words for both variants when they agree


def _flat(result: TrainResult, variant: str, curve: _Curve) -> _Finding | None:
    late = curve.steps >= max(3, result.steps_done // 10)
    if late.sum() < 3:
        return None
    values = curve.loss[late]
    mean = abs(values.mean())
    if mean < 1e-6 or np.ptp(values) >= FLAT * mean:
        return None  # a loss near 0 is a fit, not a stall
    barely = np.ptp(curve.loss) < FLAT * mean  # from the very start
    if barely:
        values, first = curve.loss, 0
    else:
        first = int(np.argmax(late))
    seen = (
        f"the {variant} {curve.source} loss stayed between {values.min():.4g} and {values.max():.4g} from step "
        f"{int(curve.steps[first])} to {int(curve.steps[-1])} (within {np.ptp(values) / mean:.1%})"
    )
    if barely:
        verdict = (
            f"the model barely learned. The learning rate {result.config.learning_rate:g} is probably too small "
            f"for {result.config.optimizer}: try 10x larger ({_lr(result, 10)}), or train more steps."
        )
    else:
        seen = f"{seen}, after going from {curve.where(0)}"
        verdict = (
            "training stalled. If that loss is not good enough, the model may be stuck (units that no longer "
            f"respond): try a learning rate 10x smaller ({_lr(result, 0.1)}) or another seed."
        )
    return _Finding("flat", variant, seen, verdict)


def _rising(result: TrainResult, variant: str, curve: _Curve) -> _Finding | None:
    lowest = int(np.argmin(curve.loss))
    low, final = curve.loss[lowest], curve.loss[-1]
    limit = RISE_HELDOUT if curve.source == "held-out" else RISE_TRAINING
    if lowest == len(curve.loss) - 1 or final < limit * low or final - low < MIN_RISE * abs(curve.loss[0]):
        return None
    seen = (
        f"the {variant} {curve.source} loss rose from its lowest, {curve.where(lowest)}, to {curve.where(-1)} "
        f"(+{final / low - 1:.0%})"
    )
    if curve.source == "training":
        training_rose = True
    else:
        training = _curve(result, variant, training=True)
        training_rose = training.loss[-1] >= RISE_HELDOUT * training.loss.min()
    if training_rose:
        verdict = (
            f"the steps are too large and overshoot. Try a learning rate 10x smaller ({_lr(result, 0.1)})."
            if curve.source == "training"
            else f"the training loss rose too, so the steps are too large and overshoot. Try a learning rate 10x "
            f"smaller ({_lr(result, 0.1)})."
        )
    else:
        verdict = (
            "the training loss kept falling, so the model fits its training samples rather than the task "
            f"(overfitting). Stop near step {int(curve.steps[lowest])}, or use a smaller model."
        )
    return _Finding("rising", variant, seen, verdict)


def _merge(findings: list[_Finding]) -> list[TrainingWarning]:
    """One warning per finding, or one for both variants when they agree on what it means."""
    if len(findings) == 2 and findings[0].verdict == findings[1].verdict:
        a, b = findings
        return [TrainingWarning(a.kind, None, f"{_capital(a.seen)}; {b.seen}: {a.verdict}")]
    return [TrainingWarning(f.kind, f.variant, f"{_capital(f.seen)}: {f.verdict}") for f in findings]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
