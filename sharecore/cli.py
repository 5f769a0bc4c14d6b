"""Command line: `python -m sharecore presets | params | train | inspect`.

Bad input prints one line on stderr and exits with status 2 (a bug: one line, status 1); never
a traceback, and nothing of TensorFlow's start-up (`sharecore.nn.tfimport`). `train` checks its spec
file, its settings (`sharecore.core.runcheck.check_run`) and its output folder before it loads
TensorFlow, writes what it recorded when stopped with Ctrl-C (exit 130), and names each file it
could not write (exit 2). With `--logdir DIR` it also writes the run's TensorBoard logs, DIR/tied and
DIR/untied (`sharecore.nn.tensorboard`), and checks DIR with the output folder. `inspect` checks its
model and data files before it loads TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import stat
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sharecore.core.runcheck import folder_problem
from sharecore.core.spec import ModelSpec
from sharecore.core.text import csv_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from sharecore.core.results import TrainResult

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command whose reader stopped early
OUTPUT_FILES = ("history.csv", "gradients.csv", "divergence.csv", "summary.json")
LOGS = "TensorBoard logs"  # with --logdir, what a message calls them beside the files


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        raise SystemExit(_fail(f"{message} (see `python -m {self.prog} --help`)"))


def _fail(message: str) -> int:
    # One line whatever the message quotes: a path or spec name may hold a line break.
    print(f"sharecore: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return 2


def _read_spec_file(ref: str, cap: int) -> str:
    """The text of spec file `ref`, refusing anything but a regular file of at most `cap` bytes.

    The checks come before the read: /dev/zero would otherwise be read without end and a
    FIFO would block forever.
    """
    try:
        info = os.stat(ref)
    except OSError as err:
        raise ValueError(f"cannot read spec file {ref!r}: {err.strerror}.") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
        raise ValueError(f"spec {ref!r} is {kind}, not a file; give a preset name or a spec .json file.")
    too_big = (
        f"spec file {ref!r} is larger than {cap:,} bytes, the limit max_spec_bytes (a spec is a few kB); "
        f"raise it with SHARECORE_MAX_SPEC_BYTES if this is really a spec."
    )
    if info.st_size > cap:
        raise ValueError(too_big)
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat, opening it does not wait.
        fd = os.open(ref, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise ValueError(f"spec {ref!r} is not a regular file; give a preset name or a spec .json file.")
            data = file.read(cap + 1)  # /proc files report size 0: the read itself is bounded too
    except OSError as err:
        raise ValueError(f"cannot read spec file {ref!r}: {err.strerror}.") from None
    if len(data) > cap:
        raise ValueError(too_big)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"spec file {ref!r} is not UTF-8 text; a spec is JSON.") from None


def load_spec(ref: str) -> ModelSpec:
    """A preset name or the path of a spec JSON file.

    Raises:
        ValueError: unknown preset; a path that is not a regular file, is too big, unreadable
            or invalid.
    """
    from sharecore.core.limits import Limits
    from sharecore.core.presets import preset, presets

    if ref in presets():
        return preset(ref)
    if not ref.endswith(".json") and not os.path.lexists(ref):
        raise ValueError(f"{ref!r} is neither a preset ({', '.join(presets())}) nor a spec JSON file.")
    return ModelSpec.from_json(_read_spec_file(ref, Limits.from_env().max_spec_bytes))


def _cmd_presets(_: argparse.Namespace) -> int:
    from sharecore.core.params import param_report
    from sharecore.core.presets import preset, presets

    print(f"{'preset':<18}{'tied':>8}{'untied':>8}  description")
    for name in presets():
        spec = preset(name)
        r = param_report(spec)
        print(f"{name:<18}{r.tied_total:>8}{r.untied_total:>8}  {spec.description.split('.')[0]}.")
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    from sharecore.core.params import param_report

    spec = load_spec(args.spec)
    r = param_report(spec)
    if args.json:
        print(json.dumps({"tied": r.tied_total, "untied": r.untied_total, "table": r.records()}))
        return 0
    print(r.to_text())
    print(
        f"\ntied: {r.tied_total:,} parameters   untied: {r.untied_total:,}   tying saves {r.saved:,} ({r.ratio:.2f}x)"
    )
    return 0


class _CtrlC:
    """While active, the first Ctrl-C asks the run to stop and keep what it recorded; a second quits at once."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._previous = None
        self._installed = False

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        # os.write, not print: a handler can run in the middle of another print to stderr.
        if self.stop.is_set():
            os.write(2, b"sharecore: second Ctrl-C: quitting at once; not all results were written.\n")
            os._exit(EXIT_INTERRUPTED)
        self.stop.set()
        os.write(2, b"sharecore: stopping after the current steps to write what was recorded; Ctrl-C again quits.\n")


