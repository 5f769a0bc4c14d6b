"""Plot builders: every number a chart draws equals the frame or array it came from.

The figures are built from real tiny runs and read back from `fig.data[i].x / .y / .z`
(plotly 7 may encode arrays as base64 in `to_dict()`, so the trace objects are the truth).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

import sharecore
from sharecore.core.limits import Limits, check_limits
from sharecore.core.spec import ModelSpec
from sharecore.nn.model import apply_rule_np, initial_values
from sharecore.viz import plots


# ----------------------------------------------------------------------------- runs
@pytest.fixture(autouse=True)
def _clean_keras_session():
    """Overrides conftest's per-test Keras reset: these tests build no models (the runs are
    module fixtures with explicit seeds), and the reset cost more than all the tests together."""
    yield


@pytest.fixture(scope="module")
def dense_run() -> sharecore.TrainResult:
    return sharecore.train(sharecore.preset("seed-dense"), sharecore.TrainConfig(steps=6, seed=0))


@pytest.fixture(scope="module")
def albert_run() -> sharecore.TrainResult:
    # Three uses per tensor; recording every 2nd step leaves gaps (0, 1, 2, 4, 6) to snap to.
    return sharecore.train(sharecore.preset("albert-mlp"), sharecore.TrainConfig(steps=6, seed=0, record_every=2))


LONELY_SPEC = ModelSpec.from_dict(
    {
        "name": "lonely",
        "input_shape": [10],
        "tensors": [{"name": "W", "shape": [10, 10]}, {"name": "V", "shape": [10, 10]}],
        "uses": [
            {"name": "first", "op": "dense", "tensor": "W", "activation": "tanh"},
            {"name": "second", "op": "dense", "tensor": "W", "activation": "tanh"},
            {"name": "alone", "op": "dense", "tensor": "V"},
        ],
    }
)


@pytest.fixture(scope="module")
def lonely_run() -> sharecore.TrainResult:
    """A run where tensor V has a single use, so it has gradients but no pairs."""
    return sharecore.train(LONELY_SPEC, sharecore.TrainConfig(steps=2, seed=0))


# ----------------------------------------------------------------------------- helpers
def traces(fig: go.Figure, **meta) -> list:
    return [t for t in fig.data if isinstance(t.meta, dict) and all(t.meta.get(k) == v for k, v in meta.items())]


def one_trace(fig: go.Figure, **meta):
    found = traces(fig, **meta)
    assert len(found) == 1, f"expected one trace with {meta}, found {len(found)}"
    return found[0]


def empty_notes(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations if a.name == "empty"]


def rows(frame: pd.DataFrame, **equal) -> pd.DataFrame:
    for column, value in equal.items():
        frame = frame[frame[column] == value]
    return frame.sort_values("step")


# ----------------------------------------------------------------------------- the house rules


def test_every_chart_is_compact_white_and_titled_with_its_question(dense_run, albert_run):
    spec = dense_run.spec
    figures = [
        plots.tensor_views(spec, "W", initial_values(spec)["W"]),
        plots.param_bars(sharecore.param_report(spec)),
        plots.loss_chart(dense_run.history),
        plots.gradient_flow(dense_run.gradients, "W"),
        plots.gradient_cosine(dense_run.gradients, "W"),
        plots.divergence_chart(dense_run.divergence, "W"),
        plots.divergence_heatmap(albert_run.divergence, "W_up", 6),
        plots.weight_histograms(dense_run.weights),
    ]
    for fig in figures:
        assert fig.layout.template == pio.templates["plotly_white"]
        assert 320 <= fig.layout.height <= 380
        assert "?" in fig.layout.title.text
        fig.to_json()  # serialisable, as st.plotly_chart needs


def test_variant_colors_are_distinct_and_never_reused_for_a_use():
    assert set(plots.VARIANT_COLORS) == {"tied", "untied"}
    assert plots.VARIANT_COLORS["tied"] != plots.VARIANT_COLORS["untied"]
    assert not set(plots.VARIANT_COLORS.values()) & set(plots.USE_PALETTE)


# The model diagram (Graphviz DOT) is tested in tests/viz/test_diagram.py.


def test_tensor_views_show_the_stored_tensor_and_each_uses_rule_applied_to_it():
    spec = sharecore.preset("tied-autoencoder")
    w = initial_values(spec, seed=3)["W"]
    fig = plots.tensor_views(spec, "W", w)
    assert [t.name for t in fig.data] == ["stored W", "encoder", "decoder"]
    np.testing.assert_array_equal(fig.data[0].z, w)
    np.testing.assert_array_equal(fig.data[1].z, w)
    np.testing.assert_array_equal(fig.data[2].z, w.T)
    np.testing.assert_array_equal(fig.data[2].z, apply_rule_np(spec.uses[1].rule, w))
    # One color scale for all panels, symmetric around 0.
    assert {t.coloraxis for t in fig.data} == {"coloraxis"}
    assert fig.layout.coloraxis.cmin == -fig.layout.coloraxis.cmax == -np.abs(w).max()


def test_tensor_views_draw_the_values_they_are_given(dense_run):
    w_end = dense_run.weights["end"]["tied"]["W"]
    fig = plots.tensor_views(dense_run.spec, "W", values=w_end)
    for trace in fig.data:
        np.testing.assert_array_equal(trace.z, w_end)


def test_tensor_views_flatten_arrays_of_more_than_two_axes_and_say_so():
    spec = sharecore.preset("seed-mixed")
    w = initial_values(spec)["W"]
    fig = plots.tensor_views(spec, "W", w)
    np.testing.assert_array_equal(fig.data[1].z, w)
    conv_view = apply_rule_np(spec.uses[1].rule, w)  # (1, 1, 10, 5)
    np.testing.assert_array_equal(fig.data[2].z, conv_view.reshape(10, 5))
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [
        "<b>stored W</b><br>(10, 5)",
        "<b>dense</b><br>(10, 5)",
        "<b>conv</b><br>reshape (1, 1, 10, 5)<br>(1, 1, 10, 5)<br>shown as (10, 5)",  # too wide for one line
    ]


def test_tensor_views_draw_conv_kernels_as_tiles_that_turn_with_their_rule():
    conv = sharecore.preset("seed-conv")
    k = initial_values(conv)["K"]  # (3, 3, 16, 16): tile (i, j) is K[:, :, i, j], a blank line between tiles
    z = np.asarray(plots.tensor_views(conv, "K", k).data[0].z, dtype=float)
    assert z.shape == (16 * 4 - 1, 16 * 4 - 1)
    np.testing.assert_array_equal(z[4 * 2 : 4 * 2 + 3, 4 * 5 : 4 * 5 + 3], k[:, :, 2, 5])
    assert np.isnan(z[3, :]).all() and np.isnan(z[:, 3]).all()

    rot = sharecore.preset("rotation-tied-conv")
    k = initial_values(rot)["K"]  # (3, 3, 1, 4): one input channel, so the 4 kernels wrap into 2 x 2
    fig = plots.tensor_views(rot, "K", k)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[2] == "<b>rot90</b><br>rot90 k=1<br>(3, 3, 1, 4)"  # five narrow panels: no 'rule → shape' line
    assert not any("shown as" in t for t in titles)
    for r, trace in enumerate(fig.data[1:]):
        z = np.asarray(trace.z, dtype=float)
        assert z.shape == (7, 7)
        for j, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            tile = z[row * 4 : row * 4 + 3, col * 4 : col * 4 + 3]
            np.testing.assert_array_equal(tile, np.rot90(k[:, :, 0, j], r))  # turned as the use reads it


def test_tensor_views_show_a_slice_as_the_part_the_use_reads():
    spec = sharecore.preset("partial-share")
    w = initial_values(spec)["W"]
    fig = plots.tensor_views(spec, "W", w)
    np.testing.assert_array_equal(fig.data[2].z, w[:, :4])


def test_tensor_views_reject_an_unknown_tensor_and_values_of_the_wrong_shape():
    spec = sharecore.preset("seed-dense")
    with pytest.raises(ValueError, match=r"no shared tensor 'X'.*\['W'\].*Received: tensor='X'"):
        plots.tensor_views(spec, "X", np.zeros((10, 10)))
    with pytest.raises(ValueError, match=r"stored shape \(10, 10\).*Received: shape=\(5, 10\)"):
        plots.tensor_views(spec, "W", values=np.zeros((5, 10)))


def chain_spec(n: int, uses: int) -> ModelSpec:
    """`uses` dense layers in a chain, all reading one (n, n) tensor W."""
    return ModelSpec.from_dict(
        {
            "name": f"chain-{uses}",
            "input_shape": [n],
            "tensors": [{"name": "W", "shape": [n, n]}],
            "uses": [{"name": f"dense_{i}", "op": "dense", "tensor": "W"} for i in range(uses)],
        }
    )


def panel_grid(fig: go.Figure) -> list[list[str]]:
    """The trace names of a subplot figure, row by row from the top (rows found from the y domains)."""
    by_row: dict[tuple, list[tuple[float, str]]] = {}
    for trace in fig.data:
        x_axis = fig.layout["xaxis" + trace.xaxis[1:]]
        y_axis = fig.layout["yaxis" + trace.yaxis[1:]]
        by_row.setdefault(tuple(y_axis.domain), []).append((x_axis.domain[0], trace.name))
    return [[name for _, name in sorted(row)] for _, row in sorted(by_row.items(), reverse=True)]


# Caps a local user may raise the defaults to (the hosted defaults before issue 8): the figures must
# stay bounded for any spec a server with raised limits accepts, not only for the default caps.
RAISED = Limits(max_uses=32, max_params=2_000_000)


@pytest.mark.parametrize("uses", [6, 21, 32])
def test_tensor_views_of_many_uses_wrap_into_rows_of_at_most_six_panels(uses):
    # 21 or more uses crashed plotly (horizontal_spacing) when every panel sat in one row.
    spec = chain_spec(4, uses)
    check_limits(spec, limits=RAISED)  # up to the largest number of uses a raised cap allows
    w = np.arange(16, dtype=np.float32).reshape(4, 4)
    fig = plots.tensor_views(spec, "W", values=w)
    grid = panel_grid(fig)
    assert [name for row in grid for name in row] == ["stored W"] + [f"dense_{i}" for i in range(uses)]
    assert all(len(row) <= 6 for row in grid)
    assert len(grid) == -(-(uses + 1) // 6)
    assert len(grid[0]) == -(-(uses + 1) // len(grid))  # balanced: 7 panels are 4 + 3, not 6 + 1
    for trace in fig.data:
        np.testing.assert_array_equal(trace.z, w)
    fig.to_json()


def test_large_tensor_views_draw_every_kth_row_and_column_with_their_true_indices():
    spec = ModelSpec.from_dict(
        {
            "name": "wide",
            "input_shape": [1000],
            "tensors": [{"name": "W", "shape": [1000, 2000]}],
            "uses": [
                {"name": "wide", "op": "dense", "tensor": "W"},
                {"name": "back", "op": "dense", "tensor": "W", "rule": "transpose"},
            ],
        }
    )
    w = np.random.default_rng(0).normal(size=(1000, 2000)).astype(np.float32)
    fig = plots.tensor_views(spec, "W", values=w)
    stored, wide, back = fig.data
    # Three panels share a budget of 80,000 cells: at most 163 rows and columns each.
    np.testing.assert_array_equal(stored.z, w[::7, ::13])
    np.testing.assert_array_equal(stored.y, np.arange(0, 1000, 7))
    np.testing.assert_array_equal(stored.x, np.arange(0, 2000, 13))
    np.testing.assert_array_equal(wide.z, w[::7, ::13])
    np.testing.assert_array_equal(back.z, w.T[::13, ::7])
    assert sum(t.z.size for t in fig.data) <= 80_000
    assert [a.text.split("<br>")[-1] for a in fig.layout.annotations[:3]] == [
        "every 7th row, 13th col",
        "every 7th row, 13th col",
        "every 13th row, 7th col",
    ]
    assert "Too large to draw whole" in fig.layout.title.subtitle.text
    # The color scale still spans every stored value, not only the ones drawn.
    assert fig.layout.coloraxis.cmax == np.abs(w).max()


@pytest.mark.parametrize(("n", "uses"), [(1414, 1), (316, 20), (250, 32)], ids=["one-2M", "20x316", "32x250"])
def test_tensor_views_of_the_largest_allowed_specs_stay_under_half_a_megabyte_of_json(n, uses):
    spec = chain_spec(n, uses)
    check_limits(spec, limits=RAISED)
    w = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    fig = plots.tensor_views(spec, "W", values=w)
    assert len(fig.to_json()) < 500_000  # 22 MB for one (1000, 2000) tensor before panels were sampled
    assert len(plots.model_dot(spec, tied=False)) < 100_000
    assert len(plots.param_bars(sharecore.param_report(spec)).to_json()) < 100_000


# ----------------------------------------------------------------------------- parameter bars
@pytest.mark.parametrize("name", ["seed-dense", "albert-mlp", "seed-conv"])
def test_param_bars_equal_the_report_use_by_use_and_state_the_totals(name):
    report = sharecore.param_report(sharecore.preset(name))
    fig = plots.param_bars(report)
    for variant in ("tied", "untied"):
        table = report.table[report.table.variant == variant]
        owned = one_trace(fig, variant=variant, kind="owned")
        assert list(owned.x) == list(table.use)
        assert list(owned.y) == list(table.owned_params)
        assert owned.marker.color == plots.VARIANT_COLORS[variant]
        assert sum(owned.y) == (report.tied_total if variant == "tied" else report.untied_total)
    referenced = one_trace(fig, variant="tied", kind="referenced")
    tied = report.table[report.table.variant == "tied"]
    assert list(referenced.y) == list(tied.referenced_params)
    assert list(referenced.base) == list(tied.owned_params)  # stacked on what the use stores
    assert not traces(fig, variant="untied", kind="referenced")  # untied copies read nothing shared
    assert f"Tied {report.tied_total:,} vs untied {report.untied_total:,}" in fig.layout.title.text


# ----------------------------------------------------------------------------- loss
def test_loss_chart_draws_each_variants_loss_per_step(dense_run):
    fig = plots.loss_chart(dense_run.history)
    for variant in ("tied", "untied"):
        expected = rows(dense_run.history, variant=variant)
        trace = one_trace(fig, variant=variant, metric="loss")
        assert list(trace.x) == list(expected.step)
        assert list(trace.y) == list(expected.loss)
        assert trace.line.color == plots.VARIANT_COLORS[variant]
    # The teacher task is regression: accuracy is all NaN, so there is no accuracy axis.
    assert not traces(fig, metric="accuracy")
    assert fig.layout.yaxis.title.text == "loss (mean squared error)"


def test_loss_chart_adds_accuracy_on_a_second_axis_when_there_is_some(dense_run):
    history = dense_run.history.assign(accuracy=np.linspace(0.1, 0.9, len(dense_run.history)))
    fig = plots.loss_chart(history)
    for variant in ("tied", "untied"):
        trace = one_trace(fig, variant=variant, metric="accuracy")
        assert list(trace.y) == list(rows(history, variant=variant).accuracy)
        assert trace.yaxis == "y2"


def test_live_loss_chart_keeps_the_x_range_of_the_whole_run(dense_run):
    partial = dense_run.history[dense_run.history.step <= 2]
    assert list(plots.loss_chart(partial, total_steps=60).layout.xaxis.range) == [1, 60]
    before_first_step = plots.loss_chart(dense_run.history.iloc[0:0], total_steps=60)
    assert list(before_first_step.layout.xaxis.range) == [1, 60]
    assert empty_notes(before_first_step) == ["No training steps yet: the curves appear as training runs."]


# ----------------------------------------------------------------------------- gradients
def test_gradient_flow_draws_each_contribution_and_the_tied_sum(dense_run):
    g = dense_run.gradients
    fig = plots.gradient_flow(g, "W")
    for variant in ("tied", "untied"):
        for use in ("dense_1", "dense_2"):
            expected = rows(g, variant=variant, use=use)
            trace = one_trace(fig, variant=variant, use=use)
            assert list(trace.x) == list(expected.step)
            assert list(trace.y) == list(expected.grad_norm)
    total = one_trace(fig, role="sum")
    tied = rows(g, variant="tied", use="dense_1")
    assert list(total.x) == list(tied.step)
    assert list(total.y) == list(tied.sum_norm)
    assert total.line.color == plots.VARIANT_COLORS["tied"]
    assert total.line.width > max(t.line.width for t in traces(fig, variant="tied") if t is not total)
    assert total.xaxis == "x" and one_trace(fig, variant="untied", use="dense_1").xaxis == "x2"


def test_gradient_cosine_draws_each_uses_agreement_between_minus_one_and_one(albert_run):
    g = albert_run.gradients
    fig = plots.gradient_cosine(g, "W_up")
    for variant in ("tied", "untied"):
        for use in ("block1_up", "block2_up", "block3_up"):
            expected = rows(g, variant=variant, use=use)
            trace = one_trace(fig, variant=variant, use=use)
            assert list(trace.x) == list(expected.step) == [1, 2, 4, 6]
            np.testing.assert_array_equal(trace.y, expected.cosine_with_others)
    assert list(fig.layout.yaxis.range) == list(fig.layout.yaxis2.range) == [-1.05, 1.05]
    zero_lines = [s for s in fig.layout.shapes if s.type == "line" and s.y0 == s.y1 == 0]
    assert len(zero_lines) == 2


def test_gradient_charts_explain_a_single_use_instead_of_comparing(lonely_run):
    fig = plots.gradient_cosine(lonely_run.gradients, "V")
    assert empty_notes(fig) == ["Only one use (alone) reads V, so there is no other use to agree or conflict with."]
    flow = plots.gradient_flow(lonely_run.gradients, "V")
    assert list(one_trace(flow, role="sum").y) == list(
        rows(lonely_run.gradients, variant="tied").query("tensor == 'V'").sum_norm
    )


# ----------------------------------------------------------------------------- divergence
def test_divergence_chart_draws_every_pair_untied_solid_tied_dashed(albert_run):
    d = albert_run.divergence
    fig = plots.divergence_chart(d, "W_down")
    pairs = [("block1_down", "block2_down"), ("block1_down", "block3_down"), ("block2_down", "block3_down")]
    for a, b in pairs:
        for metric in ("relative_distance", "cosine"):
            for variant in ("tied", "untied"):
                expected = rows(d, variant=variant, tensor="W_down", use_a=a, use_b=b)
                trace = one_trace(fig, variant=variant, pair=[a, b], metric=metric)
                assert list(trace.x) == list(expected.step) == [0, 1, 2, 4, 6]
                np.testing.assert_array_equal(trace.y, expected[metric])
                assert trace.line.dash == ("dash" if variant == "tied" else "solid")
        assert one_trace(fig, variant="untied", pair=[a, b], metric="cosine").name == f"{a} ↔ {b}"
    untied_colors = {t.line.color for t in traces(fig, variant="untied")}
    assert len(untied_colors) == 3  # one color per pair
    # The tied model is one variable, so its copies never move apart.
    assert all(set(t.y) == {0.0} for t in traces(fig, variant="tied", metric="relative_distance"))


@pytest.mark.parametrize("asked, shown", [(6, 6), (5, 4), (3, 2), (100, 6), (0, 0)])
def test_divergence_heatmap_matches_the_rows_of_the_nearest_step_at_or_below(albert_run, asked, shown):
    d = albert_run.divergence
    fig = plots.divergence_heatmap(d, "W_up", asked)
    heat = fig.data[0]
    uses = ["block1_up", "block2_up", "block3_up"]
    assert list(heat.x) == list(heat.y) == uses
    assert heat.meta == {"variant": "untied", "step": shown}
    z = np.asarray(heat.z)
    np.testing.assert_array_equal(z, z.T)
    np.testing.assert_array_equal(np.diag(z), 0.0)
    at = rows(d, variant="untied", tensor="W_up", step=shown)
    assert len(at) == 3
    for r in at.itertuples():
        assert z[uses.index(r.use_a), uses.index(r.use_b)] == r.relative_distance
    assert f"by step {shown}?" in fig.layout.title.text


def test_tied_divergence_heatmap_is_all_zeros(albert_run):
    fig = plots.divergence_heatmap(albert_run.divergence, "W_down", 6, variant="tied")
    np.testing.assert_array_equal(fig.data[0].z, np.zeros((3, 3)))


def test_divergence_charts_explain_a_tensor_with_no_pairs(lonely_run):
    d = lonely_run.divergence
    assert set(d.tensor) == {"W"}  # V has one use, so no pair was recorded
    for fig in (plots.divergence_chart(d, "V"), plots.divergence_heatmap(d, "V", 2)):
        assert not fig.data
        assert empty_notes(fig) == [
            "No pairs of uses of 'V' were recorded: a tensor read by one use has no pair.<br>Tensors with pairs: W."
        ]
    with_spec = plots.divergence_chart(d, "V", spec=lonely_run.spec)
    assert empty_notes(with_spec) == ["Only one use (alone) reads V, so there is no pair of copies to compare."]


def test_divergence_heatmap_explains_a_step_before_the_first_record(albert_run):
    fig = plots.divergence_heatmap(albert_run.divergence, "W_up", -1)
    assert empty_notes(fig) == ["No untied record at or before step -1 (first recorded step is 0)."]


# ----------------------------------------------------------------------------- weights
def numpy_counts(trace, values: np.ndarray) -> np.ndarray:
    """NumPy's counts of `values` on the bins a bar trace draws (its centres ± half its width)."""
    edges = np.append(np.asarray(trace.x) - trace.width / 2, trace.x[-1] + trace.width / 2)
    counts, _ = np.histogram(values, bins=edges)
    return counts


