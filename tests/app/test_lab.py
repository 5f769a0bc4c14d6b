"""The Lab and Compare pages through AppTest: the what-if loop on one page, kept runs, continue,
reset, compare and share links. The numbers drawn are checked against `sharecore.train` itself."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.core.runcheck import check_resume
from tests.support.apptest import click_and_wait, edit_kept_runs, figures, open_app, values
from ui import figures as ui_figures
from ui import kept as ui_kept
from ui.text import plain

FAST = {"steps": "20"}  # a link's settings: short runs keep the loop quick


def lab(**query: str):
    at = open_app("lab", **{**FAST, **query})
    assert not at.exception, at.exception
    return at


def traces(at, title_part: str) -> list[dict]:
    for fig in figures(at):
        if title_part in fig["layout"]["title"]["text"]:
            return fig["data"]
    raise AssertionError(f"no chart titled *{title_part}* among {[f['layout']['title']['text'] for f in figures(at)]}")


def set_learning_rate(at, value: float):
    at.select_slider(key="train.learning_rate").set_value(value).run()
    assert at.session_state["config"].learning_rate == value


def test_lab_keeps_each_run_labels_what_changed_and_overlays_both_with_their_true_losses():
    at = lab(preset="seed-conv")
    click_and_wait(at, "lab.train")
    set_learning_rate(at, 0.1)
    click_and_wait(at, "lab.train")
    kept = at.session_state["shown_runs"]
    assert len(kept) == 2
    labels = [info.label for info in ui_kept.run_store().runs(at.session_state["workspace"])]
    assert labels == ["seed-conv: lr 0.1, steps 20", "seed-conv: steps 20"], labels
    data = traces(at, "Loss of each run")
    names = [t["name"] for t in data]
    assert any(n.startswith("seed-conv: lr 0.1, steps 20") and n.endswith("tied") for n in names)
    # The overlaid training losses are those of the same runs trained directly.
    spec = sharecore.preset("seed-conv")
    for lr in (0.01, 0.1):
        direct = sharecore.train(spec, TrainConfig(steps=20, learning_rate=lr))
        tied = direct.history[direct.history.variant == "tied"]["loss"].to_numpy()
        drawn = [
            values(t["y"])
            for t in data
            if t["name"].endswith("· tied") and t.get("xaxis", "x") == "x" and (("0.1" in t["name"]) == (lr == 0.1))
        ]
        assert any(len(d) == len(tied) and np.allclose(d, tied, rtol=1e-5) for d in drawn), lr


def test_continue_gives_the_numbers_of_one_longer_run_and_replaces_the_kept_run():
    at = lab(preset="seed-dense")
    click_and_wait(at, "lab.train")
    first_id = at.session_state["current_run_id"]
    click_and_wait(at, "lab.continue")  # +20 steps
    res = at.session_state["result"]
    assert res.steps_done == 40
    assert at.session_state["current_run_id"] != first_id
    assert first_id not in at.session_state["shown_runs"], "the continued run replaces its first part"
    longer = sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=40))
    np.testing.assert_allclose(res.history["loss"], longer.history["loss"], rtol=1e-5)


def test_continue_is_offered_exactly_when_the_library_would_continue_the_run():
    at = lab(preset="seed-dense")
    click_and_wait(at, "lab.train")
    res = at.session_state["result"]
    cases = {
        "renamed": (dataclasses.replace(res.spec, name="renamed", description="mine"), res.config),
        "another device": (res.spec, dataclasses.replace(res.config, device="cpu")),
        "another learning rate": (res.spec, dataclasses.replace(res.config, learning_rate=0.1)),
        "another optimizer": (res.spec, dataclasses.replace(res.config, optimizer="sgd")),
        "another seed": (res.spec, dataclasses.replace(res.config, seed=3)),
        "another model": (sharecore.preset("tied-autoencoder"), res.config),
    }
    for case, (spec, config) in cases.items():
        at.session_state["spec"], at.session_state["config"] = spec, config
        at.run()
        offered = not at.button(key="lab.continue").disabled
        try:
            check_resume(spec, dataclasses.replace(config, steps=res.steps_done + 1), res)
            library = True
        except ValueError:
            library = False
        assert offered == library, f"{case}: the Lab offers Continue {offered}, the library continues {library}"
    # A run continued on another device goes on there, with the numbers of one longer run.
    at.session_state["spec"], at.session_state["config"] = cases["another device"]
    at.run()
    click_and_wait(at, "lab.continue")
    longer = at.session_state["result"]
    assert (longer.steps_done, longer.config.device) == (40, "cpu")
    direct = sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=40))
    np.testing.assert_allclose(longer.history["loss"], direct.history["loss"], rtol=1e-5)


def test_step_adds_one_recorded_step():
    at = lab(preset="seed-dense", steps="5")
    click_and_wait(at, "lab.train")
    click_and_wait(at, "lab.step")
    assert at.session_state["result"].steps_done == 6


def test_reset_and_picking_the_same_preset_again_undo_edits():
    at = lab(preset="tied-autoencoder")
    decoder = [w for w in at.selectbox if w.key and w.key.endswith(".use.decoder.kind")]
    assert decoder, [w.key for w in at.selectbox]
    decoder[0].set_value("identity").run()
    assert at.session_state["spec"] != sharecore.preset("tied-autoencoder") or at.error
    at.selectbox(key="lab.preset").set_value("tied-autoencoder").run()
    assert at.session_state["spec"] == sharecore.preset("tied-autoencoder")
    set_learning_rate(at, 0.1)
    at.button(key="lab.reset").click().run()
    assert at.session_state["config"].learning_rate == TrainConfig().learning_rate


def test_a_rule_that_does_not_fit_is_reported_next_to_its_use_and_not_applied():
    at = lab(preset="tied-autoencoder")
    before = at.session_state["spec"]
    kind = [w for w in at.selectbox if w.key and w.key.endswith(".use.decoder.kind")][0]
    kind.set_value("reshape").run()
    shape = [w for w in at.text_input if w.key and w.key.endswith(".use.decoder.shape")][0]
    shape.set_value("3, 7").run()
    assert at.session_state["spec"] == before
    errors = [e.value for e in at.error]
    assert any("Not applied" in e and "decoder" in e for e in errors), errors


def test_transpose_then_reshape_on_the_autoencoder_is_one_edit_and_both_runs_are_compared():
    at = lab(preset="tied-autoencoder")
    click_and_wait(at, "lab.train")
    spec = at.session_state["spec"]
    encoder = [u for u in spec.uses if u.name != "decoder" and u.tensor][0]
    tensor = {t.name: t for t in spec.tensors}[encoder.tensor]
    kind = [w for w in at.selectbox if w.key and w.key.endswith(".use.decoder.kind")][0]
    kind.set_value("reshape").run()
    shape = [w for w in at.text_input if w.key and w.key.endswith(".use.decoder.shape")][0]
    shape.set_value(", ".join(str(n) for n in reversed(tensor.shape))).run()
    decoder = {u.name: u for u in at.session_state["spec"].uses}["decoder"]
    assert decoder.rule.kind == "reshape"
    click_and_wait(at, "lab.train")
    names = {t["name"] for t in traces(at, "Loss of each run")}
    assert any("decoder rule reshape" in n for n in names), names
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    diff = at.dataframe[0].value
    assert "use decoder rule" in set(diff["setting"])


def test_compare_lists_three_runs_with_their_settings_and_final_figures():
    at = lab(preset="seed-dense")
    for lr in (0.01, 0.05, 0.2):
        set_learning_rate(at, lr)
        click_and_wait(at, "lab.train")
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert len(at.session_state["shown_runs"]) == 3
    diff, finals = at.dataframe[0].value, at.dataframe[1].value
    row = diff[diff["setting"] == "train.learning_rate"]
    assert sorted(row.iloc[0, 1:].tolist()) == ["0.01", "0.05", "0.2"]
    direct = sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=20, learning_rate=0.05))
    final = direct.history[direct.history.step == 20].set_index("variant")["loss"]
    hit = finals[np.isclose(finals["loss tied"], final["tied"], rtol=1e-5)]
    assert len(hit) == 1 and np.isclose(hit["loss untied"].iloc[0], final["untied"], rtol=1e-5)
    loss = traces(at, "Loss of each run")
    assert len({t["line"]["color"] for t in loss}) == 3, "one color per run"
    assert {t["line"]["dash"] for t in loss} == {"solid", "dash"}, "one dash per variant"


def test_a_share_link_shows_the_run_to_another_session_and_a_wrong_id_says_so():
    at = lab(preset="seed-dense")
    click_and_wait(at, "lab.train")
    run_id = at.session_state["current_run_id"]
    other = open_app()
    assert not other.session_state["shown_runs"], "a new session sees none of another's runs"
    shared = open_app("compare", run=run_id)
    shared.switch_page("pages/compare.py").run()
    assert not shared.exception
    assert run_id in shared.session_state["shown_runs"]
    assert figures(shared)
    wrong = open_app("compare", run="A" * 24)
    assert any("No run" in e.value or "no run" in e.value for e in wrong.error), [e.value for e in wrong.error]


def test_settings_diff_and_csv_download_hold_the_runs_numbers():
    from sharecore.runs import compare

    spec = sharecore.preset("seed-dense")
    a = sharecore.train(spec, TrainConfig(steps=10))
    b = sharecore.train(spec, TrainConfig(steps=10, optimizer="sgd", learning_rate=0.1))
    runs = [compare.LabelledRun("adam", a), compare.LabelledRun("sgd", b)]
    diff = compare.settings_table(runs).set_index("setting")
    assert diff.loc["train.optimizer"].tolist() == ["adam", "sgd"]
    assert diff.loc["train.learning_rate"].tolist() == ["0.01", "0.1"]
    assert "train.steps" not in diff.index
    csv = pd.read_csv(__import__("io").StringIO(compare.comparison_csv(runs)))
    got = csv[(csv.run == "sgd") & (csv.series == "loss") & (csv.variant == "untied")]["value"].to_numpy()
    np.testing.assert_allclose(got, b.history[b.history.variant == "untied"]["loss"], rtol=1e-6)
    specs = json.loads(compare.specs_json(runs))
    assert [s["train"]["optimizer"] for s in specs] == ["adam", "sgd"]
    assert sharecore.ModelSpec.from_dict(specs[1]["spec"]) == spec
    assert dataclasses.asdict(TrainConfig.from_dict(specs[1]["train"])) == dataclasses.asdict(b.config)


def test_cached_curves_of_kept_runs_are_the_frame_compare_curves_gives_and_are_reused():
    from sharecore.runs import compare

    spec = sharecore.preset("seed-dense")
    runs = [
        compare.LabelledRun(f"lr {lr:g}", sharecore.train(spec, TrainConfig(steps=5, learning_rate=lr)), f"id{lr}")
        for lr in (0.01, 0.1)
    ]
    cached = ui_figures.compare_curves(runs)
    pd.testing.assert_frame_equal(cached, compare.curves(runs))
    assert ui_figures.compare_curves(runs) is cached, "a rerun with the same runs reuses the frame"
    assert ui_figures.compare_curves(runs[:1]) is not cached
    pd.testing.assert_frame_equal(ui_figures.compare_curves(runs[:1]), compare.curves(runs[:1]))


def test_a_run_that_barely_learns_gets_a_warning_with_a_fix_on_the_lab_and_train_pages():
    at = lab(preset="seed-dense", lr="1e-05")
    assert not [w.value for w in at.warning if "barely learned" in w.value], "no warning before any run"
    click_and_wait(at, "lab.train")
    warned = [w.value for w in at.warning if "barely learned" in w.value]
    assert warned and "10x larger" in warned[0], [w.value for w in at.warning]
    at.switch_page("pages/train.py").run()
    assert any("barely learned" in w.value for w in at.warning)


def test_a_setting_changed_in_the_same_rerun_as_a_preset_load_is_no_traceback():
    # A browser can send a setting's change together with a preset pick; the pick replaces the
    # experiment (and the settings' widget keys) first, then the setting's callback runs.
    at = lab(preset="seed-conv")
    at.selectbox(key="train.optimizer").set_value("sgd")
    at.selectbox(key="lab.preset").set_value("tied-autoencoder")
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["spec"] == sharecore.preset("tied-autoencoder")


def test_a_share_link_keeps_its_address_and_a_wrong_id_never_claims_a_preset():
    wrong = open_app("compare", run="A" * 24)
    assert any("No run with id" in e.value for e in wrong.error), [e.value for e in wrong.error]
    assert dict(wrong.query_params) == {"run": "A" * 24}, "the address names the id that was asked for"
    # A change of the experiment is the session's own: the address says it from then on.
    wrong.sidebar.number_input(key="sidebar.seed").set_value(3).run()
    assert "run" not in wrong.query_params and wrong.query_params.get("seed") in ("3", ["3"])


def test_repeated_runs_are_named_alike_in_the_table_the_legend_and_the_chips_and_a_rename_travels_with_the_link():
    at = lab(preset="seed-dense", steps="3", teacher="tied")
    for _ in range(3):
        click_and_wait(at, "lab.train")
    # A first run names what differs from the preset (teacher tied included); repeats are numbered.
    first = "seed-dense: teacher tied, steps 3"
    expected = [f"{first} (3)", f"{first} (2)", first]  # newest first, as the table lists them
    [table] = [e for e in at.dataframe if "lab.runs" in (e.proto.id or "")]
    assert table.value["label"].tolist() == expected
    legend = {t["name"].rsplit(" · ", 1)[0] for t in traces(at, "Loss of each run") if t.get("showlegend", True)}
    assert legend == set(expected), legend
    at.switch_page("pages/compare.py").run()
    chips = at.multiselect(key="compare.pick")
    assert sorted(chips.options) == sorted(expected) and len(set(chips.options)) == 3
    # The owner's rename is what a share link opened in another browser shows.
    at.switch_page("pages/lab.py").run()
    edit_kept_runs(at, {"0": {"label": "Alice: my run"}})
    run_id = ui_kept.run_store().runs(at.session_state["workspace"])[0].id
    shared = open_app("compare", run=run_id)
    assert any(plain("'Alice: my run'") in e.value for e in shared.success), [e.value for e in shared.success]
    assert "Alice: my run" in shared.multiselect(key="compare.pick").options


def test_the_note_on_the_plus_buttons_names_only_what_the_screen_offers():
    at = lab(preset="seed-dense", steps="3")
    click_and_wait(at, "lab.train")
    at.selectbox(key="train.optimizer").set_value("sgd").run()
    assert at.button(key="lab.continue").disabled and not at.button(key="lab.train").disabled
    [note] = [c.value for c in at.main.caption if plain("The + buttons are off") in c.value]
    assert plain("Train starts a new run") in note and "set them back" in note, note
    assert "Continue" not in note, "the note names no button that is off"
