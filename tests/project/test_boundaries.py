"""The house: where pages live and how they reach the router, how the ui package's layers import
each other and who writes a session key, what imports TensorFlow, and that a run plans its spec once. The fresh-server browser checks are in test_browser_layout.py."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
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


# ----------------------------------------------------------------------------- the layers
# The layers themselves are import-linter contracts in pyproject.toml ([tool.importlinter]), which
# `lint-imports` checks in make lint and make test, and the test below in any pytest run.
def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_hold():
    """The layers, TensorFlow's one door and the library's independence from the app (pyproject.toml)."""
    out = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in out.stdout


def test_every_module_stands_in_a_layer_of_the_contracts():
    """A new subpackage of sharecore or module of ui that no layer names would be bound by nothing."""
    layered = {
        name.strip()
        for contract in _contracts()
        if contract["type"] == "layers"
        for layer in contract["layers"]
        for name in layer.split("|")
    }
    packages = {f"sharecore.{p.name}" for p in (ROOT / "sharecore").iterdir() if (p / "__init__.py").exists()}
    assert packages <= layered, f"subpackages in no layer: {sorted(packages - layered)}"
    modules = {p.stem for p in (ROOT / "ui").glob("*.py") if p.stem != "__init__"}
    assert modules <= layered, f"ui modules in no layer: {sorted(modules - layered)}"


@pytest.mark.parametrize("folder", ["sharecore", "ui", "pages"])
def test_no_module_is_over_500_lines(folder):
    """One module, one subject: a room of a few hundred lines."""
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, f"split these by subject: {long}"


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
# The one runtime check beside the import contracts: in a fresh Python, every module the contracts keep
# free of TensorFlow is imported and used, and then the first call that needs TensorFlow loads it. It
# catches what a static graph cannot see (an import through importlib, a module that TensorFlow's own
# imports would pull in).
LIGHT_CALLS = """
import importlib, json, pkgutil, sys
import sharecore
free = [m.name for m in pkgutil.walk_packages(sharecore.__path__, "sharecore.")
        if not m.name.startswith(("sharecore.nn", "sharecore.teach.pitfalls", "sharecore.__main__"))]
for name in free:
    importlib.import_module(name)
from sharecore.core import limits, runcheck
from sharecore.share import urlstate
from sharecore.viz import diagram
spec = sharecore.preset("seed-conv")
sharecore.plan(spec); sharecore.validate(spec); sharecore.presets()
report = sharecore.param_report(spec)
sharecore.check_limits(spec, sharecore.TrainConfig())
runcheck.check_run(spec, sharecore.TrainConfig(dataset="teacher"))
state = urlstate.read_state(urlstate.encode_state("seed-conv", spec, sharecore.TrainConfig(steps=7)))
assert state.spec == spec and state.config.steps == 7
diagram.model_dot(spec, tied=True); diagram.param_bars(report)
from sharecore.viz import tensorviews
import numpy as np
tensorviews.tensor_views(spec, "K", np.zeros(spec.tensors[0].shape, dtype="float32"))  # a figure of given values
limits.Limits.from_env()
before = sorted(m for m in ("tensorflow", "keras", "streamlit") if m in sys.modules)
model = sharecore.build(sharecore.preset("seed-dense"), tied=True)
print(json.dumps([len(free), before, "tensorflow" in sys.modules, sharecore.tensorflow_ready(), model.count_params()]))
"""


def test_the_library_loads_tensorflow_with_the_first_call_that_needs_it_and_never_before():
    out = subprocess.run([sys.executable, "-c", LIGHT_CALLS], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    modules, before, loaded, ready, params = json.loads(out.stdout.strip().splitlines()[-1])
    assert modules > 25, "every TensorFlow-free module was imported"
    assert before == [], f"loaded before any call that needs them: {before}"
    assert (loaded, ready, params) == (True, True, 100)


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


# ----------------------------------------------------------------------------- names
def _sharecore_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every `from sharecore... import names` in `path`, inside functions too."""
    tree = ast.parse(path.read_text())
    return [
        (node.lineno, node.module, [a.name for a in node.names])
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sharecore.")
    ]


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
