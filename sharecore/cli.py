"""Command line: `python -m sharecore presets | params | train`.

Bad input prints one line on stderr and exits with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sharecore.spec import ModelSpec

MAX_SPEC_BYTES = 1_000_000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        raise SystemExit(_fail(f"{message} (see `python -m {self.prog} --help`)"))


def _fail(message: str) -> int:
    print(f"sharecore: error: {message}", file=sys.stderr)
    return 2


def load_spec(ref: str) -> ModelSpec:
    """A preset name or the path of a spec JSON file.

    Raises:
        ValueError: unknown preset, unreadable or invalid file.
    """
    from sharecore.presets import preset, presets

    if ref in presets():
        return preset(ref)
    path = Path(ref)
    if not path.suffix == ".json" and not path.exists():
        raise ValueError(f"{ref!r} is neither a preset ({', '.join(presets())}) nor a spec JSON file.")
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise ValueError(f"spec file {ref} is larger than {MAX_SPEC_BYTES:,} bytes; a spec is a few kB.")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read spec file {ref}: {err}") from None
    return ModelSpec.from_json(text)


def _cmd_presets(_: argparse.Namespace) -> int:
    from sharecore.params import param_report
    from sharecore.presets import preset, presets

    print(f"{'preset':<18}{'tied':>8}{'untied':>8}  description")
    for name in presets():
        spec = preset(name)
        r = param_report(spec)
        print(f"{name:<18}{r.tied_total:>8}{r.untied_total:>8}  {spec.description.split('.')[0]}.")
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    from sharecore.params import param_report

    spec = load_spec(args.spec)
    r = param_report(spec)
    if args.json:
        print(json.dumps({"tied": r.tied_total, "untied": r.untied_total, "table": r.table.to_dict("records")}))
        return 0
    print(r.table.to_string(index=False))
    print(
        f"\ntied: {r.tied_total:,} parameters   untied: {r.untied_total:,}   tying saves {r.saved:,} ({r.ratio:.2f}x)"
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from sharecore.spec import TrainConfig

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
    )
    from sharecore.training import train  # TensorFlow: only once the input is known to be good

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create output folder {out}: {err}") from None
    result = train(spec, config)
    result.history.to_csv(out / "history.csv", index=False)
    result.gradients.to_csv(out / "gradients.csv", index=False)
    result.divergence.to_csv(out / "divergence.csv", index=False)
    summary = result.summary()
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    final = summary["final_loss"]
    print(
        f"trained {spec.name} for {result.steps_done} steps on {result.device} "
        f"({result.steps_per_second:.1f} steps/s); final loss "
        + ", ".join(f"{k} {v:.4f}" for k, v in final.items())
        + f"; wrote {out}/"
    )
    if result.stop_reason:
        print(f"sharecore: warning: {result.stop_reason}", file=sys.stderr)
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
    t.add_argument("--out", default="runs/latest", help="output folder (default runs/latest)")
    try:
        args = parser.parse_args(argv)
        return {"presets": _cmd_presets, "params": _cmd_params, "train": _cmd_train}[args.command](args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except ValueError as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        return _fail("interrupted")
