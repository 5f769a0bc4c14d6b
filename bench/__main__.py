"""`python -m bench [--quick | --smoke] [--only NAME ...] [--out PATH]`: run the benchmarks, write RESULTS.md.

Modes: full (default, about 10 minutes), `--quick` (under 2 minutes: `make bench`) and
`--smoke` (seconds: checks that the code runs; its numbers mean nothing). Without `--only`, a
quick or full run overwrites `bench/RESULTS.md` (and `bench/growth.html`); `--only` and
`--smoke` print to stdout unless `--out` is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SECTIONS = (
    *("models", "trainer", "growth", "dashboard", "startup", "memory", "compile", "soak", "distribute", "gpu"),
    "whatif",
    "capacity",
)
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="under 2 minutes (make bench)")
    speed.add_argument("--smoke", action="store_true", help="seconds; only checks that the code runs")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    parser.add_argument("--out", type=Path, help=f"write the Markdown here (default: {DEFAULT_OUT} for full runs)")
    parser.add_argument(
        "--what-if",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dashboard: also time a server with Streamlit's per-run clean-ups off (default: full mode only)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from bench.common import MODES, Headline, Section, load_average, machine_lines, note, source_state, table

    load_at_start, source_at_start = load_average(), source_state()

    mode = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    names = tuple(args.only or (SECTIONS if not args.smoke else ("models", "trainer", "growth")))
    out = args.out
    if out is None and not args.only and not args.smoke:
        out = DEFAULT_OUT
    out_dir = out.parent if out is not None else None

    import sharecore

    sharecore.import_tensorflow()  # once, with TensorFlow's start-up lines silenced (sharecore.nn.tfimport)

    # Each benchmark builds several tf.functions of one method; TensorFlow's retracing warning
    # counts them together and would report retracing that is not happening.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    started = time.perf_counter()
    sections: list[Section] = []
    for name in names:
        note(f"{name}: start")
        t = time.perf_counter()
        if name == "models":
            from bench import models

            section = models.run(mode)
        elif name == "trainer":
            from bench import trainer

            section = trainer.run(mode)
        elif name == "growth":
            from bench import growth

            section = growth.run(mode, out_dir)
        elif name == "startup":
            from bench import startup

            section = startup.run(mode)
        elif name == "compile":
            from bench import compile as compile_cost

            section = compile_cost.run(mode)
        elif name == "soak":
            from bench import soak

            section = soak.run(mode)
        elif name == "memory":
            from bench import memory

            section = memory.run(mode)
        elif name == "distribute":
            from bench import distribute

            section = distribute.run(mode)
        elif name == "gpu":
            from bench import gpu

            section = gpu.run(mode)
        elif name == "whatif":
            from bench import whatif

            section = whatif.run(mode)
        elif name == "capacity":
            from bench import capacity

            section = capacity.run(mode)
        else:
            from bench import dashboard

            section = dashboard.run(mode, out_dir, what_if=args.what_if)
        section.seconds = time.perf_counter() - t
        note(f"{name}: done in {section.seconds:.0f} s")
        sections.append(section)
    total = time.perf_counter() - started

    headlines: list[Headline] = [h for s in sections for h in s.headlines]
    lines = [
        "# sharecore benchmarks",
        "",
        "Written by `python -m bench` (`make bench` runs `--quick`, `make bench-full` the full run); "
        "overwritten by each run. Every comparison runs its sides alternately (A B A B ...) in one "
        "process and reports medians and their ratio; an absolute time is only ever context. The "
        "machine is shared and noisy: read ratios, and the per-round range beside them.",
        "",
        *machine_lines(mode, load_at_start, source_at_start),
        "",
        "## Headline",
        "",
        *table(["comparison", "measured", "target", "met"], [h.cells() for h in headlines]),
        "",
    ]
    for s in sections:
        lines += [f"## {s.title}", "", *s.body, "", f"_Section time: {s.seconds:.0f} s._", ""]
    lines += [f"_Total: {total:.0f} s in mode `{mode.name}`._", ""]
    text = "\n".join(lines)
    if out is not None:
        out.write_text(text)
        note(f"wrote {out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
