"""`sharecore.SharingMonitor`: the gradient split of `inspect`, recorded while one's own `model.fit` trains."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sharecore.core.inspection import gradient_rows
from sharecore.core.plan import as_plan
from sharecore.core.results import record_frame
from sharecore.core.spec import ModelSpec
from sharecore.nn.inspect import loss_value, resolve_loss, split_gradients
from sharecore.nn.model import kernel_variables, layer_name
from sharecore.nn.tensor_rules import Divergence, rule_adjoint
from sharecore.nn.tensorboard import RunLog, check_logdir
from sharecore.nn.tfimport import keras, tf


class SharingMonitor(keras.callbacks.Callback):
    """Records, every `every` batches of `model.fit` (and before the first), each use's part of each shared
    weight's gradient on a fixed probe batch, as `sharecore.inspect` computes it at the weights of that moment.

    `monitor.gradients` has a run's gradient columns (`sharecore.core.results.GRADIENT_COLUMNS`):
    `step` is the number of batches trained (0: before the first fit, counted on across epochs
    and later fits of the same model) and
    `variant` is 'tied'. For the untied model of `sharecore.build(spec, tied=False)`, given `spec`, they
    are each copy's kernel gradient mapped back into its tensor's shape (variant 'untied'), as
    `sharecore.train` records an untied variant's. For a model of `sharecore.build(spec, ...)`, given `spec`,
    `monitor.divergence` has a run's divergence columns, as `sharecore.train` records them: for every
    pair of uses of a shared tensor, ||Wa - Wb|| / ||W0|| and cosine(Wa, Wb) on the entries both read,
    W0 being the weights when `fit` starts (variant 'untied' for an untied model; a tied one's is 0).

    Args:
        x: the probe batch's inputs.
        y: its targets.
        every: record every this many batches.
        loss: as `sharecore.inspect`'s; default the compiled model's loss.
        spec: the spec the model was built from with `sharecore.build`, to record divergence.
        logdir: also writes each record to TensorBoard as it is taken, into `logdir/<variant>`
            (`sharecore.nn.tensorboard`: the tags of `sharecore.train`'s logs); checked at once.

    Example:
        >>> import keras, numpy as np
        >>> dense = keras.layers.Dense(4, name="block")
        >>> inp = keras.Input((4,))
        >>> model = keras.Model(inp, dense(dense(inp)))
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> x, y = np.ones((8, 4), "float32"), np.zeros((8, 4), "float32")
        >>> monitor = SharingMonitor(x, y, every=2)
        >>> _ = model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[monitor])
        >>> sorted(set(monitor.gradients.step))
        [0, 2, 4]
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        every: int = 1,
        loss: Any = None,
        spec: ModelSpec | None = None,
        logdir: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a whole number of batches, 1 or more. Received: every={every!r}")
        if logdir is not None:
            check_logdir(logdir)  # a bad folder fails here, before fit, not after its first batches
        self.x, self.y, self.every, self.loss, self.spec, self.logdir = x, y, every, loss, spec, logdir
        self.steps = 0  # batches trained since the first fit started, over every epoch and later fits
        self._gradient_rows: list[tuple] = []
        self._divergence_rows: list[tuple] = []
        self._divergence: Divergence | None = None
        self._variant = "tied"  # the untied model of a spec records as 'untied', as sharecore.train does
        self._w0_norms: tf.Tensor | None = None
        self._log: RunLog | None = None

    @property
    def gradients(self) -> pd.DataFrame:
        """step, variant, tensor, use, grad_norm, sum_norm, cosine_with_others, per recorded step and use."""
        return record_frame("gradients", self._gradient_rows)

    @property
    def divergence(self) -> pd.DataFrame:
        """step, variant, tensor, use_a, use_b, relative_distance, cosine; empty without a spec."""
        return record_frame("divergence", self._divergence_rows)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.logdir is not None:
            self._log = RunLog(self.logdir)
        self._loss_fn, self.loss_name = resolve_loss(self.model, self.loss, self.y, [])
        if self._gradient_rows:  # a later fit of the same monitor: steps count on, W0 stays the first fit's
            return
        if self.spec is not None:
            p = as_plan(self.spec)
            tied = _is_tied(self.model, p)
            self._variant = "tied" if tied else "untied"
            self._divergence = Divergence(p, kernel_variables(self.model, p, tied), tied)
            self._w0_norms = tf.constant(self._divergence.norms_now())
        self._record()

    def _copy_gradients(self) -> dict[str, list[tuple[str, np.ndarray]]]:
        """Each copy's kernel gradient mapped back into its shared tensor's shape, as the trainer records an untied
        variant's: the parts that the uses would send to one tensor if they shared it."""
        d = self._divergence
        kernels = [d.kernels[u.use.name] for group in d.groups.values() for u in group]
        with tf.GradientTape() as tape:
            loss = loss_value(self._loss_fn, self.y, self.model(self.x, training=False))
        grads = iter(tape.gradient(loss, kernels))
        return {
            t: [(u.use.name, np.asarray(rule_adjoint(u.use.rule, next(grads), u.tensor_shape))) for u in group]
            for t, group in d.groups.items()
        }

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1
        if self.steps % self.every == 0:
            self._record()

    def _record(self) -> None:
        """Records the split (and the divergence) at the current weights, at step `self.steps`."""
        if self._divergence is not None and not self._divergence.tied:
            shares = self._copy_gradients()
        else:
            shares, _, _ = split_gradients(self.model, self.x, self.y, self._loss_fn)
        gradients = gradient_rows(self.steps, self._variant, shares)
        divergence = []
        if self._divergence is not None:
            for (t, a, b), (rel, cos) in self._divergence.now(self._w0_norms).items():
                divergence.append((self.steps, self._variant, t, a, b, rel, cos))
        self._gradient_rows.extend(gradients)
        self._divergence_rows.extend(divergence)
        if self._log is not None:
            self._log.gradients(record_frame("gradients", gradients))
            self._log.divergence(record_frame("divergence", divergence))
            self._log.flush()  # TensorBoard shows the records while fit goes on

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _is_tied(model: keras.Model, p: Any) -> bool:
    """Whether `model` is the tied or the untied model of plan `p`, from its layer names; ValueError if neither."""
    names = {layer.name for layer in model.layers}
    for tied in (True, False):
        if all(layer_name(u, tied) in names for u in p.uses):
            return tied
    raise ValueError(
        f"model {model.name!r} was not built by sharecore.build from spec {p.spec.name!r}: it lacks the layers that "
        f"spec's uses would have. Pass the spec the model was built from, or spec=None. Received: spec={p.spec.name!r}"
    )
