"""The benchmarks compare like with like: same functions, same parameters, same batches. No timing here."""

from __future__ import annotations

import numpy as np
import pytest

import sharecore
from bench import dashboard
from bench.__main__ import main
from bench.common import MODES
from bench.reference import REFERENCES, chain_spec, copy_weights
from bench.trainer import BarePair
from sharecore.core.config import TrainConfig
from sharecore.nn.data import random_inputs

CASES = [
    pytest.param(name, tied, id=f"{name}-{'tied' if tied else 'untied'}")
    for name in REFERENCES
    for tied in (True, False)
]


@pytest.mark.parametrize(("name", "tied"), CASES)
def test_plain_keras_reference_counts_the_same_parameters_and_weights(name, tied):
    make_spec, make_reference = REFERENCES[name]
    ours, ref = sharecore.build(make_spec(), tied, seed=0), make_reference(tied)
    assert ref.model.count_params() == ours.count_params()
    assert len(ref.model.trainable_weights) == len(ours.trainable_weights)


@pytest.mark.parametrize(("name", "tied"), CASES)
def test_plain_keras_reference_computes_the_same_function_after_copying_weights(name, tied):
    make_spec, make_reference = REFERENCES[name]
    spec = make_spec()
    ours, ref = sharecore.build(spec, tied, seed=0), make_reference(tied)
    copy_weights(ours, spec, tied, ref)
    x = random_inputs(spec, 8, np.random.default_rng(0))
    np.testing.assert_allclose(np.asarray(ref.model(x)), np.asarray(ours(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_tied_reference_reads_one_variable_in_every_use(name):
    ref = REFERENCES[name][1](True)
    spec = REFERENCES[name][0]()
    shared = [ref.kernels[u.name] for u in spec.uses if u.tensor is not None]
    assert len(shared) == 2 and shared[0] is shared[1]


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_chain_spec_stores_one_square_tensor_or_one_copy_per_use(tied):
    model = sharecore.build(chain_spec(uses=5, width=6), tied)
    assert model.count_params() == (36 if tied else 5 * 36)


def test_bare_step_takes_the_same_first_step_as_train():
    # Same initial weights, batch and optimizer: one bare step lands where train()'s first step does.
    spec, config = sharecore.preset("seed-dense"), TrainConfig(steps=1, seed=3)
    result = sharecore.train(spec, config)
    bare = BarePair(spec, config)
    bare.step(bare.rows[0])
    np.testing.assert_allclose(
        bare.models[0].get_layer("tensor_W").kernel.numpy(), result.weights["end"]["tied"]["W"], rtol=1e-5, atol=1e-6
    )
    for use in ("dense_1", "dense_2"):
        got = bare.models[1].get_layer(f"copy_{use}").kernel.numpy()
        np.testing.assert_allclose(got, result.weights["end"]["untied"][use], rtol=1e-5, atol=1e-6)


def test_smoke_mode_runs_every_section_but_the_browser_and_writes_markdown(tmp_path):
    out = tmp_path / "RESULTS.md"
    assert main(["--smoke", "--out", str(out)]) == 0
    text = out.read_text()
    for heading in ("## Headline", "## Models", "## Trainer", "## Growth"):
        assert heading in text
    assert "| fit, seed-dense tied: sharecore / plain Keras |" in text
    assert (tmp_path / "growth.html").stat().st_size < 100_000


def test_dashboard_section_says_why_it_skips_when_the_app_is_missing(monkeypatch):
    monkeypatch.setattr(dashboard, "APP", "no_such_app.py")
    section = dashboard.run(MODES["smoke"], None)
    assert len(section.body) == 1 and section.body[0].startswith("Skipped: ")
    assert not section.headlines


# Bench's fresh-process sections (about 75 s): `make test-long`. `make test` keeps the smoke of each part:
# the in-process sections above, and the soak's fresh process (tests/project/test_soak.py's eight runs).
@pytest.mark.slow
@pytest.mark.long
def test_compile_and_soak_sections_run_in_fresh_processes_and_write_their_tables(tmp_path):
    out = tmp_path / "RESULTS.md"
    assert main(["--smoke", "--only", "compile", "--only", "soak", "--only", "distribute", "--out", str(out)]) == 0
    text = out.read_text()
    assert "## Compile: tracing cost and memory against the number of uses" in text
    assert "| 4 | 6 |" in text  # the 4-use point: 6 pairs
    assert "## Soak: memory over many runs of different specs" in text
    assert "| soak: RSS growth over 8 runs cycling the presets |" in text
    assert "## Distribute: one device against MirroredStrategy over 2 logical CPUs" in text
    assert "MirroredStrategy over 2 replicas (CPU:0, CPU:1)" in text
    row = next(line for line in text.splitlines() if line.startswith("| seed-dense | "))
    assert float(row.split("|")[-2]) < 1e-5  # the records of both runs agree


def test_gpu_section_says_it_skipped_on_a_machine_without_a_gpu():
    from bench import gpu

    section = gpu.run(MODES["smoke"])
    assert section.body[0].startswith("Skipped: TensorFlow sees no GPU on this machine.")
    assert not section.headlines


def test_gpu_section_reports_a_gpu_hosts_figures(monkeypatch):
    """What a GPU host's workers answer (faked here: this machine has none) becomes the section's table."""
    import tensorflow as tf

    from bench import gpu

    hygiene = {
        "gpus": ["/physical_device:GPU:0"],
        "memory_growth": True,
        "tf32": False,
        "peak_mb": 312.0,
        "name": "A100",
        "ratios": {
            "tied-lm": {
                "bare chunk": [100.0, 100.0, 100.0],
                "record every step": [70.0, 60.0, 80.0],
                "keras fit": [140.0, 140.0, 140.0],
                "record every 10": [90.0, 90.0, 95.0],
            }
        },
    }
    mirrored = {"gpus": ["/physical_device:GPU:0"], "memory_growth": False, "tf32": False}
    for name in gpu.PRESETS:
        hygiene[name] = {"speeds": {"tied": [30.0, 40.0, 50.0], "untied": [20.0, 20.0, 25.0]}, "gpu_vs_cpu": 2e-6}
        mirrored[name] = {
            "speeds": {"one GPU": [10.0, 10.0, 10.0], "mirrored": [15.0, 15.0, 16.0]},
            "difference": 3e-7,
            "device": "MirroredStrategy over 2 replicas (GPU:0, GPU:1)",
        }
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu"] if kind == "GPU" else [])
    monkeypatch.setattr(
        gpu, "in_fresh_process", lambda module, args: hygiene if args["part"] == "hygiene" else mirrored
    )
    section = gpu.run(MODES["smoke"])
    text = "\n".join(section.body)
    assert "GPU: A100 (/physical_device:GPU:0); memory growth on, TF32 off; peak GPU memory of the runs 312 MB" in text
    assert "| seed-conv | 40 | 20 | 2.00 (1.50-2.00) | 2.0e-06 | 1.50 (1.50-1.60) | 3.0e-07 |" in text
    assert "| tied-lm | record every 10 | 90 | 100 | **0.90** | 0.90-0.95 | 0.95 | 140 | 0.64 |" in text
    assert "| tied-lm | record every step | 70 | 100 | **0.70** | 0.60-0.80 | 0.80 | 140 | 0.50 |" in text
    assert [h.value for h in section.headlines] == [2.0, 1.5, 2.0, 1.5, 0.9, 0.7]
    assert [h.met for h in section.headlines[-2:]] == [True, True]  # >= 0.8 and >= 0.6 on the GPU too


# ----------------------------------------------------------------------------- whatif's helpers
def test_whatif_rounds_always_change_the_learning_rate():
    from bench.whatif import learning_rate_for

    rates = [learning_rate_for(i) for i in range(6)]
    assert rates[0] == 0.02  # the default is 0.01: the first round changes it too
    assert all(a != b for a, b in zip(rates, rates[1:]))


def test_whatif_first_round_is_reported_apart_from_the_median_of_the_later_ones():
    from bench.whatif import first_and_warm

    assert first_and_warm([9.0, 1.0, 3.0, 2.0]) == (9.0, 2.0)
    first, warm = first_and_warm([4.0])
    assert first == 4.0 and warm != warm  # NaN: no later round


def test_whatif_reads_the_run_labels_a_real_overlay_draws():
    import json

    import pandas as pd

    from bench.whatif import drawn_runs
    from sharecore.viz import overlays as comparecharts

    labels = ["lr 0.02 (was 0.01)", "a · dotted label"]
    curves = pd.DataFrame(
        [
            {"run": run, "series": series, "step": step, "variant": variant, "value": 1.0 / step}
            for run in labels
            for series in ("loss", "heldout_loss")
            for step in (1, 2, 3)
            for variant in ("tied", "untied")
        ]
    )
    figure = json.loads(comparecharts.loss_overlay(curves, labels).to_json())
    assert drawn_runs(figure) == set(labels)
    assert drawn_runs(figure, title="Held-out accuracy") == set()


def test_whatif_increments_are_what_each_session_added_to_the_baseline():
    from bench.whatif import increments

    assert increments([700.0, 738.0, 740.5, 739.0]) == [38.0, 2.5, -1.5]
    assert increments([700.0]) == []


def test_whatif_keeps_the_function_rows_of_a_real_profile():
    import cProfile
    import io
    import pstats

    from bench.whatif import top_entries

    profile = cProfile.Profile()
    profile.enable()
    sorted(str(i) for i in range(1000))
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats()
    rows = top_entries(text.getvalue(), count=3)
    assert len(rows) == 3
    assert all(not row.strip().startswith("ncalls") and "function calls" not in row for row in rows)
    assert any("<genexpr>" in row for row in top_entries(text.getvalue(), count=50))
