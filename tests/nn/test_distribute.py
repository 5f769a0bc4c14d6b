"""Training under tf.distribute gives the records of one device.

The reference is the same run on one device in the same fresh process; MirroredStrategy over
2 logical CPUs is the test bed (logical devices must be set before TensorFlow starts, so the
cases run in a subprocess: tests/nn/distribute_worker.py). Tolerances: two replicas add their
halves of every gradient in another order than one device adds the whole batch, so float32 sums
differ in their last bits (about 1e-7) and Adam carries such differences into the later steps;
the cases run 10 steps, where the largest difference measured was 2.4e-7.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sharecore as sc
from sharecore.core.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ("seed-dense", "seed-conv", "seed-mixed", "partial-share")
FRAMES = ("history", "gradients", "divergence")
FRAME_TOL = 1e-6
WEIGHT_TOL = 1e-5
WORKER_TIMEOUT_S = 420


def _env(**extra: str) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "0", **extra}


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> dict:
    """Every case of tests/nn/distribute_worker.py, run once in a fresh process with 2 logical CPUs."""
    folder = tmp_path_factory.mktemp("distribute")
    out, err = folder / "records.pkl", folder / "stderr.txt"
    with open(err, "wb") as stderr:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "nn" / "distribute_worker.py"), str(out)],
            env=_env(),
            stdout=subprocess.DEVNULL,  # placement logging prints every op here too
            stderr=stderr,
            timeout=WORKER_TIMEOUT_S,
            cwd=folder,
        )
    log = err.read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    with open(out, "rb") as file:
        records = pickle.load(file)
    records["log"] = log
    return records


def assert_same_frame(single: pd.DataFrame, other: pd.DataFrame, tol: float = FRAME_TOL) -> None:
    """Same rows, same keys in the same order, numbers within tol (NaN where the other has NaN)."""
    assert len(single) == len(other) > 0
    keys = [c for c in single.columns if not pd.api.types.is_numeric_dtype(single[c])]
    pd.testing.assert_frame_equal(single[keys], other[keys])
    numbers = [c for c in single.columns if c not in keys]
    np.testing.assert_allclose(other[numbers].to_numpy(float), single[numbers].to_numpy(float), rtol=0, atol=tol)


def test_the_worker_ran_on_two_logical_cpus(worker):
    assert worker["replicas"] == 2
    assert worker["seed-dense"]["mirrored"]["device"] == "MirroredStrategy over 2 replicas (CPU:0, CPU:1)"
    assert worker["seed-dense"]["single"]["device"].endswith("CPU:0")


@pytest.mark.parametrize("name", PRESETS)
def test_mirrored_training_records_what_one_device_records(worker, name):
    single, mirrored = worker[name]["single"], worker[name]["mirrored"]
    assert mirrored["steps_done"] == single["steps_done"] == 10
    assert mirrored["stop_reason"] is single["stop_reason"] is None
    assert (
        mirrored["params"]
        == single["params"]
        == {
            "tied": sc.param_report(sc.preset(name)).tied_total,
            "untied": sc.param_report(sc.preset(name)).untied_total,
        }
    )
    for frame in FRAMES:
        assert_same_frame(single[frame], mirrored[frame])
    for phase in ("start", "end"):
        for variant in ("tied", "untied"):
            a, b = single["weights"][phase][variant], mirrored["weights"][phase][variant]
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_allclose(b[key], a[key], rtol=0, atol=WEIGHT_TOL, err_msg=f"{variant} {key}")


@pytest.mark.parametrize("name", PRESETS)
def test_mirrored_tied_copies_never_diverge(worker, name):
    divergence = worker[name]["mirrored"]["divergence"]
    tied = divergence[divergence.variant == "tied"]
    assert len(tied) > 0
    assert (tied.relative_distance == 0).all()
    untied = divergence[(divergence.variant == "untied") & (divergence.step == 10)]
    assert (untied.relative_distance > 0).all()  # the untied copies did move apart: the check can fail


def test_a_blown_up_run_stops_at_the_same_step_on_two_replicas(worker):
    single, mirrored = worker["non-finite"]["single"], worker["non-finite"]["mirrored"]
    step = re.search(r"non-finite \(NaN or inf\) at step (\d+)", single["stop_reason"])
    assert step, single["stop_reason"]
    assert mirrored["stop_reason"] == single["stop_reason"]
    assert mirrored["steps_done"] == single["steps_done"] == int(step.group(1)) - 1
    # The loss grows up to 1000-fold a step before it overflows, and the last-bit differences of the
    # replicas' sums grow with it: the steps match, the early losses closely, the late ones to 3 %.
    history = single["history"], mirrored["history"]
    pd.testing.assert_frame_equal(*(h[["step", "variant"]] for h in history))
    np.testing.assert_allclose(history[1].loss[:4], history[0].loss[:4], rtol=1e-6)
    np.testing.assert_allclose(np.log(history[1].loss), np.log(history[0].loss), rtol=0, atol=0.03)
    assert history[0].loss.max() > 1e20


def test_a_pooled_trainer_is_never_shared_between_strategies(worker):
    pool = worker["pool"]
    # One trainer made on one device and one made under the strategy, each under its own key.
    assert pool["strategies"] == [("MirroredStrategy", True), ("none", False)]
    assert pool["keys"] == 2
    # A single-device run after the mirrored one reused its own trainer: the first run's numbers, exactly.
    first = worker["seed-dense"]["single"]
    for frame in FRAMES:
        pd.testing.assert_frame_equal(pool["again"][frame], first[frame])


def test_a_batch_that_does_not_split_over_the_replicas_is_refused_before_anything_is_built(worker):
    bad = worker["bad-batch"]
    assert bad["error"] is not None
    assert bad["error"] == (
        "train.batch_size: must divide evenly by the 2 replicas, so that each trains on an equal slice of every "
        "batch; use 14 or 16. Received: 15"
    )
    assert bad["built"] == 0


@pytest.mark.parametrize(("batch", "replicas", "fix"), [(15, 2, "use 14 or 16"), (32, 3, "use 30 or 33")])
def test_a_config_whose_batch_does_not_split_is_refused_with_a_fix(batch, replicas, fix):
    with pytest.raises(ValueError, match=rf"train.batch_size: must divide evenly by the {replicas} replicas.*{fix}"):
        TrainConfig(batch_size=batch, distribute="mirrored", replicas=replicas)


def test_replicas_without_a_strategy_are_refused():
    with pytest.raises(ValueError, match="train.replicas: needs train.distribute 'mirrored'"):
        TrainConfig(replicas=2)
    with pytest.raises(ValueError, match="train.distribute: must be one of 'none', 'mirrored', 'multi-worker'"):
        TrainConfig(distribute="horovod")


def test_a_model_saved_inside_the_strategy_loads_outside_it_still_tied(worker):
    saved = worker["save-load"]
    # Built in the scope: the shared kernel is one mirrored variable, not one per use.
    assert saved["kernel_types"] == ["MirroredVariable"]
    assert saved["weights"] == 1
    assert saved["params"] == sc.param_report(sc.preset("seed-dense")).tied_total == 100
    before, after = saved["outputs"]
    np.testing.assert_array_equal(after, before)


def test_device_cpu_puts_every_op_of_a_run_on_the_cpu(worker):
    """Under an outer scope on CPU:1 (standing in for a GPU), device='cpu' must still place every op on CPU:0.

    Before the data and initial values moved into the run's device scope, 279 ops went to CPU:1.
    """
    log = worker["log"]
    run = log[log.index("PLACEMENT-BEGIN") : log.index("PLACEMENT-END")]
    placed = re.findall(r"device:(CPU:\d+)", run)
    assert len(placed) > 500  # the log did cover the run's ops
    assert set(placed) == {"CPU:0"}, sorted(set(placed))
    assert worker["placement"]["device"] == "/device:CPU:0"


def test_cli_trains_mirrored_with_the_records_of_one_device(tmp_path):
    """The issue's check: `python -m sharecore train seed-conv --distribute mirrored --replicas 2`."""
    args = ["--steps", "8", "--batch-size", "16"]
    proc = subprocess.run(
        [sys.executable, "-m", "sharecore", "train", "seed-conv", "--distribute", "mirrored", "--replicas", "2"]
        + [*args, "--out", str(tmp_path)],
        env=_env(TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on MirroredStrategy over 2 replicas (CPU:0, CPU:1)" in proc.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["train"]["distribute"] == "mirrored" and summary["train"]["replicas"] == 2
    single = sc.train(sc.preset("seed-conv"), TrainConfig(steps=8, batch_size=16))
    for frame in FRAMES:
        assert_same_frame(getattr(single, frame), pd.read_csv(tmp_path / f"{frame}.csv"))


def test_cli_refuses_a_bad_split_and_a_missing_cluster_in_one_line(tmp_path):
    for args, message in (
        (["--replicas", "3", "--distribute", "mirrored"], "must divide evenly by the 3 replicas"),
        (["--distribute", "multi-worker"], "reads the cluster from the TF_CONFIG environment variable"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "sharecore", "train", "seed-dense", *args, "--out", str(tmp_path)],
            env=_env(TF_CPP_MIN_LOG_LEVEL="3"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.startswith("sharecore:")]
        assert len(lines) == 1 and message in lines[0], proc.stderr
        assert not (tmp_path / "history.csv").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_local_workers_train_with_the_records_of_one_device(tmp_path):
    """MultiWorkerMirroredStrategy over 2 processes on localhost (Keras's own `fit` fails here for any
    model: keras-team/keras#20585). A watchdog kills both workers if the cluster hangs."""
    ports = [_free_port(), _free_port()]
    args = ["--steps", "8", "--batch-size", "16", "--distribute", "multi-worker"]
    workers = []
    for index in range(2):
        tf_config = {
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "sharecore", "train", "seed-dense", *args, "--out", str(tmp_path / f"w{index}")],
                env=_env(TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(tf_config)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outputs = [w.communicate(timeout=WORKER_TIMEOUT_S) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for w, (stdout, stderr) in zip(workers, outputs):
        assert w.returncode == 0, stderr[-2000:]
        assert "on MultiWorkerMirroredStrategy over 2 replicas" in stdout, stdout
    single = sc.train(sc.preset("seed-dense"), TrainConfig(steps=8, batch_size=16))
    for index in range(2):
        for frame in FRAMES:
            assert_same_frame(getattr(single, frame), pd.read_csv(tmp_path / f"w{index}" / f"{frame}.csv"))


def test_importing_sharecore_devices_turns_tf32_off_and_memory_growth_on():
    from sharecore.nn.devices import configure_gpus

    settings = configure_gpus()
    assert settings.tf32 is False
    assert settings.memory_growth is True  # no GPU here: nothing to grow; a GPU host checks it for real
    assert os.environ.get("SHARECORE_TF32") != "1"
