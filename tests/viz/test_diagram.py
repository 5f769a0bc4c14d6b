"""Issue 10, presenter-ready: the Graphviz model diagram, presenter mode, chart reading lines and
the Train page's small bugs.

The DOT text is read back by a small DOT lexer written here from the DOT grammar (quoted strings
with their only escape, `\\"`, and `<...>` HTML strings with balanced angle brackets), not by the
code that wrote it. Chromium's own Graphviz draws it in tests/browser/test_presenter.py.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import sharecore
from sharecore.core.limits import Limits
from sharecore.viz import plots
from sharecore.viz.diagram import model_dot
from sharecore.viz.style import PRESENTER_SCALE
from tests.support.apptest import charts
from tests.support.hostile import MD_DESCRIPTION, MD_NAME, hostile_codegen_cases

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


# ----------------------------------------------------------------------------- a DOT reader
def dot_tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value) tokens of DOT: 'id', 'quoted' (unescaped), 'html' (inner text), or punctuation."""
    tokens, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == '"':
            j, out = i + 1, []
            while text[j] != '"':
                if text[j] == "\\" and text[j + 1] == '"':
                    out.append('"')
                    j += 2
                else:
                    out.append(text[j])
                    j += 1
            tokens.append(("quoted", "".join(out)))
            i = j + 1
        elif c == "<":
            depth, j = 1, i + 1
            while depth:
                depth += {"<": 1, ">": -1}.get(text[j], 0)
                j += 1
            tokens.append(("html", text[i + 1 : j - 1]))
            i = j
        elif text.startswith("->", i):
            tokens.append(("->", "->"))
            i += 2
        elif c in "{}[];,=":
            tokens.append((c, c))
            i += 1
        else:
            m = re.compile(r"[A-Za-z0-9_.#-]+").match(text, i)
            assert m, f"unexpected character {c!r} at {i}: {text[i : i + 40]!r}"
            tokens.append(("id", m.group()))
            i = m.end()
    return tokens


def dot_statements(text: str) -> tuple[dict[str, dict], dict[tuple[str, str], dict], dict]:
    """(nodes id -> attributes, edges (a, b) -> attributes, graph attributes) of a one-level digraph."""
    tokens = dot_tokens(text)
    assert tokens[:3] == [("id", "digraph"), ("id", "model"), ("{", "{")] and tokens[-1] == ("}", "}")
    nodes: dict[str, dict] = {}
    edges: dict[tuple[str, str], dict] = {}
    graph: dict = {}
    body, i = tokens[3:-1], 0
    while i < len(body):
        head = [body[i][1]]
        i += 1
        while body[i][0] == "->":
            head.append(body[i + 1][1])
            i += 2
        attrs = {}
        if body[i][0] == "[":
            i += 1
            while body[i][0] != "]":
                key, eq, (kind, value) = body[i], body[i + 1], body[i + 2]
                assert key[0] == "id" and eq[0] == "="
                attrs[key[1]] = (kind, value)
                i += 3
                if body[i][0] == ",":
                    i += 1
            i += 1
        assert body[i][0] == ";", f"statement {head} does not end with ';'"
        i += 1
        if len(head) == 2:
            edges[(head[0], head[1])] = attrs
        elif head[0] == "graph":
            graph = attrs
        elif head[0] not in ("node", "edge"):
            nodes[head[0]] = attrs
    return nodes, edges, graph


def html_text(value: str) -> str:
    """The text an HTML-like label shows: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", " ", value))


def esc_string(value: str) -> str:
    """What Graphviz shows of an escString (tooltip): '\\\\' is a backslash, '\\n' a line break."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\"}.get(m.group(1), m.group(0)), value)


# ----------------------------------------------------------------------------- the diagram
def test_the_diagram_has_one_box_per_use_and_an_arrow_for_each_data_and_tensor_edge():
    nodes, edges, _ = dot_statements(model_dot(sharecore.preset("seed-mixed"), tied=True))
    names = {node: html_text(a["label"][1]).split()[0] for node, a in nodes.items()}
    assert names == {"in0": "input", "out0": "output", "u0": "dense", "u1": "conv", "t0": "W"}
    data = {(a, b) for (a, b), attrs in edges.items() if "style" not in attrs}
    assert data == {("in0", "u0"), ("in0", "u1"), ("u0", "out0"), ("u1", "out0")}
    shared = {(a, b): html_text(attrs["label"][1]).strip() for (a, b), attrs in edges.items() if "style" in attrs}
    assert shared == {("t0", "u0"): "as stored", ("t0", "u1"): "reshape (1, 1, 10, 5)"}


