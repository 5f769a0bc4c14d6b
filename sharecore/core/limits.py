"""Caps that keep one user's spec from taking down a small shared server.

`check_limits(spec, config)` runs in plain Python on the spec and its `plan`, before any
TensorFlow work, and raises a `ValueError` that says which cap was hit, by how much and how
to raise it. The defaults fit a hosted server with about 1.2 GB of RAM (two runs at once). Raise them locally with
an environment variable (``SHARECORE_MAX_PARAMS=10000000``) or in ``.streamlit/secrets.toml``::

    [sharecore]
    max_params = 10000000
    max_activation_mb = 1024
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from sharecore.core.config import DIGITS_INPUT_SIZES, DIGITS_POOL_SIZE, TEACHER_POOL_SIZE, TOKENS_HELDOUT, TrainConfig
from sharecore.core.fields import parse_count
from sharecore.core.plan import Plan, as_plan
from sharecore.core.records import pair_rows, recorded_rows, recorded_steps, rows_per_recorded_step
from sharecore.core.spec import ModelSpec

BYTES_PER_VALUE = 4  # float32
# Training keeps each node's forward value, its gradient and about as much again in
# TensorFlow workspace, so a training step needs about three times the forward activations.
TRAINING_FACTOR = 3
# Convolutions on the CPU take far more than their values: oneDNN keeps reordered copies and
# workspaces of inputs, outputs and kernels for the forward pass and both gradients, and the
# data pool's inputs and targets are held as NumPy arrays and as tensors. Fitted to the peaks
# `python -m bench --only memory` measured over conv shapes (kernels 1-5, images 7-56, batches
# 8-512): a step took up to 17 times a conv net's forward values per sample, and the pool up to
# 4.5 times its inputs and targets. A spec with a conv2d (or conv2d_transpose) use is estimated with these factors.
CONV_TRAINING_FACTOR = 17
CONV_POOL_FACTOR_HALVES = 9  # 4.5, in halves to keep the estimate in whole bytes
# The 'tokens' data set's held-out pass runs both models forward over all TOKENS_HELDOUT sequences
# at once, and a language model's output is its logits, (sequence, vocab) per sample: each model
# holds its logits, the softmax cross-entropy's probabilities and its gradient buffer, and the two
# models' passes run side by side. A tied LM of vocab 250,000 x dim 1 on one-token sequences took
# 561 MiB over the server's baseline (a fresh process, `bench.memory.measure`), 4.4 times one
# copy of the held-out pass's values; 5 copies are counted.
HELDOUT_FACTOR = 5
# What the parameters of a model with an embedding use take while it trains, per parameter of both
# models: the weight, Adam's two slots, the gradient (an embedding's is sparse rows, made into a
# whole (vocab, dim) table where it meets the dense gradient of the transposed use), the update's
# temporaries, the pooled trainer's copy of the initial weights and the result's start and end
# weights. A tied LM of vocab 2,000 x dim 250 (1,625,000 parameters in both models, 6 MB of
# activations) took 111 MiB over the server's baseline: 17 values per parameter; 20 are counted, for
# the spread of measurements on a shared machine.
# (A dense model's parameters cost about as much, and `max_params` is set by measuring them; an
# embedding's vocabulary makes far more of them per value of activation, so they are counted here.)
EMBEDDING_PARAM_COPIES = 20
MB = 2**20
SECRETS_SECTION = "sharecore"


@dataclass(frozen=True)
class Limits:
    """Caps checked before a model is built or trained. All are whole numbers >= 1."""

    # The defaults keep a server within its memory budget (README, "Limits") with two runs at
    # the caps at once; `python -m bench --only memory` measures the worst cases they allow. Two
    # runs of a 2,000,000-parameter dense kernel took about 370 MB over the server's baseline;
    # of 1,000,000, about 200 MB.
    max_params: int = 1_000_000  # parameters of the larger of the tied and untied models
    # The least that keeps every preset trainable at its default batch of 32 (seed-conv's estimate
    # is 214 MiB; it measured 140-185 MiB over the server's baseline).
    max_activation_mb: int = 224  # estimated activation memory of one training run, in MiB
    max_steps: int = 5000  # optimizer steps per run
    max_batch_size: int = 512  # samples per batch
    max_input_size: int = 65536  # values per input sample, e.g. 64 * 64 * 16
    # A use adds linearly to the compiled step (issue 8); what grows with the square of the uses
    # is what a run records, capped by max_recorded_rows.
    max_uses: int = 16  # uses (layer calls) in one spec
    # Each recorded step keeps a row per use and per pair of uses of a shared tensor, for both
    # models: one run of 32 uses recorded at each of 5000 steps kept 5.3 million rows in 1.7 GB;
    # two runs of 360,000 rows at once took about 250 MB (`python -m bench --only memory`).
    max_recorded_rows: int = 400_000  # gradient and divergence rows one run records
    max_spec_bytes: int = 200_000  # size of an uploaded or pasted spec JSON
    # The Your model page writes an upload to a temporary file and loads it: a .keras file holds the
    # weights, so 50 MB is a model of about 12 million float32 parameters (max_params caps what is inspected).
    max_model_mb: int = (
        50  # size of an uploaded .keras model (or .npz batch), in MB (1,000,000 bytes, as Streamlit's uploader counts)
    )
    # Wall-clock seconds one run may take, compile included; checked between chunks of steps.
    # 5000 steps of the default preset take about 55 s with two runs training at once on a
    # 2-core server that is busy with other work (about 95 steps/s each), and 250 s at the
    # slowest rate seen in a workshop (20 steps/s): a run someone meant fits; a forgotten one ends.
    max_run_seconds: int = 300

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limit {f.name} must be a whole number >= 1. Received: {f.name}={value!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], base: Limits | None = None) -> Limits:
        """Reads limits from a mapping such as ``st.secrets["sharecore"]``.

        Args:
            mapping: limit names (``max_params``, ...) to whole numbers or numeric strings.
                Missing names keep the value of `base`.
            base: the limits to start from; defaults to `Limits()`.

        Returns:
            The new `Limits`.

        Raises:
            ValueError: for an unknown name or a value that is not a whole number >= 1.
        """
        base = base or cls()
        if not isinstance(mapping, Mapping):
            raise ValueError(
                f"limits must be a mapping of limit names to numbers, e.g. {{'max_params': 2000000}}. "
                f"Received: {type(mapping).__name__}"
            )
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in mapping if k not in allowed)
        if unknown:
            raise ValueError(
                f"unknown limit(s) {unknown} under [{SECRETS_SECTION}]; allowed names are {allowed}. "
                f"Received: {unknown}"
            )
        values = {name: parse_count(value, f"[{SECRETS_SECTION}] {name}") for name, value in mapping.items()}
        return replace(base, **values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, base: Limits | None = None) -> Limits:
        """Reads ``SHARECORE_MAX_PARAMS``, ``SHARECORE_MAX_ACTIVATION_MB``, ... over `base`.

        Args:
            environ: the environment; defaults to `os.environ`.
            base: the limits to start from; defaults to the process's server defaults
                (`set_server_defaults`, e.g. from .streamlit/secrets.toml), else `Limits()`.

        Returns:
            The new `Limits`; variables that are not set keep the value of `base`.

        Raises:
            ValueError: naming the variable, if its value is not a whole number >= 1.

        Example:
            >>> Limits.from_env({"SHARECORE_MAX_STEPS": "20_000"}, base=Limits()).max_steps
            20000
            >>> Limits.from_env({"SHARECORE_MAX_STEPS": "lots"})
            Traceback (most recent call last):
            ValueError: environment variable SHARECORE_MAX_STEPS must be a whole number >= 1, e.g. 5000. Received: 'lots'
        """
        environ = os.environ if environ is None else environ
        base = base or _server_defaults
        values = {}
        for f in fields(cls):
            variable = env_variable(f.name)
            if variable in environ:
                values[f.name] = parse_count(environ[variable], f"environment variable {variable}", str(f.default))
        return replace(base, **values)


_server_defaults = Limits()


def set_server_defaults(limits: Limits) -> None:
    """Sets the limits that `Limits.from_env()` starts from in this process.

    A front end calls this once with what its configuration says (the dashboard reads the
    ``[sharecore]`` section of .streamlit/secrets.toml); environment variables still win.
    """
    global _server_defaults
    if not isinstance(limits, Limits):
        raise ValueError(f"set_server_defaults takes a Limits. Received: {type(limits).__name__}")
    _server_defaults = limits


def env_variable(name: str) -> str:
    """The environment variable of limit `name`, e.g. ``SHARECORE_MAX_PARAMS``."""
    return f"SHARECORE_{name.upper()}"


def _how_to_raise(name: str) -> str:
    return (
        f"raise the limit with the environment variable {env_variable(name)} or in "
        f".streamlit/secrets.toml under [{SECRETS_SECTION}] {name}"
    )


def _count(value: int) -> str:
    """1,234,567; a number beyond any real model is summarised rather than printed."""
    return f"{value:,}" if value < 10**18 else f"about 10^{len(str(value)) - 1}"


def _exceeds(what: str, name: str, limit: int, value: int, unit: str, detail: str, fix: str) -> ValueError:
    return ValueError(
        f"{what} exceeds the limit of {limit:,} {unit} ({detail}: {_count(value)}). {fix}, or "
        f"{_how_to_raise(name)}. Received: {name}={limit}, value={value}"
    )


def untied_params(p: Plan) -> int:
    """Parameters of the untied model: every use stores its own kernel and bias.

    Equals `param_report(spec).untied_total`.
    """
    return sum(u.kernel_size + u.bias_size for u in p.uses)


def tied_params(p: Plan) -> int:
    """Parameters of the tied model: each shared tensor and shared bias once, own ones per use.

    Usually smaller than the untied model, but not always: a use that reads a slice of a big
    tensor copies only the slice when untied. Equals `param_report(spec).tied_total`.
    """
    stored: set[tuple[str, str | None]] = set()  # (kind, tensor name); only a use of a tensor reads one
    total = 0
    for u in p.uses:
        if u.use.tensor is None:
            total += u.kernel_size
        elif ("kernel", u.use.tensor) not in stored:
            stored.add(("kernel", u.use.tensor))
            total += math.prod(u.tensor_shape)
        if u.use.bias == "shared":
            if ("bias", u.use.tensor) not in stored:
                stored.add(("bias", u.use.tensor))
                total += u.bias_size
        else:
            total += u.bias_size
    return total


def activation_values(p: Plan) -> int:
    """Values one sample creates in a forward pass: the input, every use's input copy and output.

    A use's input counts only when `input_slice` copies it (a reshape is a view); several
    outputs count once more because they are flattened and concatenated.
    """
    total = math.prod(p.spec.input_shape)
    for u in p.uses:
        if u.use.input_slice is not None:
            total += math.prod(u.in_shape)
        total += math.prod(u.out_shape)
    if len(p.outputs) > 1:
        total += math.prod(p.output_shape)
    return total


def activation_bytes(p: Plan, config: TrainConfig) -> int:
    """Estimated activation memory of one training run, in bytes.

    Dense specs: ``values per sample * 4 bytes * (3 * batch_size + 512 if the data set is
    'teacher')``: a training step keeps forward values, gradients and workspace for a batch (3x),
    and the teacher data set runs the model over its pool of 512 samples.

    Specs with a conv2d or conv2d_transpose use: ``4 bytes * (17 * values per sample * batch_size +
    4.5 * (input + output values per sample) * pool size)``, the factors measured (`CONV_TRAINING_FACTOR`).

    The 'tokens' data set: ``values per sample * 4 bytes * (3 * batch_size + 5 * 128)``: its
    held-out pass over 128 sequences holds five copies of their values (`HELDOUT_FACTOR`). A spec
    with an embedding use adds ``20 * 4 bytes`` per parameter of both models (`embedding_bytes`).
    """
    return _step_and_pool_bytes(p, config) + embedding_bytes(p)


def embedding_bytes(p: Plan) -> int:
    """What the parameters of a model with an embedding use take while it trains, both models (0 without one).

    Example:
        >>> from sharecore import plan, preset
        >>> embedding_bytes(plan(preset("tied-lm")))  # (512 + 256) tied + (512 + 256 + 512) untied, 20 x 4 bytes
        163840
        >>> embedding_bytes(plan(preset("seed-dense")))
        0
    """
    if not any(u.use.op == "embedding" for u in p.uses):
        return 0
    return EMBEDDING_PARAM_COPIES * BYTES_PER_VALUE * (tied_params(p) + untied_params(p))


def _step_and_pool_bytes(p: Plan, config: TrainConfig) -> int:
    """The training step's activations and those of the passes over the data pool (see `activation_bytes`)."""
    if _has_conv(p):
        pool = _pool_size(p, config)
        io = math.prod(p.spec.input_shape) + math.prod(p.output_shape)
        step = CONV_TRAINING_FACTOR * activation_values(p) * config.batch_size
        return BYTES_PER_VALUE * (step + CONV_POOL_FACTOR_HALVES * io * pool // 2)
    samples = TRAINING_FACTOR * config.batch_size
    if config.dataset == "teacher":
        samples += TEACHER_POOL_SIZE
    elif config.dataset == "tokens":
        samples += HELDOUT_FACTOR * TOKENS_HELDOUT  # the held-out loss: one forward pass over all of them
    return activation_values(p) * BYTES_PER_VALUE * samples


def _has_conv(p: Plan) -> bool:
    """Whether the spec has a conv2d or conv2d_transpose use: its activations are estimated with the conv factors."""
    # A transposed conv runs the same oneDNN kernels (it is conv2d's input gradient), so the same workspaces.
    return any(u.use.op in ("conv2d", "conv2d_transpose") for u in p.uses)


def _pool_size(p: Plan, config: TrainConfig) -> int:
    """Samples in the run's data pool; 0 for digits on a spec that cannot take them (the data set refuses it)."""
    if config.dataset == "teacher":
        return TEACHER_POOL_SIZE
    if config.dataset == "tokens":
        return TEACHER_POOL_SIZE + TOKENS_HELDOUT if p.spec.input_vocab else 0
    return DIGITS_POOL_SIZE if math.prod(p.spec.input_shape) in DIGITS_INPUT_SIZES else 0


def _activation_formula(p: Plan, config: TrainConfig) -> str:
    """How `activation_bytes` counted, for the message that refuses a run."""
    values = _count(activation_values(p))
    if _has_conv(p):
        pool = _pool_size(p, config)
        io = _count(math.prod(p.spec.input_shape) + math.prod(p.output_shape))
        return (
            f"a convolutional net: {values} values per sample x 4 bytes x {CONV_TRAINING_FACTOR} x batch_size "
            f"{config.batch_size}, plus its {io} input and output values per sample x 4 bytes x 4.5 x the "
            f"{pool}-sample data pool"
        )
    passes = {
        "teacher": f" plus one pass over the {TEACHER_POOL_SIZE}-sample teacher pool",
        "tokens": f" plus {HELDOUT_FACTOR} x the {TOKENS_HELDOUT} held-out sequences (one pass over them)",
    }.get(config.dataset, "")
    params = ""
    if embedding_bytes(p):
        params = (
            f", plus {EMBEDDING_PARAM_COPIES} x 4 bytes per parameter of both models "
            "(weights, optimizer slots, gradients and copies)"
        )
    return f"{values} values per sample x 4 bytes x 3 x batch_size {config.batch_size}{passes}{params}"


def check_limits(spec: ModelSpec | Plan, config: TrainConfig | None = None, limits: Limits | None = None) -> Plan:
    """Checks `spec` (and `config`) against `limits`, before anything is allocated.

    Pure Python on the spec and its plan; call it before `build` or `train`.

    Args:
        spec: the model spec, or its `Plan`.
        config: the training settings; `None` checks the spec as `TrainConfig()` would train it.
        limits: the caps; `None` reads them with `Limits.from_env()`.

    Returns:
        The spec's `Plan`, for the caller to hand down instead of planning again.

    Raises:
        ValueError: for the first cap exceeded, naming the cap, the value and how to raise it;
            or, from `plan`, if the spec cannot be built.

    Example:
        >>> from sharecore import TrainConfig, preset
        >>> check_limits(preset("seed-dense"), TrainConfig(steps=100), Limits()).spec.name
        'seed-dense'
        >>> check_limits(preset("seed-dense"), TrainConfig(steps=6000), Limits())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: the training run exceeds the limit of 5,000 steps (steps asked for: 6,000). Train fewer steps, ...
    """
    limits = limits or Limits.from_env()
    config = config or TrainConfig()
    planned = spec if isinstance(spec, Plan) else None
    spec = spec.spec if isinstance(spec, Plan) else spec
    name = f"spec '{spec.name}'"
    # Cheap counts first, so that a huge spec is refused before plan() walks it.
    if len(spec.uses) > limits.max_uses:
        raise _exceeds(
            name, "max_uses", limits.max_uses, len(spec.uses), "uses", "uses in the spec", "Remove some uses"
        )
    if len(spec.tensors) > limits.max_uses:
        # A valid spec has no more shared tensors than uses; refuse before plan() walks them.
        raise _exceeds(
            name,
            "max_uses",
            limits.max_uses,
            len(spec.tensors),
            "uses",
            "shared tensors declared",
            "Remove some shared tensors",
        )
    input_size = math.prod(spec.input_shape)
    if input_size > limits.max_input_size:
        raise _exceeds(
            name,
            "max_input_size",
            limits.max_input_size,
            input_size,
            "values per input sample",
            f"input shape {list(spec.input_shape)}",
            "Use a smaller input_shape",
        )
    if config.steps > limits.max_steps:
        raise _exceeds(
            "the training run",
            "max_steps",
            limits.max_steps,
            config.steps,
            "steps",
            "steps asked for",
            "Train fewer steps",
        )
    if config.batch_size > limits.max_batch_size:
        raise _exceeds(
            "the training run",
            "max_batch_size",
            limits.max_batch_size,
            config.batch_size,
            "samples per batch",
            "batch_size",
            "Use a smaller batch_size",
        )
    p = planned or as_plan(spec)
    # Both models are built and trained side by side; cap the larger.
    params, variant = max((untied_params(p), "untied model"), (tied_params(p), "tied model"))
    if params > limits.max_params:
        raise _exceeds(
            name,
            "max_params",
            limits.max_params,
            params,
            "parameters",
            variant,
            "Make the tensors or kernels smaller",
        )
    per_step, rows = rows_per_recorded_step(p), recorded_rows(p, config)
    if rows > limits.max_recorded_rows:
        most = (limits.max_recorded_rows - pair_rows(p)) // per_step  # recorded steps that fit
        if most >= 2:  # step 1 and the last step, at least
            # Enough: at most steps // k + 2 steps are recorded; then the least k that fits.
            enough = config.steps if most == 2 else -(-config.steps // (most - 2))
            every = next(
                k
                for k in range(max(config.record_every, config.steps // most), enough + 1)
                if recorded_steps(replace(config, record_every=k)) <= most
            )
            fix = (
                f"Record every {every:,} steps or more (record_every is {config.record_every:,}), "
                "train fewer steps or use fewer uses of the shared tensors"
            )
        else:
            fix = "Use fewer uses of the shared tensors"
        raise _exceeds(
            "the training run",
            "max_recorded_rows",
            limits.max_recorded_rows,
            rows,
            "recorded rows",
            f"{_count(per_step)} gradient and divergence rows per recorded step x "
            f"{_count(recorded_steps(config))} recorded steps, and step 0's divergence",
            fix,
        )
    needed = activation_bytes(p, config)
    if needed > limits.max_activation_mb * MB:
        raise ValueError(
            f"training {name} needs about {_count(-(-needed // MB))} MiB of activations, which exceeds the "
            f"limit of {limits.max_activation_mb:,} MiB ({_activation_formula(p, config)}). Use a smaller "
            f"batch_size, input or channel count, or {_how_to_raise('max_activation_mb')}. "
            f"Received: max_activation_mb={limits.max_activation_mb}, estimate_bytes={needed}"
        )
    return p


def check_spec_size(text: str | bytes, limits: Limits | None = None) -> None:
    """Refuses an uploaded or pasted spec JSON longer than `limits.max_spec_bytes`, before parsing it.

    Raises:
        ValueError: naming the size, the limit and how to raise it.
    """
    limits = limits or Limits.from_env()
    size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if size > limits.max_spec_bytes:
        raise _exceeds(
            "the spec JSON",
            "max_spec_bytes",
            limits.max_spec_bytes,
            size,
            "bytes",
            "size",
            "Upload a smaller file (a spec is usually a few kB)",
        )
