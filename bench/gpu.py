"""Section `gpu`: the checks a person with a GPU runs (`python -m bench --only gpu`).

Skipped, and says so, where TensorFlow sees no GPU (the development machine has none). On a
GPU host, two fresh processes:

1. **hygiene and speed** on GPU:0: memory growth on and TensorFloat-32 off (what importing
   sharecore sets); the GPU memory the runs peaked at against the GPU's total (without memory
   growth TensorFlow reserves nearly all of it at the first op); a bare training step of the
   tied model against the untied one (alternating rounds, steps per second); the largest
   difference between `train()`'s records on the GPU and on the CPU (about 1e-6 with TF32
   off; near 1e-3 with it on); and, for every preset of the `trainer` section, its ratios on
   the GPU: train / bare chunk and train / Keras fit, recording every 10th step and every step
   (`bench.trainer.compare`).
2. **mirrored over 2 GPUs**: two physical GPUs, or one split into two logical GPUs of 1 GB
   each; `train()` on one GPU against MirroredStrategy over the two, steps per second and the
   largest difference between their records.
"""

from __future__ import annotations

from bench.common import Headline, Mode, Section, note, table
from bench.compile import in_fresh_process

PRESETS = ("seed-dense", "seed-conv")
LOGICAL_GPU_MB = 1024


# ----------------------------------------------------------------------------- in the worker processes
def _max_difference(a, b) -> float:  # two TrainResults
    import numpy as np

    pairs = (
        (a.history.loss, b.history.loss),
        (a.gradients.grad_norm, b.gradients.grad_norm),
        (a.divergence.relative_distance, b.divergence.relative_distance),
    )
    return max(float(np.nanmax(np.abs(x.to_numpy() - y.to_numpy()))) for x, y in pairs)


def worker(part: str, scale: float, rounds: int) -> dict:
    from sharecore.nn.tfimport import tf

    physical = tf.config.list_physical_devices("GPU")
    if not physical:
        return {"gpus": []}
    if part == "mirrored" and len(physical) == 1:  # before sharecore (and TensorFlow) start
        tf.config.set_logical_device_configuration(
            physical[0], [tf.config.LogicalDeviceConfiguration(memory_limit=LOGICAL_GPU_MB)] * 2
        )
    import functools

    import sharecore
    from bench.common import alternate
    from bench.trainer import QUICK_STEPS, BarePair, compare, train_case
    from sharecore.core.config import TrainConfig
    from sharecore.nn.devices import configure_gpus

    settings = configure_gpus()
    out: dict = {"gpus": [g.name for g in physical], "memory_growth": settings.memory_growth, "tf32": settings.tf32}
    steps = max(8, int(100 * scale))
    for name in PRESETS:
        spec = sharecore.preset(name)
        config = TrainConfig(steps=steps, record_every=10, device="gpu")
        if part == "hygiene":
            cpu = sharecore.train(spec, TrainConfig(**{**config.to_dict(), "device": "cpu"}))
            gpu = sharecore.train(spec, config)
            pairs = {"tied": BarePair(spec, config, (True,)), "untied": BarePair(spec, config, (False,))}
            for bare in pairs.values():
                bare.chunked(min(steps, 8))  # traces, not timed
            speeds = alternate({k: functools.partial(b.chunked, steps) for k, b in pairs.items()}, rounds)
            out[name] = {"speeds": speeds, "gpu_vs_cpu": _max_difference(cpu, gpu), "device": gpu.device}
        else:
            mirrored = TrainConfig(**{**config.to_dict(), "distribute": "mirrored", "replicas": 2})
            one, two = sharecore.train(spec, config), sharecore.train(spec, mirrored)
            speeds = alternate(
                {
                    "one GPU": train_case(spec, config),
                    "mirrored": train_case(spec, mirrored),
                },
                rounds,
            )
            out[name] = {"speeds": speeds, "difference": _max_difference(one, two), "device": two.device}
    if part == "hygiene":
        out["ratios"] = {
            name: compare(sharecore.preset(name), max(8, int(n * scale)), rounds, device="gpu")
            for name, n in QUICK_STEPS.items()
        }
        info = tf.config.experimental.get_memory_info("GPU:0")
        details = tf.config.experimental.get_device_details(physical[0])
        out["peak_mb"] = info["peak"] / 2**20
        out["name"] = details.get("device_name", physical[0].name)
    return out


