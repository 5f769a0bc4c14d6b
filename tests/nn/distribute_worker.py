"""Runs tests/nn/test_distribute.py's cases in a fresh process with 2 logical CPUs.

TensorFlow accepts a split of the CPU into logical devices only before it starts, so these cases
cannot run in the pytest process, whose TensorFlow started long before. One process runs them all
(one TensorFlow start instead of one per case) and pickles what each case recorded to argv[1];
the tests read it and compare. The placement case runs last: its log covers the rest of the process.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile

import tensorflow as tf

from sharecore.nn.devices import use_logical_cpus

REPLICAS = 2
if not use_logical_cpus(REPLICAS):
    raise SystemExit("could not split the CPU into 2 logical devices")
# Placement logging is read only when TensorFlow starts; the placement case reads its part of the log.
tf.debugging.set_log_device_placement(True)

import keras  # noqa: E402  (after the split: both start TensorFlow)
import numpy as np  # noqa: E402

import sharecore as sc  # noqa: E402
from sharecore.core.config import TrainConfig  # noqa: E402
from sharecore.nn import trainer as pool  # noqa: E402
from sharecore.nn.devices import make_strategy  # noqa: E402

PRESETS = ("seed-dense", "seed-conv", "seed-mixed", "partial-share")
# Few steps: float32 sums over two replicas differ from one device's in the last bits, and Adam's
# division by sqrt(v) makes such differences grow over a run (1e-4 in a gradient norm after 30 steps).
CONFIG = TrainConfig(steps=10, batch_size=16, record_every=1)
MIRRORED = TrainConfig(**{**CONFIG.to_dict(), "distribute": "mirrored", "replicas": REPLICAS})


def records(result: sc.TrainResult) -> dict:
    return {
        "device": result.device,
        "steps_done": result.steps_done,
        "stop_reason": result.stop_reason,
        "params": result.params,
        "history": result.history,
        "gradients": result.gradients,
        "divergence": result.divergence,
        "weights": result.weights,
    }


def pool_trainers() -> list[tuple[tuple, object]]:
    return [(key, trainer) for key, trainers in pool._POOL.items() for trainer in trainers]


def main(out_path: str) -> None:
    pool.POOL_SIZE = 32  # keep every trainer of this process, for the pool case
    out: dict = {"replicas": len(tf.config.list_logical_devices("CPU"))}
    for name in PRESETS:
        out[name] = {
            "single": records(sc.train(sc.preset(name), CONFIG)),
            "mirrored": records(sc.train(sc.preset(name), MIRRORED)),
        }

    # A learning rate that blows up: both stop at the same step, with the same reason.
    blow_up = {"optimizer": "sgd", "learning_rate": 30.0, "steps": 40}
    out["non-finite"] = {
        "single": records(sc.train(sc.preset("seed-dense"), TrainConfig(**{**CONFIG.to_dict(), **blow_up}))),
        "mirrored": records(sc.train(sc.preset("seed-dense"), TrainConfig(**{**MIRRORED.to_dict(), **blow_up}))),
    }

    # The pool after single-device and mirrored runs of the same spec: one trainer each, under its own key;
    # then single-device again, which must reuse the single-device trainer and give the first run's numbers.
    strategy = make_strategy(MIRRORED)
    dense_spec = pool._pool_key(sc.plan(sc.preset("seed-dense")), 0, CONFIG, "")[0]  # names blanked
    dense = [(key, t) for key, t in pool_trainers() if key[0] == dense_spec and key[2] == CONFIG.optimizer]
    out["pool"] = {
        "strategies": sorted(
            ("none" if t.strategy is None else type(t.strategy).__name__, t.strategy is strategy) for _, t in dense
        ),
        "keys": len({key for key, _ in dense}),
        "again": records(sc.train(sc.preset("seed-dense"), CONFIG)),
    }

    # A batch that does not split over the replicas: refused before anything is built.
    before = len(pool_trainers())
    try:
        sc.train(sc.preset("albert-mlp"), TrainConfig(steps=2, batch_size=15), strategy=strategy)
        out["bad-batch"] = {"error": None}
    except ValueError as err:
        out["bad-batch"] = {"error": str(err), "built": len(pool_trainers()) - before}

    # Saved inside the strategy's scope, loaded outside it: still one variable per shared tensor.
    with strategy.scope():
        model = sc.build(sc.preset("seed-dense"), tied=True, seed=3)
        kernel_types = sorted(type(w.value).__name__ for w in model.trainable_weights)  # what Keras wraps
    path = os.path.join(tempfile.mkdtemp(), "tied.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).standard_normal((4, 10)).astype("float32")
    out["save-load"] = {
        "kernel_types": kernel_types,
        "weights": len(loaded.trainable_weights),
        "params": loaded.count_params(),
        "outputs": (np.asarray(model(x)), np.asarray(loaded(x))),
    }

    # device='cpu' under an outer scope on the other CPU (standing in for a GPU): every op of the run
    # must still go to the CPU that 'cpu' names. The log between the markers is this run's.
    print("PLACEMENT-BEGIN", file=sys.stderr, flush=True)
    with tf.device("/CPU:1"):
        placed = sc.train(sc.preset("seed-mixed"), TrainConfig(steps=3, batch_size=4, device="cpu"))
    print("PLACEMENT-END", file=sys.stderr, flush=True)
    out["placement"] = {"device": placed.device}

    with open(out_path, "wb") as file:
        pickle.dump(out, file)


if __name__ == "__main__":
    main(sys.argv[1])