def _check_writable(out: Path, what: str = "the output folder", option: str = "--out") -> None:
    """Creates `out` and writes and removes a file there, so that a bad --out (or --logdir) fails before
    training, not after."""
    reason = folder_problem(out)
    if reason is not None:
        raise ValueError(f"cannot write to {what} {str(out)!r} ({reason}); choose another folder with {option}.")


def _write_file(path: Path, text: str) -> None:
    """Writes `text` to `path` whole or not at all: a write that fails half way leaves no half file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def _output_files(result: TrainResult) -> tuple[str, ...]:
    """`OUTPUT_FILES`, with heldout.csv when the run recorded a held-out loss (every data set has a split)."""
    if result.heldout.empty:
        return OUTPUT_FILES
    return (*OUTPUT_FILES[:3], "heldout.csv", OUTPUT_FILES[3])


def _write_results(result: TrainResult, summary: dict, out: Path) -> dict[str, str]:
    """Writes each of `OUTPUT_FILES` on its own, so that one failure does not lose the others.

    Returns:
        File name -> a sentence saying why it could not be written; empty when all were written.
    """
    texts = {
        "history.csv": lambda: csv_text(result.history),
        "gradients.csv": lambda: csv_text(result.gradients),
        "divergence.csv": lambda: csv_text(result.divergence),
        "summary.json": lambda: json.dumps(summary, indent=2),
    }
    texts["heldout.csv"] = lambda: csv_text(result.heldout)
    problems: dict[str, str] = {}
    for name in _output_files(result):
        try:
            _write_file(out / name, texts[name]())
        except OSError as err:
            problems[name] = f"could not write {str(out / name)!r}: {err.strerror or type(err).__name__}."
    return problems


def _write_logs(result: TrainResult, logdir: Path) -> dict[str, str]:
    """The run's TensorBoard logs in `logdir/tied` and `logdir/untied`; {LOGS: why} when they could not be written."""
    from sharecore.nn.tensorboard import write_run

    try:
        write_run(result, logdir)
    except OSError as err:
        return {LOGS: f"could not write the TensorBoard logs to {str(logdir)!r}: {err.strerror or type(err).__name__}."}
    return {}


def _load_trainer() -> Callable[..., TrainResult]:
    """`sharecore.nn.training.train`, loading TensorFlow (seconds): only once the input is known to be good."""
    import sharecore

    sharecore.import_tensorflow()  # quiet: nothing of TensorFlow's start-up reaches stderr
    from sharecore.nn.training import train

    return train


