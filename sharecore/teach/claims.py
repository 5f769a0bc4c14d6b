"""The claims the exercises make, stated on the numbers of real runs: each check reads the runs of an
exercise's set-ups and says whether its claim holds, with the numbers it measured.

Plain Python and pandas; no TensorFlow and no Streamlit (the runs are trained by the caller).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sharecore.core.params import param_report
from sharecore.core.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from sharecore.core.results import TrainResult


class Setup(Protocol):
    """What a check reads of an exercise's set-up (sharecore.teach.exercises.Setup)."""

    @property
    def preset(self) -> str: ...

    @property
    def spec(self) -> ModelSpec: ...


@dataclass(frozen=True)
class Claim:
    """What an exercise's check found: whether its claim holds, and the numbers it measured."""

    holds: bool
    detail: str  # the measured numbers, e.g. 'tied final loss 0.21 < untied 0.35'


# The largest relative distance (of the starting norm) at which two untied copies count as the same
# numbers: 0 to 6 decimal places, as a person reads a chart's hover or a table (0.0000005 rounds to
# 0.000000 only just; 5e-7 rounds to 0.000001, so the limit is strictly below it). Copies that get the
# same gradient through different ops (a dense matmul and a 1x1 conv add the same products in
# different orders) drift apart by float32 rounding only, and by how much depends on the CPU's kernels:
# seed-mixed with a tied teacher, seeds 0-4, ends 0 apart with oneDNN off and 5e-8 to 6.2e-8 with it on
# (seed 0: 5.5e-8 on an Intel and 6e-8 on an AMD host), and stays there over 1,000 steps: a margin of 8.
SAME_COPIES = 5e-7
SAME_DECIMALS = 6  # SAME_COPIES in words: "0 to 6 decimal places" (a test holds the two together)
ZERO = f"0 to {SAME_DECIMALS} decimal places"


# ----------------------------------------------------------------------------- reading results
def _last(frame: pd.DataFrame, variant: str, column: str = "loss") -> float:
    """`column` of `variant` at the frame's last step."""
    rows = frame[frame.variant == variant]
    return float(rows[rows.step == rows.step.max()][column].iloc[0])


def _divergence(result: TrainResult, variant: str) -> pd.Series:
    """The largest relative distance between two uses' weights, per recorded step."""
    rows = result.divergence[result.divergence.variant == variant]
    return rows.groupby("step").relative_distance.max()


def _tied_gradients(result: TrainResult, step: int) -> pd.DataFrame:
    """The tied model's gradient records at `step` (-1: the last recorded step)."""
    rows = result.gradients[result.gradients.variant == "tied"]
    return rows[rows.step == (rows.step.max() if step == -1 else step)]


def _claim(parts: list[tuple[bool, str]]) -> Claim:
    """All parts must hold; the detail lists every part's numbers."""
    return Claim(all(ok for ok, _ in parts), "; ".join(text for _, text in parts))


def _compare(a: float, b: float, a_name: str, b_name: str) -> tuple[bool, str]:
    """(a < b, 'a_name 0.21 < b_name 0.35'), with the sign that was measured."""
    return a < b, f"{a_name} {a:.3f} {'<' if a < b else '>='} {b_name} {b:.3f}"


# ----------------------------------------------------------------------------- the checks
def _saved_copies(spec: ModelSpec) -> int:
    """Hand arithmetic: an untied model stores one more full copy of a shared tensor per extra use.

    Holds for rules that read the whole tensor (identity, transpose, reshape), as in these presets.
    """
    sizes = {t.name: math.prod(t.shape) for t in spec.tensors}
    uses = [u.tensor for u in spec.uses if u.tensor is not None]
    return sum((uses.count(t) - 1) * size for t, size in sizes.items() if t in uses)


