"""sharecore as an installed package: the README's Python snippet and the `sharecore` command work from
any folder, not only from the repository's root (`make run` and `make test` install it, editable)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT


def readme_python_snippet() -> str:
    """The code block under the README's "From Python" heading."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def outside_the_repository() -> dict[str, str]:
    """An environment in which only the installed package can be imported (no PYTHONPATH to the checkout)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def test_the_readme_python_snippet_runs_from_another_folder(tmp_path):
    code = readme_python_snippet() + (
        "\nprint('counts', tied.count_params(), untied.count_params())"
        "\nprint('steps', int(result.history.step.max()), sorted(result.history.variant.unique()))"
        "\nprint('from', sharecore.__file__)"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=outside_the_repository(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "counts 50 100" in ran.stdout  # the counts the snippet's comments promise
    assert "steps 60 ['tied', 'untied']" in ran.stdout
    assert f"from {ROOT / 'sharecore' / '__init__.py'}" in ran.stdout, "the checkout's own sharecore (editable)"


def test_the_sharecore_command_lists_the_presets_from_another_folder(tmp_path):
    command = Path(sys.executable).with_name("sharecore")
    assert command.exists(), f"no `sharecore` command beside {sys.executable}: run `make test` (it installs it)"
    ran = subprocess.run(
        [str(command), "presets"],
        cwd=tmp_path,
        env=outside_the_repository(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert re.search(r"^seed-conv\s+2736\s+5040\s", ran.stdout, re.M), ran.stdout  # the README's published counts


@pytest.mark.long
def test_pip_install_in_a_fresh_venv_gives_a_working_sharecore_command(tmp_path):
    """`pip install .` as a user would, in a new virtual environment: the declared dependencies come from
    the package index (TensorFlow is left to the user, and `presets` needs none), the command is installed."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,  # not the checkout: what is installed must be what runs
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    ran = subprocess.run(
        [str(venv / "bin" / "sharecore"), "presets"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert re.search(r"^tied-lm\s+768\s+1280\s", ran.stdout, re.M), ran.stdout  # the README's published counts
    shown = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sharecore, sys; print(sharecore.__file__, 'tensorflow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert str(venv) in shown.stdout and shown.stdout.split()[-1] == "False", shown.stdout + shown.stderr
