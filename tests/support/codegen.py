"""The Keras scripts sharecore writes: run one as `__main__`, and check that scripts are ruff-clean."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

from sharecore.core.spec import ModelSpec
from sharecore.share.codegen import keras_code


def exec_script(code: str) -> tuple[dict, str]:
    """Runs `code` as `__main__` in a fresh namespace; returns the namespace and what it printed."""
    namespace: dict = {"__name__": "__main__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<keras_code>", "exec"), namespace)
    return namespace, printed.getvalue()


def assert_ruff_clean(specs: dict[str, ModelSpec], tmp_path: Path) -> None:
    """The generated scripts of `specs`, tied and untied, are ruff-formatted and lint clean at 88 columns."""
    for name, spec in specs.items():
        for tied in (True, False):
            (tmp_path / f"{name.replace('-', '_')}_{tied}.py").write_text(keras_code(spec, tied))
    ruff = [sys.executable, "-m", "ruff"]

    formatted = subprocess.run(
        [*ruff, "format", "--isolated", "--check", "--diff", "."], cwd=tmp_path, capture_output=True, text=True
    )
    linted = subprocess.run(
        [*ruff, "check", "--isolated", "--select", "E,F,W,I,B,UP,SIM", "--line-length", "88", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )

    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert len(list(tmp_path.glob("*.py"))) == 2 * len(specs)
