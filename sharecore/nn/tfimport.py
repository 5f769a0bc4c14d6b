"""TensorFlow and Keras for all of sharecore, imported once, with TensorFlow's C++ start-up lines silenced.

Every sharecore module that needs TensorFlow takes it from here (`from sharecore.nn.tfimport import keras, tf`)
and never imports `tensorflow` or `keras` itself, so whichever of them a program imports first, the
import is quiet (tests/project/test_boundaries.py checks that nothing in sharecore, bench or the pages does). Importing
this module is what loads TensorFlow (seconds); the plain-Python half of sharecore never does.

Even with TF_CPP_MIN_LOG_LEVEL set, TensorFlow 2.21 writes absl's 'All log messages before
absl::InitializeLog() is called are written to STDERR' and, where oneDNN is on (the default on
x86 CPUs; TF_ENABLE_ONEDNN_OPTS=1 forces it), 'oneDNN custom operations are on', twice each, from C++
straight to file descriptor 2: a Python logger cannot stop them, and they would break the CLI's
promise of nothing on stderr for a good run and one line for bad input.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def _flush_stderr() -> None:
    with contextlib.suppress(AttributeError, ValueError, OSError):  # None, closed or broken: nothing to flush
        sys.stderr.flush()


def _point_fd2_at_devnull() -> tuple[int, int] | None:
    """(a copy of fd 2, /dev/null's fd), with fd 2 now /dev/null; None where either cannot be opened."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (some embedded hosts): nothing to silence
        return None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        os.close(saved)
        return None
    _flush_stderr()  # what Python wrote before goes to the real stderr
    os.dup2(devnull, 2)
    return saved, devnull


@contextlib.contextmanager
def fd2_silenced() -> Iterator[None]:
    """Points file descriptor 2 at /dev/null meanwhile, for output that C++ writes there directly.

    Python exceptions still propagate, and are printed after fd 2 is back. It is process-wide:
    hold it only for an import, not around work whose errors someone should read.
    """
    fds = _point_fd2_at_devnull()
    try:
        yield
    finally:
        if fds is not None:
            _flush_stderr()
            os.dup2(fds[0], 2)
            for fd in fds:
                os.close(fd)


if "tensorflow" in sys.modules:  # the program imported it already: its start-up lines are out
    import keras
    import tensorflow as tf
else:
    with fd2_silenced():
        import keras  # imports TensorFlow, its backend
        import tensorflow as tf

__all__ = ["fd2_silenced", "keras", "tf"]
