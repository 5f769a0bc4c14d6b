"""The command line in this process (`cli.main(argv)`), and a guard that fails a test if TensorFlow loads."""

from __future__ import annotations

import sys

import pytest

import sharecore
from sharecore import cli
from tests.support import ROOT

# Every sharecore module that loads TensorFlow does so through sharecore.nn.tfimport (test_layout.py checks it).
TENSORFLOW_MODULES = (
    "tensorflow",
    "keras",
    "sharecore.nn.tfimport",
    *sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "sharecore").rglob("*.py")
        if "from sharecore.nn.tfimport import" in path.read_text()
    ),
)


def main(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """`python -m sharecore *argv` in this process: (exit status, stdout, stderr)."""
    status = cli.main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


class TensorFlowLoaded(BaseException):
    """Not an Exception: the CLI's catch-all for bugs must not turn it into a message."""


@pytest.fixture
def without_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the CLI loads TensorFlow, even where an earlier test has loaded it in this process.

    The CLI's door to TensorFlow (`sharecore.import_tensorflow`) raises, and importing any of
    `TENSORFLOW_MODULES` fails (a None in sys.modules stops an import, loaded or not).
    """

    def refuse() -> None:
        raise TensorFlowLoaded("the CLI loaded TensorFlow for input it can refuse without it")

    monkeypatch.setattr(sharecore, "import_tensorflow", refuse)
    for name in TENSORFLOW_MODULES:
        monkeypatch.setitem(sys.modules, name, None)
