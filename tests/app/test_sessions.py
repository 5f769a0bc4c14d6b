"""Many sessions on one server, and interruptions during a run: nothing mixes, nothing is lost."""

from __future__ import annotations

import time

import psutil
import pytest

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.share import urlstate
from tests.support.apptest import charts, go, open_app, trainer_threads

# Eight different experiments: presets and seeds.
EXPERIMENTS = [
    ("seed-dense", 0),
    ("seed-dense", 1),
    ("seed-mixed", 0),
    ("seed-mixed", 5),
    ("tied-autoencoder", 0),
    ("tied-autoencoder", 2),
    ("albert-mlp", 0),
    ("partial-share", 0),
]


def test_eight_sessions_training_different_specs_at_once_each_see_only_their_own_results():
    """Eight users open links to eight experiments and press Train; all runs are alive together.

    AppTest runs scripts in the calling thread and is not thread-safe, so the eight sessions'
    script runs take turns here (as a server's would under the GIL) while their eight
    training threads really overlap, which is where results could mix.
    """
    process = psutil.Process()
    before = peak = process.memory_info().rss
    users = []
    for name, seed in EXPERIMENTS:
        config = TrainConfig(steps=200, seed=seed)
        at = open_app("train", **urlstate.encode_state(name, sharecore.preset(name), config))
        at.button(key="train.start").click().run()
        users.append((name, seed, at))
    runs = [at.session_state["run"] for _, _, at in users]
    assert len({id(r) for r in runs}) == 8 and all(r is not None for r in runs)
    assert len(trainer_threads()) >= 2  # runs overlap (two train at once per process, the rest queue)
    deadline = time.monotonic() + 300
    while any(at.session_state["run"] is not None for _, _, at in users):
        assert time.monotonic() < deadline, "the eight runs did not finish in time"
        time.sleep(0.5)
        peak = max(peak, process.memory_info().rss)
        for _, _, at in users:
            if at.session_state["run"] is not None:
                at.run()  # as each browser's live panel polls
                assert not at.exception

    results = []
    for name, seed, at in users:
        result = at.session_state["result"]
        assert not at.exception and not at.error
        assert result is not None and result.stop_reason is None
        assert result.spec == sharecore.preset(name)
        assert result.config.seed == seed and result.steps_done == 200
        go(at, "divergence")
        assert not at.exception and len(charts(at)) >= 1
        results.append(result)
    # Each session's numbers are its own: equal to training that experiment alone.
    for (name, seed, _), result in list(zip(users, results))[:3]:
        alone = sharecore.train(sharecore.preset(name), TrainConfig(steps=200, seed=seed))
        assert list(result.history.loss) == pytest.approx(list(alone.history.loss), rel=1e-5)
    assert list(results[0].history.loss) != list(results[1].history.loss)  # same preset, other seed
    print(f"8 sessions at once: peak RSS {peak / 2**20:.0f} MB (+{(peak - before) / 2**20:.0f} MB)")
    assert peak < 2.5 * 2**30, f"server memory peaked at {peak / 2**20:.0f} MB"


def wait_for_progress(run, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while run.progress is None:
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.1)


def test_switching_pages_and_changing_widgets_during_a_run_keeps_the_run_and_its_result():
    config = TrainConfig(steps=3000)
    at = open_app("train", **urlstate.encode_state("seed-conv", sharecore.preset("seed-conv"), config))
    at.button(key="train.start").click().run()
    run = at.session_state["run"]
    wait_for_progress(run)
    # Widgets are locked while training: the run's settings cannot change under it.
    assert at.number_input(key="train.steps").disabled
    for page in ("gradients", "divergence", "build", "home", "train"):
        go(at, page)
        assert not at.exception, page
        assert at.session_state["run"] is run
    # Changing the model in the sidebar during the run does not touch the run.
    at.sidebar.selectbox(key="sidebar.preset").set_value("seed-mixed").run()
    assert not at.exception
    assert at.session_state["run"] is run and run.running
    go(at, "train")
    at.button(key="train.stop").click().run()
    run.wait(120)
    at.run()
    assert not trainer_threads()
    result = at.session_state["result"]
    assert result is not None and 0 < result.steps_done < 3000
    assert result.spec == sharecore.preset("seed-conv")  # the run's own spec, not the new choice
    assert len(result.history) == 2 * result.steps_done