def test_tied_draws_each_shared_tensor_once_and_untied_one_copy_per_use():
    spec = sharecore.preset("albert-mlp")
    nodes, edges, _ = dot_statements(model_dot(spec, tied=True))
    tensors = [n for n in nodes if n.startswith("t")]
    assert len(tensors) == 2
    for t, name in zip(tensors, ("W_up", "W_down")):
        assert html_text(nodes[t]["label"][1]).split()[:2] == [name, "(16,"] or name == "W_down"
        assert "read by 3 uses" in html_text(nodes[t]["label"][1])
        readers = [b for (a, b), attrs in edges.items() if a == t]
        assert len(readers) == 3 and all(edges[(t, b)]["style"][1] == "dashed" for b in readers)
        # The tensor's color outlines its node, its arrows and the boxes of the uses that read it.
        color = nodes[t]["color"][1]
        assert {edges[(t, b)]["color"][1] for b in readers} == {nodes[b]["color"][1] for b in readers} == {color}
    nodes, edges, _ = dot_statements(model_dot(spec, tied=False))
    assert not [n for n in nodes if re.fullmatch(r"t\d+", n)]
    copies = [n for n in nodes if n.startswith("c")]
    assert len(copies) == 6 and all(len([e for e in edges if e[0] == c]) == 1 for c in copies)


def test_each_tensor_arrow_says_which_rule_the_use_reads_through():
    for preset, expected in (
        ("partial-share", ["as stored", "slice [:, 0:4]"]),
        ("tied-autoencoder", ["as stored", "transpose"]),
    ):
        _, edges, _ = dot_statements(model_dot(sharecore.preset(preset), tied=True))
        assert [html_text(a["label"][1]).strip() for e, a in edges.items() if e[0] == "t0"] == expected
    _, edges, _ = dot_statements(model_dot(sharecore.preset("partial-share"), tied=False))
    assert sorted(html_text(a["label"][1]).strip() for e, a in edges.items() if e[0].startswith("c")) == [
        "init: as stored",
        "init: slice [:, 0:4]",
    ]


def test_the_tooltips_keep_the_hover_detail_of_each_use():
    nodes, _, _ = dot_statements(model_dot(sharecore.preset("partial-share"), tied=True))
    tip = esc_string(nodes["u1"]["tooltip"][1])
    assert tip.splitlines() == [
        "narrow (dense, relu)",
        "reads node 'input' (10,) -> (4,)",
        "reads slice [:, 0:4] of W, one shared tensor (10, 8)",
        "bias: none",
    ]


def hostile_names() -> list[str]:
    names = [MD_NAME, *MD_DESCRIPTION.splitlines()]
    names += [spec.name for spec in hostile_codegen_cases(Path("marker")).values()]
    names += ['a"b', "back\\slash \\N \\G \\n", '"; u0 -> in0 [label="x', "} digraph x {", "<b>x</b> ]]>", "<<>>"]
    return names


@pytest.mark.parametrize("name", hostile_names())
def test_hostile_text_stays_inside_its_label_and_tooltip(name):
    base = sharecore.preset("tied-autoencoder")
    clean_nodes, clean_edges, _ = dot_statements(model_dot(base))
    spec = dataclasses.replace(base)
    object.__setattr__(spec, "name", name)  # past the spec's own checks: DOT must cope with anything
    nodes, edges, graph = dot_statements(model_dot(spec))
    assert (set(nodes), set(edges)) == (set(clean_nodes), set(clean_edges))  # nothing injected
    shown = name.encode("utf-8", "replace").decode("utf-8")
    shown = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", shown)
    assert html_text(graph["label"][1]) == f"tied model: {shown}"
    assert esc_string(graph["tooltip"][1]) == shown


# ----------------------------------------------------------------------------- charts
def history(accuracy: bool) -> pd.DataFrame:
    steps = np.arange(1, 11)
    rows = []
    for variant, scale in (("tied", 1.0), ("untied", 2.0)):
        for s in steps:
            rows.append({"step": s, "variant": variant, "loss": scale / s, "accuracy": s / 10 if accuracy else None})
    return pd.DataFrame(rows)


