"""Keeping a finished run: its label, its place in a workspace's list, and the run it replaces.

A front end decides how a run will be kept when the run starts (`KeepPlan`: which store, whose
list, which label) and hands the plan to `BackgroundRun(on_result=...)`, whose worker keeps the
result as soon as training ends. So a run is kept whatever became of the page that started it:
reloaded, navigated away or closed. Store policy lives here and in `sharecore.runs.store`, never in
a page.

Plain Python: no TensorFlow, no Streamlit.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from sharecore.core.config import TrainConfig
from sharecore.core.results import TrainResult
from sharecore.core.spec import ModelSpec
from sharecore.runs.store import MAX_LABEL_CHARS, RunStore
from sharecore.runs.whatif import preset_label

# What `keep` adds to the label of a run that ended before its last step; a continued run drops it.
_STOPPED = re.compile(r" \(stopped at \d+\)$")
# The number `numbered` gives a label that the list has already: "seed-dense (2)".
_NUMBER = re.compile(r" \((\d+)\)$")


@dataclass(frozen=True)
class Kept:
    """What `keep` did with a finished run."""

    run_id: str | None  # its id in the store; None when it could not be kept
    continues: str | None  # the kept run it continued, now replaced by it (None for a new run)
    notes: tuple[str, ...] = ()  # one sentence per thing the user should know (evictions, why not kept)


@dataclass(frozen=True)
class KeepPlan:
    """Where and under which label a run is kept when it ends, decided when it starts.

    Call it with the run's result (`BackgroundRun(on_result=plan)`): see `keep`.
    """

    store: RunStore
    workspace: str  # the list it joins (the browser's workspace key)
    label: str  # what the run tried, without the "(stopped at N)" a stopped run gets
    preset: str = ""  # the preset the spec started from
    continues: str | None = None  # the kept run this one continues: it takes that run's place and pin

    def __call__(self, result: TrainResult) -> Kept:
        return keep(self, result)


def run_label(
    baseline: tuple[ModelSpec, TrainConfig],
    current: tuple[ModelSpec, TrainConfig],
    *,
    preset: str = "",
    continued: str | None = None,
) -> str:
    """The label a run will be kept under: what it sets otherwise than its preset (`preset_label`:
    "seed-dense: lr 0.1"), or, for a run that continues a kept one, that run's label (`continued`)
    without its "(stopped at N)"."""
    if continued is not None:
        return _STOPPED.sub("", continued)
    return preset_label(baseline, current, preset=preset)


def numbered(label: str, taken: list[str]) -> str:
    """`label`, or, when the list has it already (stopped or not), `label (N)` with the next free number N.

    The number is kept with the run, so the kept-runs table, the legends, Compare's chips, a share
    link and a hand-in all call the run the same: the third run of the preset as published is
    "seed-dense (3)" everywhere.

    Example:
        >>> numbered("seed-dense", ["seed-dense (stopped at 5)", "seed-dense (2)", "seed-dense: lr 0.1"])
        'seed-dense (3)'
        >>> numbered("seed-dense: lr 0.1", ["seed-dense"])
        'seed-dense: lr 0.1'
    """
    numbers = set()
    for other in taken:
        other = _STOPPED.sub("", other)
        if other == label:
            numbers.add(1)
        elif (match := _NUMBER.search(other)) and other[: match.start()] == label:
            numbers.add(int(match.group(1)))
    if not numbers:
        return label
    n = max(numbers) + 1
    suffix = f" ({n})"
    if len(label) + len(suffix) > MAX_LABEL_CHARS:  # the store would cut the number off
        label = label[: MAX_LABEL_CHARS - len(suffix) - 1].rstrip() + "…"
    return label + suffix


def keep(plan: KeepPlan, result: TrainResult) -> Kept:
    """Keeps `result` in `plan.workspace`'s list; never raises.

    A label the workspace's list has already gets the next number (`numbered`). A run that ended early
    gets "(stopped at N)" after its label. A continued run replaces the run
    it continues: the same run, now longer, with its pin. A run the store refuses (every run pinned,
    the store locked or read-only) is not kept, and `Kept.notes` says why.
    """
    label = plan.label
    if plan.continues is None:
        # A continued run takes the place of the run it continues, and its label with it.
        with contextlib.suppress(ValueError):  # a list that cannot be read: the save below says why
            label = numbered(label, [info.label for info in plan.store.runs(plan.workspace)])
    if result.steps_done < result.config.steps:
        suffix = f" (stopped at {result.steps_done})"
        room = MAX_LABEL_CHARS - len(suffix)  # the store cuts a long label at its end: keep the suffix
        if len(label) > room:
            label = label[: room - 1].rstrip() + "…"
        label += suffix
    try:
        report = plan.store.save(plan.workspace, result, label, preset=plan.preset)
    except (ValueError, OSError) as err:
        return Kept(None, None, (f"This run could not be kept: {err}",))
    notes = list(report.notes)
    if plan.continues is not None:
        pinned = False
        with contextlib.suppress(KeyError, ValueError):  # the continued run may have been deleted meanwhile
            pinned = any(info.id == plan.continues and info.pinned for info in plan.store.runs(plan.workspace))
            # Deleted before the new run is pinned: its pin is what makes room under the pinned cap.
            plan.store.delete(plan.workspace, plan.continues)
        if pinned:
            try:
                plan.store.pin(plan.workspace, report.run_id, True)
            except (KeyError, ValueError) as err:
                notes.append(f"The continued run is kept, but not pinned: {err}")
    return Kept(report.run_id, plan.continues, tuple(notes))
