"""``ghfeat train encoder|generator`` (also ``python -m ghfeat.train.cli ...``; works under torchrun).

    ghfeat train generator --run-dir runs/g data=mnist:/data/mnist
    ghfeat train encoder --run-dir runs/e data=mnist:/data/mnist generator_checkpoint=runs/g/generator
    ghfeat train encoder --run-dir runs/e --resume                  # continue exactly
    torchrun --standalone --nproc-per-node 8 -m ghfeat train encoder --config cfg.json --run-dir runs/e

Config = recipe defaults <- ``--config`` JSON (or, with ``--resume`` and no ``--config``, the run's
own ``config.json``) <- ``key=value`` overrides (values parsed as JSON: ``batch_size=8``,
``betas=[0,0.99]``, ``vgg_weights=null``; other text is a string).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import RECIPES, TASKS, TrainConfig, recipe_fields


def build_parser() -> argparse.ArgumentParser:
    from ..cli import HelpFormatter
    p = argparse.ArgumentParser(prog="ghfeat train", description=__doc__.split("\n\n")[0].replace("``", ""),
                                formatter_class=HelpFormatter,
                                epilog="Fields: " + ", ".join(TrainConfig.field_names()))
    p.add_argument("task", choices=TASKS, help="what to train")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config fields to change")
    p.add_argument("--config", help="JSON file with TrainConfig fields")
    p.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                   help="base recipe: official (default), paper, or mnist32-cpu (the shipped MNIST "
                        "models, sized for a 2-core CPU; see docs/mnist.md)")
    p.add_argument("--run-dir", required=True, help="run folder (checkpoints, logs, images, exports)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT|auto",
                   help="continue from the newest readable checkpoint of --run-dir (an error when there is "
                        "none), from the file CKPT, or with 'auto' from the newest one if any, else start")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop (with a checkpoint) at this step; the schedule still uses total_steps")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return p


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {path} is not valid JSON: {exc}") from exc
    if not isinstance(d, dict):
        raise ValueError(f"config file {path} must hold a JSON object {{\"field\": value, ...}}")
    return d


def resolve_config(args) -> TrainConfig:
    base: dict = {}
    stored = Path(args.run_dir) / "config.json"
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        base = _read_json(path)
    elif args.resume and stored.is_file():
        base = _read_json(stored)
    if base.get("task", args.task) != args.task:
        raise ValueError(f"the config is for task {base['task']!r} but `ghfeat train {args.task}` was run")
    overrides = TrainConfig.parse_overrides(args.overrides)
    if "task" in overrides:
        raise ValueError("give the task as the first argument (ghfeat train encoder|generator), not task=")
    recipe = recipe_fields(args.recipe, args.task) if args.recipe else {}
    return TrainConfig.from_dict({**recipe, **base, **overrides, "task": args.task})


def train_main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    if args.resume == "latest":
        args.resume = True
    try:
        cfg = resolve_config(args)
    except (ValueError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"ghfeat train: error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(cfg.to_json(), end="")
        return 0
    from .distributed import cleanup
    from .trainer import train
    try:
        result = train(cfg, args.run_dir, resume=args.resume, max_steps=args.max_steps)
    except Exception as exc:             # one line (per process); --debug for the traceback
        if args.debug:
            raise
        if isinstance(exc, (ValueError, OSError, FloatingPointError)):
            print(f"ghfeat train: error: {exc}", file=sys.stderr)
            return 1 if isinstance(exc, FloatingPointError) else 2
        print(f"ghfeat train: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    finally:
        cleanup()
    from .distributed import is_main
    if is_main():
        print(f"[ghfeat] stopped at step {result['step']} ({result['stopped_by']}); run folder {args.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(train_main())
