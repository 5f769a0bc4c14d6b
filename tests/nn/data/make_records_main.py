"""Writes records_main.npz, the oracle of tests/nn/test_records_unchanged.py: the records of three small
runs made by main's trainer at commit 6db9b10 (run from a checkout of that commit:
`PYTHONPATH=. python tests/nn/data/make_records_main.py tests/nn/data/records_main.npz`)."""

import sys

import numpy as np

import sharecore
from sharecore import TrainConfig

CASES = {
    "dense": ("seed-dense", TrainConfig(steps=24, batch_size=8, record_every=3, seed=1)),
    "conv": (
        "seed-conv",
        TrainConfig(steps=10, batch_size=4, optimizer="sgd", learning_rate=0.05, record_every=2, seed=2),
    ),
    "digits": ("siamese-digits", TrainConfig(steps=20, batch_size=16, dataset="digits", record_every=5, seed=3)),
}


def main(path: str) -> None:
    """Trains the cases and writes their records to `path` (pytest's doctest collection imports this file: nothing runs then)."""
    out = {}
    for case, (name, config) in CASES.items():
        r = sharecore.train(sharecore.preset(name), config)
        for frame in ("history", "gradients", "divergence", "heldout"):
            df = getattr(r, frame)
            for col in df.columns:
                v = df[col].to_numpy()
                out[f"{case}/{frame}/{col}"] = v.astype("U") if v.dtype == object else v
        for variant, tensors in (
            r.weights["end"].items() if case != "digits" else ()
        ):  # digits: 55 kB of weights, over the fixture budget
            for t, value in tensors.items():
                out[f"{case}/end/{variant}/{t}"] = value
    np.savez_compressed(path, **out)


if __name__ == "__main__":
    main(sys.argv[1])