def test_a_log_loss_axis_is_logarithmic_and_the_accuracy_axis_has_round_ticks():
    fig = plots.loss_chart(history(accuracy=True), total_steps=10, log_y=True)
    assert fig.layout.yaxis.type == "log" and "log scale" in fig.layout.yaxis.title.text
    assert fig.layout.yaxis2.type != "log"
    assert (fig.layout.yaxis2.tick0, fig.layout.yaxis2.dtick, fig.layout.yaxis2.tickformat) == (0, 0.2, ".0%")
    linear = plots.loss_chart(history(accuracy=True), total_steps=10)
    assert linear.layout.yaxis.type != "log"
    # Same numbers either way: only the axis changes.
    for a, b in zip(fig.data, linear.data):
        np.testing.assert_array_equal(a.y, b.y)


def test_with_two_uses_the_cosine_chart_draws_one_line_that_says_it_is_both():
    g_a = np.array([1.0, 2.0, 0.5])
    g_b = np.array([0.5, -1.0, 2.0])
    cosine = float(g_a @ g_b / np.linalg.norm(g_a) / np.linalg.norm(g_b))
    rows = [
        {
            "step": step,
            "variant": variant,
            "tensor": "W",
            "use": use,
            "grad_norm": 1.0,
            "sum_norm": 1.5,
            "cosine_with_others": cosine,
        }
        for step in (1, 2)
        for variant in ("tied", "untied")
        for use in ("enc", "dec")
    ]
    fig = plots.gradient_cosine(pd.DataFrame(rows), "W")
    lines = [t for t in fig.data if isinstance(t.meta, dict) and "use" in t.meta]
    assert [t.name for t in lines] == ["enc = dec (identical for two uses)"] * 2
    assert {t.meta["variant"] for t in lines} == {"tied", "untied"}
    for t in lines:
        np.testing.assert_allclose(t.y, [cosine, cosine])
    from sharecore.viz.style import how_to_read

    assert "one line is drawn" in how_to_read(fig)


def test_every_chart_says_how_to_read_it():
    from sharecore.viz.style import how_to_read

    spec = sharecore.preset("partial-share")
    w = np.linspace(-1, 1, 80).reshape(10, 8)
    figures = [
        plots.loss_chart(history(accuracy=False), total_steps=10),
        plots.param_bars(sharecore.param_report(spec)),
        plots.tensor_views(spec, "W", values=w),
    ]
    for fig in figures:
        assert len(how_to_read(fig)) > 30, fig.layout.title.text


def test_the_stored_tensor_outlines_the_part_a_slice_reads():
    spec = sharecore.preset("partial-share")  # 'narrow' reads W[:, 0:4]
    w = np.arange(80, dtype=np.float32).reshape(10, 8)
    fig = plots.tensor_views(spec, "W", values=w)
    (box,) = fig.layout.shapes
    rows = range(int(box.y0 + 0.5), int(box.y1 + 0.5))
    cols = range(int(box.x0 + 0.5), int(box.x1 + 0.5))
    np.testing.assert_array_equal(w[np.ix_(rows, cols)], w[:, :4])  # the box holds exactly what 'narrow' reads
    np.testing.assert_array_equal(fig.data[2].z, w[np.ix_(rows, cols)])
    assert box.xref == "x" and box.yref == "y" and box.name == "read by narrow"  # on the stored panel
    assert fig.layout.annotations[2].font.color == box.line.color


def test_presenter_mode_enlarges_all_chart_text_on_a_copy():
    from sharecore.viz.style import apply_presenter

    spec = sharecore.preset("albert-mlp")
    fig = plots.tensor_views(spec, "W_up", values=np.zeros((16, 32)))
    big = apply_presenter(fig, scale=1.5)
    assert big is not fig and fig.layout.title.font.size == 16
    assert big.layout.title.font.size == 24
    assert big.layout.title.subtitle.font.size == 18
    assert [a.font.size for a in big.layout.annotations] == [1.5 * a.font.size for a in fig.layout.annotations]
    assert big.layout.xaxis.tickfont.size == 18 and big.layout.xaxis.title.font.size == 18
    assert big.layout.legend.font.size == 18 and big.layout.hoverlabel.font.size > 13
    assert big.layout.margin.t > fig.layout.margin.t and big.layout.height > fig.layout.height
    with pytest.raises(ValueError, match=r"positive number.*Received: scale=0"):
        apply_presenter(fig, scale=0)


