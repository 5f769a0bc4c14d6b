"""The experiment in a URL: a compact, tamper-proof encoding of a spec and its training settings.

A shared link carries the preset name (when the spec is that preset unchanged) or the spec
itself as ``base64url(zlib(JSON))``, plus every training setting that differs from the
default. `read_state` never raises: whatever a link holds, it returns a usable state and
one warning for each value it could not use as asked, so a workshop link with a typo still opens.

The ranges this app trains with live here, once: `fit_config` brings any settings into them
(and says what it changed), and the Train page draws its widgets with the same bounds, so no
widget ever changes a value silently.

This module is plain Python (no Streamlit) so the CLI, notebooks and tests can use it too.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sharecore.core.config import MAX_LEARNING_RATE, MIN_LEARNING_RATE, TrainConfig
from sharecore.core.limits import Limits, check_limits
from sharecore.core.presets import preset, presets
from sharecore.core.runcheck import digits_fits, tokens_fit
from sharecore.core.spec import ModelSpec, SharedTensor, Use

__all__ = [
    "Adjustment",
    "UrlState",
    "check_limits",
    "decode_config",
    "datasets_for",
    "digits_fits",
    "fit_config",
    "tokens_fit",
    "decode_spec",
    "encode_config",
    "encode_spec",
    "encode_state",
    "read_state",
]

# A URL longer than a few kB is cut by browsers and proxies; a real spec encodes to well under this.
MAX_PARAM_CHARS = 8_000
# The training settings this app accepts; steps and batch size are capped by `Limits`, and
# record_every by the run's steps (beyond that, only the first and last step are recorded anyway).
MAX_SEED = 2**31 - 1  # Keras initializer seeds are 32-bit
STREAMLIT_KEYS = frozenset({"embed", "embed_options"})  # Streamlit's own query parameters
# Read by the app, not settings: a share link's kept run (`/compare?run=<id>`), a workshop room's join code
# (`/room?room=CODE`) and its facilitator's board (`/room?board=<token>`).
SHARE_KEYS = frozenset({"run", "room", "board"})

DEFAULT_PRESET = "seed-dense"

# query-parameter key -> TrainConfig field
TRAIN_KEYS: dict[str, str] = {
    "steps": "steps",
    "batch": "batch_size",
    "opt": "optimizer",
    "lr": "learning_rate",
    "seed": "seed",
    "device": "device",
    "every": "record_every",
    "data": "dataset",
    "teacher": "teacher",  # read whatever the data set; it labels only the 'teacher' data set
}
KNOWN_KEYS = ("preset", "spec", *TRAIN_KEYS)
_FIELD_TYPES = {f.name: f.type for f in fields(TrainConfig)}
_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


@dataclass(frozen=True)
class UrlState:
    """What a link asks for, after falling back to defaults where it could not be read."""

    preset: str  # the preset the spec starts from (the sidebar's choice)
    spec: ModelSpec
    config: TrainConfig
    warnings: tuple[str, ...] = ()  # one sentence per value that was ignored or changed


@dataclass(frozen=True)
class Adjustment:
    """A training setting that `fit_config` could not use as asked."""

    field: str  # the TrainConfig field, e.g. 'learning_rate'
    asked: Any
    used: Any
    reason: str  # a sentence: why `asked` cannot be used


def datasets_for(spec: ModelSpec) -> tuple[str, ...]:
    """The data sets `spec` can train on, its own task first (a language model's is 'tokens')."""
    if tokens_fit(spec):
        return ("tokens", "teacher")
    return ("teacher", "digits") if digits_fits(spec) else ("teacher",)


def fit_config(
    spec: ModelSpec, config: TrainConfig, limits: Limits | None = None
) -> tuple[TrainConfig, tuple[Adjustment, ...]]:
    """The nearest settings this app trains `spec` with, and what had to change.

    A number outside its range becomes the nearest bound (the learning rate between
    `MIN_LEARNING_RATE` and `MAX_LEARNING_RATE`, steps and batch size within `limits`,
    record_every at most the steps); the digits data set on a model it does not fit becomes
    'teacher'.

    Args:
        spec: the model the settings train.
        config: settings that `TrainConfig` accepts.
        limits: the server's caps; default `Limits.from_env()`.

    Returns:
        The settings to use, and one `Adjustment` per value that changed (empty when none did).
    """
    limits = limits or Limits.from_env()
    used: dict[str, Any] = {}
    adjustments: list[Adjustment] = []

    def adjust(name: str, value: Any, reason: str) -> None:
        used[name] = value
        adjustments.append(Adjustment(name, getattr(config, name), value, reason))

    lr = config.learning_rate
    if not MIN_LEARNING_RATE <= lr <= MAX_LEARNING_RATE:
        adjust(
            "learning_rate",
            min(max(lr, MIN_LEARNING_RATE), MAX_LEARNING_RATE),
            f"the learning rate must be between {MIN_LEARNING_RATE:g} and {MAX_LEARNING_RATE:g}.",
        )
    if config.steps > limits.max_steps:
        adjust("steps", limits.max_steps, f"this server runs at most {limits.max_steps:,} steps.")
    if config.batch_size > limits.max_batch_size:
        adjust("batch_size", limits.max_batch_size, f"this server uses batches of at most {limits.max_batch_size}.")
    steps = used.get("steps", config.steps)
    if config.record_every > steps:
        adjust(
            "record_every",
            steps,
            f"the interval can be at most the run's {steps} steps; the first and last step are recorded either way.",
        )
    if config.dataset == "digits" and not digits_fits(spec):
        adjust(
            "dataset",
            "teacher",
            "the digits data set holds images, and this model reads token ids."
            if spec.input_vocab
            else f"the digits data set needs a model input of 64 values (one 8x8 image) or 128 (two side by side), "
            f"and this model's input {list(spec.input_shape)} holds {math.prod(spec.input_shape)} values.",
        )
    if config.dataset == "tokens" and not tokens_fit(spec):
        adjust(
            "dataset",
            "teacher",
            "the tokens data set needs a model that reads token ids (input_vocab) and outputs next-token "
            "logits (sequence, vocab), as preset 'tied-lm' does.",
        )
    return dataclasses.replace(config, **used), tuple(adjustments)


# ----------------------------------------------------------------------------- spec <-> text
def _compact(spec: ModelSpec) -> dict[str, Any]:
    """`spec.to_dict()` without the fields that hold their default values."""
    use_defaults = {k: v for k, v in Use(name="x", op="dense").to_dict().items() if k not in ("name", "op")}
    tensor_defaults = {"initializer": SharedTensor(name="x", shape=(1,)).initializer}
    data = spec.to_dict()
    data["uses"] = [{k: v for k, v in u.items() if use_defaults.get(k, object()) != v} for u in data["uses"]]
    data["tensors"] = [{k: v for k, v in t.items() if tensor_defaults.get(k, object()) != v} for t in data["tensors"]]
    for key, default in (("name", "custom"), ("description", ""), ("outputs", []), ("tensors", [])):
        if data[key] == default:
            del data[key]
    return data


def encode_spec(spec: ModelSpec) -> str:
    """The spec as URL-safe text: ``base64url(zlib(compact JSON))`` without padding."""
    raw = json.dumps(_compact(spec), separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii").rstrip("=")


def decode_spec(text: str) -> ModelSpec:
    """Reads a spec written by `encode_spec`, refusing anything malformed, invalid or too big.

    Args:
        text: the encoded spec, as found in a URL.

    Returns:
        A spec that `plan` accepts and that is within this app's limits.

    Raises:
        ValueError: saying what was wrong; never any other exception.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("the spec in the link is empty.")
    max_bytes = Limits.from_env().max_spec_bytes
    if len(text) > MAX_PARAM_CHARS:
        raise ValueError(
            f"the spec in the link is {len(text):,} characters long; at most {MAX_PARAM_CHARS:,} are read."
        )
    if not _B64URL.match(text):
        raise ValueError("the spec in the link is not base64url text (letters, digits, '-' and '_').")
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, max_bytes + 1)
    except (binascii.Error, ValueError, zlib.error) as err:
        raise ValueError(f"the spec in the link is damaged and could not be unpacked ({err}).") from None
    if len(raw) > max_bytes or inflater.unconsumed_tail:
        raise ValueError(f"the spec in the link unpacks to more than {max_bytes:,} bytes; it is not a spec.")
    if not inflater.eof:
        raise ValueError("the spec in the link is cut short; copy the whole link.")
    try:
        spec = ModelSpec.from_json(raw.decode("utf-8"))
        check_limits(spec)  # plan() and the server's caps
    except ValueError as err:
        raise ValueError(f"the spec in the link is not a valid model: {err}") from None
    except Exception as err:  # anything a tampered value provokes is still just a bad link
        raise ValueError(f"the spec in the link could not be read ({type(err).__name__}: {err}).") from None
    return spec


# ----------------------------------------------------------------------------- train settings <-> params
def _format(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _shown(value: Any) -> str:
    """A setting in a sentence: text quoted, numbers as in a link."""
    return repr(value) if isinstance(value, str) else _format(value)


def default_config(spec: ModelSpec | None = None) -> TrainConfig:
    """The settings a link that names none trains `spec` with: `TrainConfig()`, on a language model's own task."""
    if spec is not None and datasets_for(spec)[0] == "tokens":
        return TrainConfig(dataset="tokens")
    return TrainConfig()


def encode_config(config: TrainConfig, spec: ModelSpec | None = None) -> dict[str, str]:
    """The training settings that differ from `default_config(spec)`, as query parameters."""
    default = default_config(spec)
    return {
        key: _format(getattr(config, name))
        for key, name in TRAIN_KEYS.items()
        if getattr(config, name) != getattr(default, name)
    }


def _parse_field(name: str, text: str) -> Any:
    kind = _FIELD_TYPES[name]
    if kind in (int, "int"):
        if not re.fullmatch(r"\d{1,10}", text):
            raise ValueError(f"train.{name}: must be a whole number. Received: {text[:40]!r}")
        return int(text)
    if kind in (float, "float"):
        try:
            value = float(text[:40])
        except ValueError:
            raise ValueError(f"train.{name}: must be a number, e.g. 0.01. Received: {text[:40]!r}") from None
        return value
    return text[:40]


def decode_config(params: Mapping[str, Any]) -> tuple[TrainConfig, tuple[str, ...]]:
    """Reads training settings from query parameters; a value `TrainConfig` refuses keeps its default.

    Values that `TrainConfig` accepts but this app does not train with (a learning rate of
    1e-9, more steps than the server runs) are kept here; `fit_config` brings them into range.

    Returns:
        The settings and one warning per value that was ignored.
    """
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for key, name in TRAIN_KEYS.items():
        if key not in params:
            continue
        text = _last(params[key])
        try:
            value = _parse_field(name, text)
            TrainConfig(**{name: value})  # the core's check
            values[name] = value
        except Exception as err:
            warnings.append(f"Ignored '{key}' in the link ({_message(err)}); using {getattr(TrainConfig(), name)!r}.")
    return TrainConfig(**values), tuple(warnings)


# ----------------------------------------------------------------------------- whole state
def encode_state(preset_name: str, spec: ModelSpec, config: TrainConfig) -> dict[str, str]:
    """Query parameters that reproduce this experiment.

    The spec is written out only when it differs from the preset `preset_name`.
    """
    params = {"preset": preset_name}
    if preset_name not in presets() or spec != preset(preset_name):
        params["spec"] = encode_spec(spec)
    params.update(encode_config(config, spec))
    return params


def read_state(params: Mapping[str, Any]) -> UrlState:
    """Reads an experiment from query parameters; never raises.

    Args:
        params: the query parameters (values are strings, or lists of strings of which the
            last counts).

    Returns:
        The experiment, with defaults wherever the link could not be read and the nearest
        usable value wherever it asked for one out of range, and a warning for each.
    """
    warnings: list[str] = []
    unknown = [str(key) for key in params if key not in KNOWN_KEYS and key not in STREAMLIT_KEYS | SHARE_KEYS]
    if unknown:
        named = ", ".join(repr(key[:40]) for key in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        warnings.append(
            f"Ignored {named} in the link: not a setting this app reads. Settings: {', '.join(KNOWN_KEYS)}."
        )
    name = DEFAULT_PRESET
    if "preset" in params:
        asked = _last(params["preset"])
        if asked in presets():
            name = asked
        else:
            warnings.append(
                f"The link asks for preset {asked[:40]!r}, which does not exist; showing '{DEFAULT_PRESET}'. "
                f"Presets: {', '.join(presets())}."
            )
    spec = preset(name)
    if "spec" in params:
        try:
            spec = decode_spec(_last(params["spec"]))
        except ValueError as err:
            warnings.append(f"Could not restore the model from the link: {err} Showing preset '{name}' instead.")
    config, config_warnings = decode_config(params)
    warnings.extend(config_warnings)
    if "data" not in params:  # a language model's link names its data set only when it is not 'tokens'
        config = dataclasses.replace(config, dataset=default_config(spec).dataset)
    config, adjustments = fit_config(spec, config)
    keys = {name: key for key, name in TRAIN_KEYS.items()}
    warnings.extend(
        f"Changed '{keys[a.field]}' in the link from {_shown(a.asked)} to {_shown(a.used)}: {a.reason}"
        for a in adjustments
    )
    try:
        check_limits(spec, config)
    except ValueError as err:
        warnings.append(f"Ignored the training settings in the link: {err} Using the defaults.")
        config = TrainConfig()
    return UrlState(name, spec, config, tuple(warnings))


def _last(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    return value if isinstance(value, str) else str(value)


def _message(err: Exception) -> str:
    return str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