def test_weight_histograms_count_every_stored_value_before_and_after(dense_run):
    w = dense_run.weights
    fig = plots.weight_histograms(w)
    everything = np.concatenate([a.ravel() for ph in w.values() for v in ph.values() for a in v.values()])
    for variant, names in (("tied", ["W"]), ("untied", ["dense_1", "dense_2"])):
        for phase in ("start", "end"):
            trace = one_trace(fig, variant=variant, phase=phase)
            values = np.concatenate([w[phase][variant][n].ravel() for n in names])
            np.testing.assert_array_equal(trace.y, numpy_counts(trace, values))
            assert trace.y.sum() == values.size  # the bins span every value, the extremes included
        assert one_trace(fig, variant=variant, phase="end").marker.color == plots.VARIANT_COLORS[variant]
    # One bin grid of 40 bins from the smallest stored value to the largest, so the shapes compare.
    grids = {(tuple(t.x), t.width) for t in fig.data}
    assert len(grids) == 1
    centres, width = grids.pop()
    assert len(centres) == 40
    assert centres[0] - width / 2 == pytest.approx(everything.min())
    assert centres[-1] + width / 2 == pytest.approx(everything.max())
    assert fig.layout.barmode == "overlay"


def test_weight_histograms_of_two_million_values_send_counts_not_values():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(1000, 1000)).astype(np.float32)
    weights = {ph: {"tied": {"W": w}, "untied": {"a": w, "b": w + 1}} for ph in ("start", "end")}
    fig = plots.weight_histograms(weights)
    assert one_trace(fig, variant="untied", phase="end").y.sum() == 2_000_000
    assert len(fig.to_json()) < 100_000  # the raw values would be about 40 MB of JSON