def check_param_savings(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    parts = []
    for s in setups:
        report = param_report(s.spec)
        expected = _saved_copies(s.spec)
        parts.append(
            (
                report.saved == expected,
                f"{s.preset}: tied {report.tied_total:,}, untied {report.untied_total:,}, saved "
                f"{report.saved:,} {'=' if report.saved == expected else '!='} {expected:,} "
                f"(one copy of each shared tensor per extra use; {report.ratio:.2f}x)",
            )
        )
    return _claim(parts)


def check_untied_drift(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    tied, untied = _divergence(res, "tied"), _divergence(res, "untied")
    start, end = float(untied.iloc[0]), float(untied.iloc[-1])
    # Both 0s are exact here (at step 0 the copies are assigned the same numbers, and the tied uses
    # read one variable), but the claim is the one the text makes, which holds on any CPU.
    return _claim(
        [
            (start < SAME_COPIES, f"untied distance at step 0: {start:.3g} ({ZERO})"),
            (end > 0.5, f"after {res.steps_done} steps: {end:.3f} (> 0.5 of the starting norm)"),
            (
                float(tied.abs().max()) < SAME_COPIES,
                f"tied, largest at any step: {float(tied.abs().max()):.3g} ({ZERO})",
            ),
        ]
    )


def check_tug_of_war(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    first, last = _tied_gradients(res, 1), _tied_gradients(res, -1)
    cos_first, cos_last = float(first.cosine_with_others.iloc[0]), float(last.cosine_with_others.iloc[0])
    sum_first, sum_last = float(first.sum_norm.iloc[0]), float(last.sum_norm.iloc[0])
    parts_first, parts_last = first.grad_norm.max(), last.grad_norm.min()
    return _claim(
        [
            (cos_first > 0, f"step 1: cosine {cos_first:+.2f}"),
            (sum_first > parts_first, f"sum {sum_first:.3f} vs largest part {parts_first:.3f}"),
            (cos_last < -0.5, f"step {int(last.step.iloc[0])}: cosine {cos_last:+.2f}"),
            (sum_last < parts_last, f"sum {sum_last:.3f} vs smallest part {parts_last:.3f}"),
        ]
    )


def check_tied_teacher_agreement(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    agree, disagree = results
    cosines = agree.gradients[agree.gradients.variant == "tied"].cosine_with_others
    drift = float(_divergence(agree, "untied").abs().max())
    losses = agree.history.pivot(index="step", columns="variant", values="loss")
    same = float((losses.tied - losses.untied).abs().max())
    end = float(_tied_gradients(disagree, -1).cosine_with_others.iloc[0])
    return _claim(
        [
            (float(cosines.min()) > 0.999, f"tied teacher: smallest cosine {float(cosines.min()):.4f}"),
            # Not exactly 0: the dense and the conv compute their (equal) gradients with different kernels.
            (drift < SAME_COPIES, f"untied copies' largest distance {drift:.3g} ({ZERO})"),
            (same < 1e-4, f"largest tied-untied loss difference {same:.2g}"),
            (end < 0, f"untied teacher: cosine at the last step {end:+.2f}"),
        ]
    )


def check_conv_vs_dense(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    untied = _divergence(res, "untied")
    start, end = float(untied.iloc[0]), float(untied.iloc[-1])
    tied_loss, untied_loss = _last(res.heldout, "tied"), _last(res.heldout, "untied")
    better, text = _compare(untied_loss, tied_loss, "held-out loss untied", "tied")
    return _claim(
        [
            # At step 0 both copies hold the numbers they were assigned (W, and W reshaped).
            (start < SAME_COPIES, f"dense and conv copies at step 0: distance {start:.3g} ({ZERO})"),
            (end > 0.5, f"at the end {end:.3f}"),
            (better and tied_loss > 1.5 * untied_loss, text),
        ]
    )


def check_transpose_vs_reshape(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    transpose, reshape = (_last(r.heldout, "tied") for r in results)
    return _claim([_compare(reshape, transpose, "tied held-out loss with reshape", "with transpose")])


def check_partial(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    report = param_report(setups[0].spec)
    untied = res.divergence[res.divergence.variant == "untied"]
    pairs = sorted({(a, b) for a, b in zip(untied.use_a, untied.use_b)})
    drift = _divergence(res, "untied")
    tied = float(_divergence(res, "tied").abs().max())
    # 0s as in _check_untied_drift: assigned equal numbers at step 0, one variable when tied.
    return _claim(
        [
            (
                (report.tied_total, report.untied_total) == (80, 120),
                f"tied {report.tied_total}, untied {report.untied_total} (the narrow copy of W[:, :4] is 40)",
            ),
            (pairs == [("wide", "narrow")], f"compared pairs {pairs}"),
            (
                float(drift.iloc[0]) < SAME_COPIES and float(drift.iloc[-1]) > 0.5,
                f"untied distance on W[:, :4] from {float(drift.iloc[0]):.3g} to {float(drift.iloc[-1]):.3f}",
            ),
            (tied < SAME_COPIES, f"tied {tied:.3g} ({ZERO})"),
        ]
    )


def check_collapse(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    calm, hot = results
    calm_tied, calm_untied = _last(calm.history, "tied"), _last(calm.history, "untied")
    losses = hot.history.pivot(index="step", columns="variant", values="loss").iloc[-10:]
    gap = float((losses.tied - losses.untied).abs().max())
    held_tied, held_untied = _last(hot.heldout, "tied"), _last(hot.heldout, "untied")

    def last_gradient(res: TrainResult) -> float:
        return float(res.gradients[res.gradients.step == res.gradients.step.max()].grad_norm.abs().max())

    calm_grad, hot_grad = last_gradient(calm), last_gradient(hot)
    return _claim(
        [
            (max(calm_tied, calm_untied) < 0.6, f"lr 0.01: final loss tied {calm_tied:.3f}, untied {calm_untied:.3f}"),
            (hot.stop_reason is None, f"lr 0.1: no NaN ({hot.stop_reason or 'ran to the end'})"),
            (
                min(held_tied, held_untied) > 0.9 and abs(held_tied - held_untied) < 0.01 * held_untied,
                f"held-out loss tied {held_tied:.4f}, untied {held_untied:.4f} (about the targets' mean square)",
            ),
            (gap < 0.01, f"training losses over the last 10 steps differ by at most {gap:.2g}"),
            (
                hot_grad < 1e-3 < calm_grad,
                f"largest gradient at the last step {hot_grad:.2g} (lr 0.01: {calm_grad:.2g})",
            ),
        ]
    )


def check_siamese(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    tied, untied = _last(res.heldout, "tied"), _last(res.heldout, "untied")
    acc_t, acc_u = _last(res.heldout, "tied", "accuracy"), _last(res.heldout, "untied", "accuracy")
    ok, text = _compare(tied, untied, "held-out loss tied", "untied")
    return _claim([(ok, f"{text} (held-out accuracy {acc_t:.1%} and {acc_u:.1%})")])


def check_tied_teacher_chain(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    tied, untied = _last(res.heldout, "tied"), _last(res.heldout, "untied")
    return _claim([_compare(untied, tied, "held-out loss untied", "tied")])
