"""What-ifs: short labels that say what a run tried, and which settings differ among runs.

A workshop changes one thing and trains again. `preset_label` names a run by its model and what it
sets otherwise than its preset ("seed-dense: lr 0.1"): absolute, so a label means the same in the
kept-runs table, a legend, a share link and a hand-in, whatever ran before it. `settings_diff` names
the settings that differ among runs for the compare table, and `settings_values` gives each run's
value of every setting. Plain Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields, replace
from typing import Any

from sharecore.core.config import TrainConfig
from sharecore.core.spec import ModelSpec, Rule, Use

MAX_LABEL_CHARS = 80  # as sharecore.runs.store keeps them
_NAME_CHARS = 40  # of a spec's name in a label

# Short words for the settings of TrainConfig in a label; a field not named here shows its own name.
_TRAIN_WORDS = {
    "learning_rate": "lr",
    "dataset": "data",
    "batch_size": "batch",
    "record_every": "record every",
}
# The order in which changes are named: what a person most likely meant to change comes first.
_TRAIN_ORDER = ("dataset", "teacher", "optimizer", "learning_rate", "steps", "batch_size", "seed")

Settings = tuple[ModelSpec, TrainConfig]


def _fmt(value: Any) -> str:
    """A setting's value, compact: 0.01, 60, (10, 5), none."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    if isinstance(value, Rule):
        return value.describe()
    return str(value)


def _train_values(config: TrainConfig) -> dict[str, Any]:
    # fields(), not a fixed list: a setting added later (such as 'teacher') is compared too.
    return {f.name: getattr(config, f.name) for f in fields(config)}


def _use_values(use: Use) -> dict[str, Any]:
    return {f.name: getattr(use, f.name) for f in fields(use) if f.name != "name"}


def settings_values(spec: ModelSpec, config: TrainConfig) -> dict[str, str]:
    """Every setting of a run, as a path and a compact value.

    Paths: ``spec.name``, ``spec.tensors`` and ``spec.uses`` (their names, in order),
    ``spec.input_shape``, ``spec.outputs``, ``spec.input_vocab``, ``tensor W shape``,
    ``tensor W initializer``, ``use dense_2 rule``, ``use dense_2 activation``, ... and
    ``train.learning_rate``, ``train.optimizer``, ... (every field of TrainConfig). The spec's
    description is not a setting and is left out.

    Returns:
        Path -> value as text, e.g. ``{"train.learning_rate": "0.01", "use dense_2 rule": "transpose"}``.
    """
    values = {
        "spec.name": spec.name,
        "spec.tensors": ", ".join(t.name for t in spec.tensors) or "none",
        "spec.uses": ", ".join(u.name for u in spec.uses),
        "spec.input_shape": _fmt(spec.input_shape),
        "spec.outputs": _fmt(spec.outputs) if spec.outputs else "last use",
        "spec.input_vocab": _fmt(spec.input_vocab),
    }
    for tensor in spec.tensors:
        values[f"tensor {tensor.name} shape"] = _fmt(tensor.shape)
        values[f"tensor {tensor.name} initializer"] = tensor.initializer
    for use in spec.uses:
        for key, value in _use_values(use).items():
            values[f"use {use.name} {key}"] = _fmt(value)
    for key, value in _train_values(config).items():
        values[f"train.{key}"] = _fmt(value)
    return values


def settings_diff(configs: Sequence[Settings]) -> list[str]:
    """The settings that differ among several runs, for the compare page's table.

    Args:
        configs: each run's (spec, config).

    Returns:
        Paths as in `settings_values`, e.g. ``["use dense_2 rule", "train.learning_rate"]``, in the
        order of the first run. A tensor or use that only some runs have is not listed field by
        field: ``spec.tensors`` or ``spec.uses`` differs instead. Empty for fewer than two runs or
        runs with equal settings.
    """
    if len(configs) < 2:
        return []
    all_values = [settings_values(spec, config) for spec, config in configs]
    # Paths every run has: those of a use that one spec lacks would only repeat "spec.uses differs".
    return [
        path
        for path in all_values[0]
        if all(path in values for values in all_values) and len({values[path] for values in all_values}) > 1
    ]