def test_weight_histograms_with_a_spec_match_a_tensor_to_its_untied_copies(dense_run):
    w = dense_run.weights
    fig = plots.weight_histograms(w, "W", spec=dense_run.spec)
    tied = one_trace(fig, variant="tied", phase="end")
    np.testing.assert_array_equal(tied.y, numpy_counts(tied, w["end"]["tied"]["W"].ravel()))
    untied = one_trace(fig, variant="untied", phase="end")
    copies = np.concatenate([w["end"]["untied"]["dense_1"].ravel(), w["end"]["untied"]["dense_2"].ravel()])
    np.testing.assert_array_equal(untied.y, numpy_counts(untied, copies))
    assert untied.y.sum() == copies.size
    by_use = plots.weight_histograms(w, "dense_2", spec=dense_run.spec)
    assert one_trace(by_use, variant="tied", phase="start").meta["names"] == ["W"]
    assert one_trace(by_use, variant="untied", phase="start").meta["names"] == ["dense_2"]


def test_weight_histograms_without_a_spec_draw_only_the_variant_that_stores_the_name(dense_run):
    fig = plots.weight_histograms(dense_run.weights, "dense_1")
    assert not traces(fig, variant="tied")
    untied = one_trace(fig, variant="untied", phase="end")
    dense_1 = dense_run.weights["end"]["untied"]["dense_1"].ravel()
    np.testing.assert_array_equal(untied.y, numpy_counts(untied, dense_1))
    assert untied.y.sum() == dense_1.size
    assert len(empty_notes(fig)) == 1


