"""``ghfeat convert PATH [--name NAME] [--out DIR] [--which Gs|G]``.

Converts an official StyleGAN / GH-Feat TF pickle or a genforce ``.pth`` checkpoint, checks it
strictly, and installs the result into the ghfeat cache (where ``create_*(name, pretrained=True)``
finds it) or writes Hub-ready folders with ``--out``. Nothing in the file is executed.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys


def _parser() -> argparse.ArgumentParser:
    from ..cli import HelpFormatter
    p = argparse.ArgumentParser(
        prog="ghfeat convert", formatter_class=HelpFormatter,
        description="Convert official GH-Feat / StyleGAN v1 weights (TF pickle or genforce .pth) to ghfeat "
                    "safetensors, without TensorFlow and without running any code from the file.",
        epilog="examples:\n"
               "  ghfeat convert ghfeat-encoder-ffhq-256.pkl            # installs encoder ffhq256 + stylegan-ffhq256 G/D\n"
               "  ghfeat convert stylegan-bedrooms-256.pkl              # installs stylegan-bedroom256 G/D\n"
               "  ghfeat convert my_stylegan.pth --name mydata64 --out hub/  # Hub-ready folders")
    p.add_argument("path", help="stylegan-*-256.pkl, ghfeat-encoder-*-256.pkl or a genforce .pth")
    p.add_argument("--name", default=None,
                   help="registry tag, e.g. ffhq256 (G/D are installed as stylegan-<tag>); default: from the file name")
    p.add_argument("--out", default=None,
                   help="write Hub-ready folders DIR/generator, DIR/discriminator (, DIR/encoder) instead of "
                        "installing into the cache")
    p.add_argument("--which", choices=("Gs", "G"), default="Gs",
                   help="generator to convert: Gs = smoothed (default, what GH-Feat decodes with) or G")
    p.add_argument("--genforce-kwargs", default=None, metavar="JSON",
                   help="genforce .pth only: the settings a state dict cannot tell, as genforce names them, e.g. "
                        "'{\"fused_scale\": true, \"mapping_lr_mul\": 0.01}' (fused_scale, mapping_lr_mul, "
                        "use_wscale, final_tanh, truncation_psi, truncation_layers, minibatch_std_group_size); "
                        "those not given are assumed to be genforce's defaults and listed in the report")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return p


def _summary(result: dict) -> str:
    lines = [f"converted {result['source']} ({result['format']}, sha256 {result['sha256'][:16]}...)"]
    for entry, what in result.get("contents", {}).items():
        lines.append(f"  in the file: {entry!r}: {what}")
    for kind, n in result["networks"].items():
        cfg = n["config"]
        shape = (f"{cfg['resolution']}px" if "resolution" in cfg else
                 f"{cfg.get('backbone', '?')}, input {cfg.get('input_size', '?')}")
        lines.append(f"  {kind:<13} {n['name']:<22} {n['class']} ({shape}, {n['num_params']:,} params) "
                     f"from {n['source']}")
        if n["ignored"]:
            lines.append(f"  {'':<13} skipped {len(n['ignored'])} progressive-growing leftovers: "
                         + ", ".join(i.split(' ')[0] for i in n["ignored"][:4])
                         + (" ..." if len(n["ignored"]) > 4 else ""))
        if n.get("assumed"):
            lines.append(f"  {'':<13} assumed (a .pth does not store them; --genforce-kwargs to change): "
                         + ", ".join(f"{k}={v!r}" for k, v in n["assumed"].items()))
        for key, label in (("path", "installed"), ("out", "wrote")):
            if key in n:
                lines.append(f"  {'':<13} {label} {n[key]}")
    return "\n".join(lines)


def convert_main(argv=None) -> int:
    """Entry point of ``ghfeat convert`` (returns the exit status; errors exit with a message)."""
    args = _parser().parse_args(argv)
    from .api import convert
    try:
        kwargs = None
        if args.genforce_kwargs is not None:
            try:
                kwargs = json.loads(args.genforce_kwargs)
            except json.JSONDecodeError as exc:
                raise ValueError(f"--genforce-kwargs is not valid JSON ({exc})") from None
            if not isinstance(kwargs, dict):
                raise ValueError("--genforce-kwargs must be a JSON object, e.g. '{\"fused_scale\": true}'")
        result = convert(args.path, name=args.name, out=args.out, which=args.which, genforce_kwargs=kwargs)
    except (ValueError, OSError, pickle.UnpicklingError, ImportError) as exc:
        if args.debug:
            raise
        print(f"ghfeat convert: error: {exc}", file=sys.stderr)
        return 2
    print(_summary(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(convert_main())