# ----------------------------------------------------------------------------- the section
def run(mode: Mode) -> Section:
    from bench.common import median, ratio, spread
    from bench.trainer import RATIO_HEADER, ratio_rows, target_headlines
    from sharecore.nn.tfimport import tf

    section = Section("GPU: memory growth, TF32, trainer ratios, tied vs untied, mirrored over 2 GPUs")
    args = {"scale": mode.scale, "rounds": mode.rounds}
    if tf.config.list_physical_devices("GPU"):
        note("gpu: hygiene and speed in a fresh process")
        hygiene = in_fresh_process("bench.gpu", {"part": "hygiene", **args})
    else:
        hygiene = {"gpus": []}
    if not hygiene["gpus"]:
        section.add(
            "Skipped: TensorFlow sees no GPU on this machine. **Nothing was measured here.** On a host with "
            'an NVIDIA GPU and `tensorflow[and-cuda]` (README, "GPU"), `python -m bench --only gpu` checks memory '
            "growth and TF32, the GPU's peak memory, train / bare chunk and train / Keras fit for every preset "
            "(recording every 10th step and every step), tied against untied steps per second, GPU against CPU "
            "records, and MirroredStrategy over 2 GPUs (one GPU split in two if there is only one)."
        )
        return section
    note("gpu: mirrored over 2 GPUs in a fresh process")
    mirrored = in_fresh_process("bench.gpu", {"part": "mirrored", **args})
    rows = []
    for name in PRESETS:
        h, m = hygiene[name], mirrored[name]
        tied, untied = h["speeds"]["tied"], h["speeds"]["untied"]
        one, two = m["speeds"]["one GPU"], m["speeds"]["mirrored"]
        rows.append(
            [
                name,
                median(tied),
                median(untied),
                f"{ratio(tied, untied):.2f} ({spread(tied, untied)})",
                f"{h['gpu_vs_cpu']:.1e}",
                f"{ratio(two, one):.2f} ({spread(two, one)})",
                f"{m['difference']:.1e}",
            ]
        )
        section.headlines.append(Headline(f"gpu, {name}: tied / untied bare step", ratio(tied, untied), "", None))
        section.headlines.append(Headline(f"gpu, {name}: mirrored over 2 / one GPU", ratio(two, one), "", None))
    ratio_table = []
    for name, result in hygiene["ratios"].items():
        ratio_table += ratio_rows(name, result)
        section.headlines += target_headlines(f"gpu, {name}", result)
    section.add(
        "On GPU:0, the `trainer` section's comparison (`bench.trainer.compare`, device 'gpu'; steps per second, "
        "alternating rounds):",
        "",
        *table(RATIO_HEADER, ratio_table),
        "",
    )
    section.add(
        f"GPU: {hygiene['name']} ({', '.join(hygiene['gpus'])}); memory growth "
        f"{'on' if hygiene['memory_growth'] else '**off**'}, TF32 {'**on**' if hygiene['tf32'] else 'off'}; "
        f"peak GPU memory of the runs {hygiene['peak_mb']:.0f} MB; mirrored on {mirrored[PRESETS[0]]['device']}.",
        "",
        *table(
            [
                "preset",
                "tied steps/s",
                "untied steps/s",
                "tied / untied",
                "max |GPU - CPU| in the records",
                "mirrored / one GPU",
                "max |mirrored - one GPU|",
            ],
            rows,
        ),
    )
    return section


if __name__ == "__main__":
    from bench.compile import worker_main

    worker_main("bench.gpu", worker, {"part": "hygiene", "scale": 0.05, "rounds": 1})