def test_weight_histograms_reject_a_name_nothing_stores(dense_run):
    with pytest.raises(ValueError, match=r"no stored weights are named 'X'.*Received: name='X'"):
        plots.weight_histograms(dense_run.weights, "X")
    with pytest.raises(ValueError, match=r"no tensor or use 'X'"):
        plots.weight_histograms(dense_run.weights, "X", spec=dense_run.spec)


# ----------------------------------------------------------------------------- no data, bad names
def test_every_builder_explains_an_empty_frame_instead_of_raising(dense_run):
    empty = {
        "loss": plots.loss_chart(dense_run.history.iloc[0:0]),
        "flow": plots.gradient_flow(dense_run.gradients.iloc[0:0], "W"),
        "cosine": plots.gradient_cosine(dense_run.gradients.iloc[0:0], "W"),
        "divergence": plots.divergence_chart(dense_run.divergence.iloc[0:0], "W"),
        "heatmap": plots.divergence_heatmap(dense_run.divergence.iloc[0:0], "W", 3),
        "weights": plots.weight_histograms({}),
        "params": plots.param_bars(sharecore.ParamReport((), 0, 0)),
    }
    for name, fig in empty.items():
        assert not fig.data, name
        assert len(empty_notes(fig)) == 1, name


@pytest.mark.parametrize(
    "build",
    [
        lambda r: plots.gradient_flow(r.gradients, "X"),
        lambda r: plots.gradient_cosine(r.gradients, "X"),
        lambda r: plots.divergence_chart(r.divergence, "X", spec=r.spec),
        lambda r: plots.divergence_heatmap(r.divergence, "X", 3, spec=r.spec),
        lambda r: plots.tensor_views(r.spec, "X", np.zeros((10, 10))),
    ],
    ids=["gradient_flow", "gradient_cosine", "divergence_chart", "divergence_heatmap", "tensor_views"],
)
def test_an_unknown_tensor_name_raises_a_value_error_that_lists_the_known_ones(dense_run, build):
    with pytest.raises(ValueError, match=r"'X'.*'W'.*Received: tensor='X'"):
        build(dense_run)