def _spec_changes(before: ModelSpec, after: ModelSpec) -> list[str] | None:
    """What `after` sets otherwise than `before` ("dense_2 rule transpose", "W shape (10, 20)"), when both
    have the same tensors and uses (by name); None if those differ."""
    if [u.name for u in before.uses] != [u.name for u in after.uses] or {t.name for t in before.tensors} != {
        t.name for t in after.tensors
    }:
        return None
    changes: list[str] = []
    if before.input_shape != after.input_shape:
        changes.append(f"input {_fmt(after.input_shape)}")
    if before.input_vocab != after.input_vocab:
        changes.append(f"vocab {_fmt(after.input_vocab)}")
    if before.outputs != after.outputs:
        changes.append(f"outputs {_fmt(after.outputs or 'last use')}")
    old_uses = {u.name: u for u in before.uses}
    for use in after.uses:
        old = old_uses[use.name]
        for key, value in _use_values(use).items():
            was = getattr(old, key)
            if value == was:
                continue
            if key == "rule" and value.kind != was.kind:
                # A different kind of rule says enough; its options would only crowd the label.
                changes.append(f"{use.name} rule {value.kind}")
            elif key == "tensor":
                changes.append(f"{use.name} tensor {_fmt(value) if value else 'own kernel'}")
            else:
                changes.append(f"{use.name} {key.replace('_', ' ')} {_fmt(value)}")
    old_tensors = {t.name: t for t in before.tensors}
    for tensor in after.tensors:
        was_tensor = old_tensors[tensor.name]
        if tensor.shape != was_tensor.shape:
            changes.append(f"{tensor.name} shape {_fmt(tensor.shape)}")
        if tensor.initializer != was_tensor.initializer:
            changes.append(f"{tensor.name} init {tensor.initializer}")
    return changes


def _train_changes(before: TrainConfig, after: TrainConfig) -> list[str]:
    """The settings `after` sets otherwise than `before` ("lr 0.1", "teacher tied"), the device left out: where
    a run trained is not what it tried."""
    old, new = _train_values(before), _train_values(after)
    order = [k for k in _TRAIN_ORDER if k in new] + [k for k in new if k not in _TRAIN_ORDER and k != "device"]
    return [
        f"{_TRAIN_WORDS.get(key, key.replace('_', ' '))} {_fmt(new[key])}" for key in order if new[key] != old.get(key)
    ]


def _join(parts: Iterable[str], limit: int) -> str:
    """Parts joined with ', ' within `limit` characters; the rest counted as '+N more'."""
    parts = list(parts)
    for kept in range(len(parts), 0, -1):
        rest = len(parts) - kept
        text = ", ".join(parts[:kept]) + (f" +{rest} more" if rest else "")
        if len(text) <= limit:
            return text
    suffix = f" +{len(parts) - 1} more" if len(parts) > 1 else ""
    return parts[0][: limit - len(suffix) - 1].rstrip() + "…" + suffix


def _short_name(name: str) -> str:
    return name if len(name) <= _NAME_CHARS else name[: _NAME_CHARS - 1].rstrip() + "…"


def _model_same(a: ModelSpec, b: ModelSpec) -> bool:
    """Whether two specs build the same model (their names and descriptions aside)."""
    return replace(a, name=b.name, description=b.description) == b


def preset_label(baseline: Settings, run: Settings, *, preset: str = "") -> str:
    """A run's label: its model's name and what it sets otherwise than its preset. The same settings give
    the same label in any browser, whatever was trained before.

    Args:
        baseline: the (spec, config) the run is named against: its preset's spec with that preset's
            default settings, or, for a model that came from no preset, the run's own spec with the
            default settings.
        run: this run's (spec, config).
        preset: the preset the spec came from ('' for none). A model edited from it is named
            "<preset> edited", never by the preset's name alone.

    Returns:
        At most `MAX_LABEL_CHARS` characters: ``"seed-dense"`` (the preset as published),
        ``"seed-dense: lr 0.1, teacher tied"``, ``"seed-dense edited: dense_2 rule transpose"``,
        ``"seed-dense edited: uses enc, dec"`` (uses or tensors added or removed) or
        ``"my model: steps 200"`` (a model renamed, or from no preset).
    """
    spec = run[0]
    renamed = not preset or spec.name != preset
    name = _short_name(spec.name if renamed else preset)
    if not renamed and not _model_same(spec, baseline[0]):
        name += " edited"
    parts = differences(baseline, run)
    if not parts:
        return name
    return f"{name}: {_join(parts, MAX_LABEL_CHARS - len(name) - 2)}"


def differences(baseline: Settings, run: Settings) -> list[str]:
    """What `run` sets otherwise than `baseline`, as short phrases, the data set first (it changes what
    every loss means), then the model, then the training settings: ``["teacher tied", "lr 0.1"]``;
    empty for the same settings."""
    spec, config = run
    base_spec, base_config = baseline
    changes: list[str] = []
    if not _model_same(spec, base_spec):
        found = _spec_changes(base_spec, spec)
        changes = found if found is not None else [f"uses {', '.join(u.name for u in spec.uses)}"]
    train = _train_changes(base_config, config)
    data = [c for c in train if c.startswith(("data ", "teacher "))]
    return data + changes + [c for c in train if c not in data]
