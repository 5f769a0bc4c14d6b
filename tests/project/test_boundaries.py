"""The house: where pages live and how they reach the router, how the ui package's layers import
each other and who writes a session key, what imports TensorFlow, and that a run plans its spec once. The fresh-server browser checks are in test_browser_layout.py."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import sharecore
from sharecore.core.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
PAGE_FILES = sorted((ROOT / "pages").glob("*.py"))
# What the design card puts at the top level, plus the tooling it allows and the shared UI package.
TOP_LEVEL = {"streamlit_app.py", "pages", "sharecore", "tests", "requirements.txt", ".streamlit", "README.md"}
ALLOWED_EXTRA = {"Makefile", "pyproject.toml", ".ci", "bench", "docs", "ui", "requirements-dev.txt"}
# The hosted demo (README, "Hosting a demo"): the image, its build context's exclusions, the settings profile.
ALLOWED_EXTRA |= {"Dockerfile", ".dockerignore", "deploy"}


def _tracked_top_level() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {f.split("/")[0] for f in files}


def test_the_top_level_is_the_design_cards():
    top = _tracked_top_level() - {".gitignore"}
    assert top >= TOP_LEVEL, f"missing from the top level: {TOP_LEVEL - top}"
    assert top <= TOP_LEVEL | ALLOWED_EXTRA, f"not on the design card: {top - TOP_LEVEL - ALLOWED_EXTRA}"


def test_the_router_lists_every_page_file_and_nothing_else():
    from ui.sitemap import PAGES

    assert sorted(Path(p).name for p in PAGES.values()) == sorted(p.name for p in PAGE_FILES)
    assert all((ROOT / p).is_file() for p in PAGES.values())


@pytest.mark.parametrize("page", PAGE_FILES, ids=lambda p: p.stem)
def test_every_page_calls_ui_frame_before_anything_else(page):
    """A page that draws before `frame()` (ui/routing.py) would run without the router on a fresh server."""
    tree = ast.parse(page.read_text())
    assert any(
        isinstance(n, ast.ImportFrom) and n.module == "ui.routing" and [a.name for a in n.names] == ["frame"]
        for n in tree.body
    ), f"{page.name}: import frame with `from ui.routing import frame`"
    body = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    body = body[1:] if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body  # docstring
    first = body[0]
    assert isinstance(first, ast.Expr) and ast.unparse(first) == "frame()", (
        f"{page.name}: the first statement after the imports must be frame(); found {ast.unparse(first)!r}"
    )


# The ui package's modules, bottom to top, as ui/__init__.py lists them: each imports only modules before it.
UI_LAYERS = [
    "keys",
    "text",
    "cache",
    "sitemap",
    "startup",
    "state",
    "widgets",
    "figures",
    "kept",
    "kept_views",
    "training",
    "settings_editor",
    "sidebar",
    "routing",
]


def _ui_imports(path: Path) -> set[str]:
    """The ui modules `path` imports (`from ui import a, b`, `from ui.a import x`, `import ui.a`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "ui":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ui."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("ui.")}
    return found


def test_the_ui_package_is_the_layers_it_lists_and_each_imports_only_the_ones_below_it():
    modules = sorted(p.stem for p in (ROOT / "ui").glob("*.py") if p.stem != "__init__")
    assert modules == sorted(UI_LAYERS)
    for module in UI_LAYERS:
        path = ROOT / "ui" / f"{module}.py"
        above = set(UI_LAYERS[UI_LAYERS.index(module) :])
        assert not _ui_imports(path) & above, f"ui/{module}.py imports {sorted(_ui_imports(path) & above)}"
        assert len(path.read_text().splitlines()) < 500, f"ui/{module}.py has grown past 500 lines: split it"


def _owned_keys() -> dict[str, str]:
    """Session-key constant -> its writer, from the section headings of ui/keys.py ('... (ui.state)')."""
    owners, owner = {}, None
    for line in (ROOT / "ui" / "keys.py").read_text().splitlines():
        if heading := re.match(r"# -+ .*\((ui\.\w+|pages/\w+\.py)\)$", line):
            owner = heading.group(1)
        elif (name := re.match(r"([A-Z][A-Z_]*) = ", line)) and owner:
            owners[name.group(1)] = owner
    return owners


def _session_writes(path: Path) -> list[tuple[int, str]]:
    """(line, key) of each key `path` writes in st.session_state: assigned, deleted, popped or set by default."""
    tree = ast.parse(path.read_text())
    session = {"ss", "st.session_state"}
    writes = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            targets = [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
            writes += [
                (node.lineno, ast.unparse(t.slice))
                for t in targets
                if isinstance(t, ast.Subscript) and ast.unparse(t.value) in session
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("pop", "setdefault", "update", "clear")
            and ast.unparse(node.func.value) in session
        ):
            writes.append((node.lineno, ast.unparse(node.args[0]) if node.args else "*"))
    return writes


UI_FILES = sorted(p for p in (ROOT / "ui").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("path", [*PAGE_FILES, *UI_FILES], ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_page_or_ui_module_writes_only_its_own_session_keys(path):
    """A page is layout plus calls: the module that owns a key (named in ui/keys.py) is its only writer."""
    from ui import keys

    owners = _owned_keys()
    by_value = {}
    for name, owner in owners.items():
        value = getattr(keys, name)
        by_value.update(dict.fromkeys(value.values() if isinstance(value, dict) else [value], owner))
    me = f"pages/{path.name}" if path.parent.name == "pages" else f"ui.{path.stem}"
    for line, key in _session_writes(path):
        name = key.removeprefix("keys.").split("[")[0]
        if name in owners:
            owner = owners[name]
        elif key[:1] in "'\"":
            owner = by_value.get(ast.literal_eval(key), "no module (add it to ui/keys.py)")
        else:
            continue  # a key the module composes for its own widgets (`key(...)`, a parameter)
        assert owner == me, f"{path.name}:{line} writes {key}, which {owner} owns"


@pytest.mark.parametrize("page", [p.stem for p in PAGE_FILES])
def test_a_page_opened_first_in_streamlits_older_pages_mode_shows_the_whole_app(page):
    """AppTest starts every run in the older `pages/` mode, as a fresh server does: the first run
    asks for the page file itself, which must hand over to the router (sidebar and all)."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.query_params.update({"preset": "seed-conv", "seed": "3"})
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception
    assert at.sidebar.selectbox(key="sidebar.preset").value == "seed-conv"
    assert at.sidebar.number_input(key="sidebar.seed").value == 3
    assert at.title, "the page drew no title"


# ----------------------------------------------------------------------------- TensorFlow only when needed
LIGHT_CALLS = """
import json, sys
import sharecore
from sharecore import cli
from sharecore.share import urlstate, codegen
from sharecore.core import limits, params, runcheck
from sharecore.viz import diagram
spec = sharecore.preset("seed-conv")
sharecore.plan(spec); sharecore.validate(spec); sharecore.presets()
report = sharecore.param_report(spec)
sharecore.check_limits(spec, sharecore.TrainConfig())
runcheck.check_run(spec, sharecore.TrainConfig(dataset='teacher'))
state = urlstate.read_state(urlstate.encode_state("seed-conv", spec, sharecore.TrainConfig(steps=7)))
assert state.spec == spec and state.config.steps == 7
assert sharecore.ModelSpec.from_json(spec.to_json()) == spec
diagram.model_dot(spec, tied=True); diagram.param_bars(report)
limits.Limits.from_env()
print(json.dumps(sorted(m for m in ("tensorflow", "keras", "streamlit") if m in sys.modules)))
"""


def test_the_core_answers_without_importing_tensorflow():
    out = subprocess.run([sys.executable, "-c", LIGHT_CALLS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("argv", [["presets"], ["params", "seed-conv"], ["params", "seed-conv", "--json"]])
def test_the_cli_lists_and_counts_without_importing_tensorflow(argv):
    code = (
        "import sys, runpy; sys.argv = ['sharecore', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('sharecore', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('TF', 'tensorflow' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "TF False"
    if argv[-1] == "--json":  # the counts are the published ones (README, count_params of the built models)
        data = json.loads(out.stdout)
        assert (data["tied"], data["untied"]) == (2736, 5040)
        assert sum(r["owned_params"] for r in data["table"] if r["variant"] == "tied") == 2736


def _imports_outside_type_checking(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in `path`, but those under `if TYPE_CHECKING:` (never run)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for child in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def test_tensorflow_and_keras_are_imported_only_through_sharecore_tfimport():
    """TensorFlow's C++ start-up lines go straight to stderr; sharecore.nn.tfimport alone imports it, with them
    silenced, so that no sharecore module, page or benchmark imported first can let them through."""
    files = [
        *(ROOT / "sharecore").rglob("*.py"),
        *(ROOT / "bench").glob("*.py"),
        *PAGE_FILES,
        *(ROOT / "ui").glob("*.py"),
    ]
    direct = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        if path != ROOT / "sharecore" / "nn" / "tfimport.py"
        for line, module in _imports_outside_type_checking(path)
        if module.split(".")[0] in ("tensorflow", "keras")
    ]
    assert not direct, "import them with `from sharecore.nn.tfimport import keras, tf`: " + "; ".join(direct)


def test_tensorflow_comes_with_the_first_call_that_needs_it():
    code = (
        "import sys, sharecore\n"
        "assert 'tensorflow' not in sys.modules\n"
        "model = sharecore.build(sharecore.preset('seed-dense'), tied=True)\n"
        "print('tensorflow' in sys.modules, sharecore.tensorflow_ready(), model.count_params())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "100"]


def test_load_model_keeps_the_tie_of_a_saved_model(tmp_path):
    spec = sharecore.preset("seed-mixed")
    model = sharecore.build(spec, tied=True, seed=4)
    path = tmp_path / "tied.keras"
    model.save(path)
    loaded = sharecore.load_model(path)
    assert loaded.count_params() == model.count_params() == sharecore.param_report(spec).tied_total
    assert len(loaded.trainable_weights) == len(model.trainable_weights)
    x = np.random.default_rng(0).standard_normal((3, *spec.input_shape)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))
    # One variable: a change made through one use is seen by every use that reads it.
    kernels = sharecore.kernel_variables(loaded, spec, tied=True)
    assert len({id(v) for v in kernels.values() if v is not None}) < len(kernels)


def test_load_model_says_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match=r"no saved model at .*nothing\.keras"):
        sharecore.load_model(tmp_path / "nothing.keras")


# ----------------------------------------------------------------------------- plan once
def test_a_training_run_plans_its_spec_once():
    spec = sharecore.preset("partial-share")
    sharecore.plan(spec)  # not counted below: the memo is cleared first
    sharecore.plan.cache_clear()
    sharecore.train(spec, TrainConfig(steps=2, batch_size=4))
    info = sharecore.plan.cache_info()
    assert info.hits + info.misses == 1, info


def test_building_a_model_plans_its_spec_once():
    spec = sharecore.preset("seed-conv")
    sharecore.plan.cache_clear()
    sharecore.build(spec, tied=False, seed=1)
    info = sharecore.plan.cache_info()
    assert info.hits + info.misses == 1, info


def test_the_core_modules_import_one_way():
    """No import circle among sharecore's modules (data -> model -> limits -> data was one)."""
    graph: dict[str, set[str]] = {}
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in (ROOT / "sharecore").rglob("*.py")
    }
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sharecore"):
                deps.update(
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                )
        graph[name] = {d for d in deps if d in modules} - {name, "sharecore"}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for dep in graph.get(node, ()):
                if dep == start:
                    return [*trail, dep]
                if dep not in trail:
                    stack.append((dep, [*trail, dep]))
        return None

    cycles = [c for m in graph if m != "sharecore.__main__" and (c := cycle_from(m))]
    assert not cycles, f"import circles: {cycles[:3]}"


# ----------------------------------------------------------------------------- the layers
# What each layer of sharecore may import (at the top or inside a function): plain Python at the bottom,
# the Keras engine on it, figures and the share formats beside it, run keeping and teaching above.
LAYERS = {
    "core": {"core"},
    "nn": {"core", "nn"},
    "viz": {"core", "viz"},
    "share": {"core", "share"},
    "runs": {"core", "nn", "runs"},
    "teach": {"core", "nn", "teach"},
}


def _sharecore_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every `from sharecore... import names` in `path`, inside functions too."""
    tree = ast.parse(path.read_text())
    return [
        (node.lineno, node.module, [a.name for a in node.names])
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sharecore.")
    ]


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_the_layers_it_stands_on(layer):
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "sharecore" / layer).rglob("*.py"))
        for line, module, _ in _sharecore_imports(path)
        if module.split(".")[1] not in LAYERS[layer]
    ]
    assert not wrong, f"sharecore.{layer} may import {sorted(LAYERS[layer])} only: " + "; ".join(wrong)


def test_no_module_imports_another_modules_underscored_names():
    """A name another module needs is public, with a docstring; an underscore means 'this module only'."""
    private = [
        f"{path.relative_to(ROOT)}:{line} imports {name} from {module}"
        for path in sorted((ROOT / "sharecore").rglob("*.py"))
        for line, module, names in _sharecore_imports(path)
        for name in names
        if name.startswith("_")
    ]
    assert not private, "; ".join(private)