# ----------------------------------------------------------------------------- pages
def open_page(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    return at.switch_page(f"pages/{page}.py").run()


def sidebar_note(at: AppTest) -> list[str]:
    return [c.value for c in at.sidebar.caption if "Edited on the Build page" in c.value]


def test_the_sidebar_says_edited_on_the_run_of_the_edit_and_not_after_reverting():
    at = open_page("build", preset="seed-dense")
    assert not sidebar_note(at)
    (activation,) = [s for s in at.selectbox if s.key and s.key.endswith(".use.0.activation")]
    original = activation.value
    activation.set_value("gelu" if original != "gelu" else "tanh").run()
    assert sidebar_note(at) == ["Edited on the Build page (started from 'seed-dense')."]
    (activation,) = [s for s in at.selectbox if s.key and s.key.endswith(".use.0.activation")]
    activation.set_value(original).run()
    assert not sidebar_note(at)


def test_steps_above_the_server_cap_are_refused_visibly_and_train_uses_what_is_shown():
    cap = Limits.from_env().max_steps
    at = open_page("train")
    at.number_input(key="train.steps").set_value(99999).run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("99999" in w and f"{cap:,}" in w.replace("\\", "") for w in warnings), warnings
    assert at.number_input(key="train.steps").value == cap  # what the box shows ...
    assert at.session_state["config"].steps == cap  # ... is what Train trains
    assert not at.button(key="train.start").disabled


def test_the_learning_rate_is_picked_on_a_log_scale():
    from sharecore.core.config import LEARNING_RATES, MAX_LEARNING_RATE, MIN_LEARNING_RATE

    rates = list(LEARNING_RATES)
    assert rates[0] == MIN_LEARNING_RATE == 1e-5 and rates[-1] == MAX_LEARNING_RATE == 10.0
    assert all(round(b / a, 6) in (2.0, 2.5) for a, b in zip(rates, rates[1:]))
    at = open_page("train")
    picker = at.select_slider(key="train.learning_rate")
    picker.set_value(0.002).run()
    assert at.session_state["config"].learning_rate == 0.002
    # A rate between the steps, from a link, is kept as it is.
    at = open_page("train", lr="0.0003")
    assert at.select_slider(key="train.learning_rate").value == 0.0003
    assert at.session_state["config"].learning_rate == 0.0003


def test_presenter_mode_enlarges_the_charts_the_build_page_sends():
    at = open_page("build", preset="seed-dense")
    before = [json.loads(c.proto.spec)["layout"]["title"]["font"]["size"] for c in charts(at)]
    at.sidebar.toggle(key="sidebar.presenter").set_value(True).run()
    after = [json.loads(c.proto.spec)["layout"]["title"]["font"]["size"] for c in charts(at)]
    assert before and after == pytest.approx([size * PRESENTER_SCALE for size in before])
    assert at.session_state["presenter"] is True
    at.switch_page("pages/home.py").run()  # a new page draws a new toggle, which keeps the setting
    assert at.sidebar.toggle(key="sidebar.presenter").value is True


def _rgb(hex_color: str) -> list[float]:
    return [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)] + [1.0]


def test_every_colour_the_diagram_writes_text_in_reads_at_4_5_to_1_on_white():
    from tests.support.contrast import contrast_ratio

    for name in sharecore.presets():
        for tied in (True, False):
            dot = model_dot(sharecore.preset(name), tied=tied)
            colours = set(re.findall(r'(?:font color|fontcolor)="(#[0-9a-fA-F]{6})"', dot))
            assert colours, name
            faint = {c: round(contrast_ratio(_rgb(c), [255, 255, 255]), 2) for c in colours}
            assert all(ratio >= 4.5 for ratio in faint.values()), (name, tied, faint)


def test_chart_ticks_axis_and_panel_titles_read_at_4_5_to_1_on_white():
    from tests.support.contrast import contrast_ratio

    fig = plots.tensor_views(sharecore.preset("albert-mlp"), "W_up", values=np.zeros((16, 32)))
    axes = [*fig.select_xaxes(), *fig.select_yaxes()]
    colours = [a.tickfont.color for a in axes] + [a.title.font.color for a in axes]
    colours += [a.font.color for a in fig.layout.annotations]
    assert colours and all(colours), "every text colour is set, not left to Streamlit's grey chart theme"
    faint = {c: round(contrast_ratio(_rgb(c), [255, 255, 255]), 2) for c in set(colours)}
    assert all(ratio >= 4.5 for ratio in faint.values()), faint