def test_divergence_heatmap_rejects_an_unknown_variant(dense_run):
    with pytest.raises(ValueError, match=r"'tied' or 'untied'. Received: variant='both'"):
        plots.divergence_heatmap(dense_run.divergence, "W", 3, variant="both")


def test_loss_chart_draws_held_out_loss_dashed_and_names_the_styles_only_when_there_are_several():
    history = pd.DataFrame(
        {
            "step": [1, 1, 2, 2],
            "variant": ["tied", "untied"] * 2,
            "loss": [3.0, 3.0, 2.0, 2.5],
            "accuracy": [np.nan] * 4,
        }
    )
    heldout = pd.DataFrame({"step": [0, 0, 2, 2], "variant": ["tied", "untied"] * 2, "loss": [3.1, 3.1, 2.2, 2.7]})
    fig = plots.loss_chart(history, 2, heldout)
    dashed = {t.name: list(t.y) for t in fig.data if t.line.dash == "dash"}
    assert dashed == {"tied held-out loss": [3.1, 2.2], "untied held-out loss": [3.1, 2.7]}
    assert "solid = training loss, dashed = held-out loss" in fig.layout.title.subtitle.text
    plain = plots.loss_chart(history, 2)
    assert "solid" not in plain.layout.title.subtitle.text and all(t.line.dash is None for t in plain.data)