def _cmd_train(args: argparse.Namespace) -> int:
    from sharecore.core.config import TrainConfig
    from sharecore.core.runcheck import check_run

    spec = load_spec(args.spec)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        seed=args.seed,
        device=args.device,
        record_every=args.record_every,
        dataset=args.dataset,
        teacher=args.teacher,
        distribute=args.distribute,
        replicas=args.replicas,
    )
    check_run(spec, config)  # every check that needs no TensorFlow, in a fraction of a second
    out = Path(args.out)
    _check_writable(out)
    if args.logdir is not None and not args.logdir.strip():
        raise ValueError("--logdir is empty; give the folder for the TensorBoard logs, e.g. --logdir logs/run1.")
    logdir = Path(args.logdir) if args.logdir is not None else None
    if logdir is not None:
        _check_writable(logdir, "the TensorBoard log folder", "--logdir")
    train = _load_trainer()
    from sharecore.nn.devices import make_strategy, resolve_device

    # What only TensorFlow can tell, before the 'training ...' line: the strategy first, because
    # splitting the CPU into replicas must happen before TensorFlow starts; train() reuses it.
    if config.distribute != "none":
        make_strategy(config)
    resolve_device(config.device)  # 'gpu' where TensorFlow sees none

    # No on_progress callback: nothing here draws the history as it grows.
    print(
        f"training {spec.name!r} tied and untied for {config.steps} steps "
        f"(Ctrl-C stops early and writes what was recorded)",
        flush=True,
    )
    with _CtrlC() as ctrl_c:
        result = train(spec, config, stop=ctrl_c.stop)
        interrupted = ctrl_c.stop.is_set() and result.steps_done < config.steps
        if interrupted and (result.stop_reason or "").startswith("stopped by request"):
            result.stop_reason = f"interrupted by Ctrl-C after step {result.steps_done}"
        summary = result.summary()
        problems = _write_results(result, summary, out)
        if logdir is not None:
            problems |= _write_logs(result, logdir)

    written = [name for name in _output_files(result) if name not in problems]
    losses = ", ".join(f"{k} {v:.4f}" for k, v in summary["final_loss"].items()) or "none (no step ran)"
    steps = f"{result.steps_done}" if result.steps_done == config.steps else f"{result.steps_done} of {config.steps}"
    print(
        f"trained {spec.name!r} for {steps} steps on {result.device} ({result.steps_per_second:.1f} steps/s); "
        f"final loss {losses}"
        + (f"; wrote {out}/" if written else "")
        + (f" and TensorBoard logs to {logdir}/" if logdir is not None and LOGS not in problems else "")
    )
    if problems:
        for problem in problems.values():
            _fail(problem)
        if written:
            _fail(f"wrote {', '.join(written)} to {str(out)!r}; not written: {', '.join(problems)}.")
        elif logdir is not None and LOGS not in problems:
            _fail(f"only the TensorBoard logs were written, to {str(logdir)!r}; not written: {', '.join(problems)}.")
        else:
            _fail(
                "nothing was written, so the results of this run are lost; choose a folder you can write to with --out."
            )
        return 2
    if interrupted:
        print(f"sharecore: {result.stop_reason}; wrote what was recorded to {str(out)!r}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.stop_reason:
        print(f"sharecore: warning: {result.stop_reason}", file=sys.stderr)
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from sharecore.core.inspection import DEFAULT_MAX_BYTES, check_model_file, read_probe_data

    # Both files are checked before TensorFlow loads (seconds): a wrong path is refused at once.
    check_model_file(args.model, DEFAULT_MAX_BYTES)
    x, y = read_probe_data(args.data, DEFAULT_MAX_BYTES) if args.data else (None, None)
    import sharecore

    sharecore.import_tensorflow()  # quiet: nothing of TensorFlow's start-up reaches stderr
    from sharecore.nn.inspect import inspect, load_inspectable

    model = load_inspectable(args.model, DEFAULT_MAX_BYTES)
    print(inspect(model, x, y, loss=args.loss, seed=args.seed).to_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="sharecore", description="Tied vs untied weight sharing in Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("presets", help="list the built-in specs with their parameter counts")
    p = sub.add_parser("params", help="parameter table of a preset or spec JSON")
    p.add_argument("spec", help="a preset name or a spec .json file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    t = sub.add_parser("train", help="train tied and untied side by side and write CSVs")
    t.add_argument("spec", help="a preset name or a spec .json file")
    t.add_argument("--steps", type=int, default=60)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--optimizer", default="adam")
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto")
    t.add_argument("--record-every", type=int, default=1)
    t.add_argument("--dataset", default="teacher")
    t.add_argument(
        "--teacher",
        default="untied",
        help="untied | tied: the random network that labels dataset 'teacher' (drawn at the seed + 7919)",
    )
    t.add_argument(
        "--distribute",
        default="none",
        help="none | mirrored (replicas on this machine) | multi-worker (the machines TF_CONFIG names)",
    )
    t.add_argument(
        "--replicas",
        type=int,
        default=0,
        help="with mirrored: how many replicas (N logical CPUs on a CPU host, the first N GPUs on a GPU host); "
        "0: every GPU, or one CPU",
    )
    t.add_argument("--out", default="runs/latest", help="output folder (default runs/latest)")
    t.add_argument(
        "--logdir",
        default=None,
        help="also write TensorBoard logs here, DIR/tied and DIR/untied (view: tensorboard --logdir DIR); "
        "give each run its own folder",
    )
    i = sub.add_parser(
        "inspect", help="the shared weights of a saved .keras model, the counts, and each use's part of the gradient"
    )
    i.add_argument("model", help="a .keras file (loaded with safe_mode: a Lambda layer is refused)")
    i.add_argument("--data", help="an .npz file with arrays x and y (default: a seeded random batch)")
    i.add_argument(
        "--loss",
        help="a Keras loss name (default: the one the model was saved with; else cross-entropy for a "
        "language model or int y, mse otherwise)",
    )
    i.add_argument("--seed", type=int, default=0, help="seeds the random batch when no --data is given")
    try:
        args = parser.parse_args(argv)
        return {"presets": _cmd_presets, "params": _cmd_params, "train": _cmd_train, "inspect": _cmd_inspect}[
            args.command
        ](args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except ValueError as err:
        return _fail(str(err))
    except KeyboardInterrupt:  # before training started (see _CtrlC for during)
        print("sharecore: interrupted; nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader stopped early (`sharecore presets | head -3`): nothing went wrong. What is left to print
        # goes nowhere, so that the interpreter's flush at exit does not fail too (Python's signal docs).
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as err:  # a bug, not bad input: still one line, and a distinct status
        _fail(f"internal error, please report it: {type(err).__name__}: {err}")
        return 1
