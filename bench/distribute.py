"""Section `distribute`: `sharecore.train` on one device against MirroredStrategy over 2 replicas.

The worker runs in a fresh process (`python -m bench.distribute --worker ...`), because the CPU
can be split into logical devices only before TensorFlow starts. On a CPU host the 2 replicas
are 2 logical devices of the same cores: each step does the same arithmetic plus an all-reduce
and the replicas' hand-offs, so the ratio is the price of running distributed where it cannot
help, a correctness cost. Only several GPUs or machines can make it pay.

Each preset runs single-device and mirrored alternately (`mode.rounds` rounds, after one untimed
run of each that compiles their trainers); the table gives the medians, their ratio, and the
largest difference between the two runs' records (loss, gradient and divergence frames).
"""

from __future__ import annotations

from bench.common import Headline, Mode, Section, note, table
from bench.compile import in_fresh_process

QUICK_STEPS = {"seed-dense": 150, "seed-conv": 16}
BATCH = 32


# ----------------------------------------------------------------------------- in the worker process
def worker(names: list[str], scale: float, rounds: int) -> dict:
    from sharecore.nn.devices import use_logical_cpus

    use_logical_cpus(2)
    import numpy as np

    import sharecore
    from bench.common import alternate
    from bench.trainer import train_case
    from sharecore.core.config import TrainConfig

    out: dict = {}
    for name in names:
        spec = sharecore.preset(name)
        n = max(4, int(QUICK_STEPS[name] * scale))
        configs = {
            "single": TrainConfig(steps=n, batch_size=BATCH, record_every=10),
            "mirrored": TrainConfig(steps=n, batch_size=BATCH, record_every=10, distribute="mirrored", replicas=2),
        }
        first = {k: sharecore.train(spec, c) for k, c in configs.items()}  # builds and compiles each trainer
        differences = [
            float(np.nanmax(np.abs(frame(first["single"]) - frame(first["mirrored"]))))
            for frame in (
                lambda r: r.history.loss.to_numpy(),
                lambda r: r.gradients.grad_norm.to_numpy(),
                lambda r: r.divergence.relative_distance.to_numpy(),
            )
        ]
        speeds = alternate({k: train_case(spec, c) for k, c in configs.items()}, rounds)
        out[name] = {
            "steps": n,
            "speeds": speeds,
            "max_difference": max(differences),
            "device": first["mirrored"].device,
        }
    return out


# ----------------------------------------------------------------------------- the section
def run(mode: Mode) -> Section:
    from bench.common import median, ratio, spread

    names = ["seed-dense"] if mode.name == "smoke" else list(QUICK_STEPS)
    section = Section("Distribute: one device against MirroredStrategy over 2 logical CPUs")
    note("distribute: single-device and mirrored runs in a fresh process with 2 logical CPUs")
    results = in_fresh_process("bench.distribute", {"names": names, "scale": mode.scale, "rounds": mode.rounds})
    rows = []
    for name, r in results.items():
        single, mirrored = r["speeds"]["single"], r["speeds"]["mirrored"]
        rows.append(
            [
                name,
                r["steps"],
                median(single),
                median(mirrored),
                f"**{ratio(mirrored, single):.2f}**",
                spread(mirrored, single),
                f"{r['max_difference']:.1e}",
            ]
        )
        section.headlines.append(
            Headline(
                f"distribute, {name}: mirrored on 2 logical CPUs / one device (steps/s)",
                ratio(mirrored, single),
                "",
                None,
            )
        )
    section.add(
        f"Batch {BATCH} (16 per replica), Adam, recording every 10 steps; {next(iter(results.values()))['device']}. "
        "This host has no GPU: the 2 replicas share its cores, so the ratio is what running distributed costs "
        "where it cannot help (the all-reduce and the replicas' hand-offs every step), not a speed-up anyone "
        "should expect to see here. The records agree within float32 rounding.",
        "",
        *table(
            [
                "preset",
                "steps",
                "one device steps/s",
                "mirrored steps/s",
                "ratio",
                "per round",
                "max record difference",
            ],
            rows,
        ),
    )
    return section


if __name__ == "__main__":
    from bench.compile import worker_main

    worker_main("bench.distribute", worker, {"names": ["seed-dense"], "scale": 0.05, "rounds": 1})