def test_the_split_of_one_batch_draws_a_bar_per_use_and_the_sum_from_the_last_step_only():
    # Two steps of a tied tensor W with uses a and b (sum_norm repeats per row), and an untied row to leave out.
    rows = [
        (0, "tied", "W", "a", 9.0, 9.5, 0.1),
        (0, "tied", "W", "b", 9.0, 9.5, 0.1),
        (3, "tied", "W", "a", 3.0, 4.0, 0.2),
        (3, "tied", "W", "b", 2.0, 4.0, 0.3),
        (3, "untied", "W", "a", 7.0, 7.0, 0.0),
    ]
    frame = pd.DataFrame(
        rows, columns=["step", "variant", "tensor", "use", "grad_norm", "sum_norm", "cosine_with_others"]
    )
    fig = plots.gradient_split(frame, "W")
    bars = {(t.y[0], t.x[0]) for t in fig.data}
    assert bars == {("a", 3.0), ("b", 2.0), ("sum", 4.0)}
    assert [t.meta.get("role") for t in fig.data] == [None, None, "sum"]
    assert "cosine with the other uses 0.300" in fig.data[1].hovertemplate
    assert "split between its uses" in fig.layout.title.text
    with pytest.raises(ValueError):
        plots.gradient_split(frame, "nope")


@pytest.fixture(scope="module")
def collapsed_run() -> sharecore.TrainResult:
    # seed-conv with Adam at learning rate 0.1: a too-large step kills every ReLU, and the gradients are zero after.
    return sharecore.train(sharecore.preset("seed-conv"), sharecore.TrainConfig(steps=12, learning_rate=0.1, seed=0))


def zero_from(result: sharecore.TrainResult, variant: str) -> int | None:
    """The first step of the stretch at the end of the run where every use's gradient norm is 0 (NumPy);
    None when the last recorded gradient moves."""
    rows = result.gradients[result.gradients.variant == variant]
    steps = np.sort(rows.step.unique())
    zero = np.array([np.all(rows[rows.step == s].grad_norm.to_numpy() == 0.0) for s in steps])
    if not zero[-1]:
        return None
    return int(steps[len(zero) - np.argmax(~zero[::-1]) if not zero.all() else 0])


def test_a_collapsed_runs_cosine_lines_stop_where_its_gradients_became_zero_and_the_charts_say_so(
    collapsed_run, dense_run
):
    from sharecore.runs import compare
    from sharecore.viz import overlays
    from sharecore.viz.style import how_to_read

    ends = {v: step for v in ("tied", "untied") if (step := zero_from(collapsed_run, v)) is not None}
    assert "untied" in ends, "the untied model collapsed within 12 steps"
    fig = plots.gradient_cosine(collapsed_run.gradients, "K")
    notes = [a.text for a in fig.layout.annotations if a.name == "gradient ends"]
    assert sorted(notes) == sorted(f"every gradient zero<br>from step {step}" for step in ends.values())
    for trace in fig.data:
        if trace.meta["variant"] in ends:
            drawn = np.asarray(trace.x)[np.isfinite(np.asarray(trace.y, dtype=float))]
            assert drawn.max() < ends[trace.meta["variant"]], "the line stops before the zero gradients"
    assert "every gradient was zero" in how_to_read(fig)

    runs = [compare.LabelledRun("collapsed", collapsed_run), compare.LabelledRun("healthy", dense_run)]
    curves = compare.curves(runs)
    overlay = overlays.cosine_overlay(curves, ["collapsed", "healthy"], gradient_ends=compare.gradient_ends(runs))
    notes = [a.text for a in overlay.layout.annotations if a.name == "gradient ends"]
    assert sorted(notes) == sorted(f"{variant}: zero gradient from step {step}" for variant, step in ends.items())
    assert "gradients became zero" in overlay.layout.title.subtitle.text
    # A run whose gradients still move gets no note.
    healthy = overlays.cosine_overlay(curves, ["healthy"], gradient_ends=compare.gradient_ends(runs[1:]))
    assert not [a for a in healthy.layout.annotations if a.name == "gradient ends"]
    assert not healthy.layout.title.subtitle.text
