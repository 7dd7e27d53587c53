"""``ghfeat convert PATH [--name NAME] [--out DIR] [--which Gs|G]``.

Converts an official StyleGAN / GH-Feat TF pickle or a genforce ``.pth`` checkpoint, checks it
strictly, and installs the result into the ghfeat cache (where ``create_*(name, pretrained=True)``
finds it) or writes Hub-ready folders with ``--out``. Nothing in the file is executed.
"""
from __future__ import annotations

import argparse
import pickle
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ghfeat convert",
        description="Convert official GH-Feat / StyleGAN v1 weights (TF pickle or genforce .pth) to ghfeat "
                    "safetensors, without TensorFlow and without running any code from the file.",
        epilog="examples:\n"
               "  ghfeat convert ghfeat-encoder-ffhq-256.pkl            # installs encoder ffhq256 + stylegan-ffhq256 G/D\n"
               "  ghfeat convert stylegan-bedrooms-256.pkl              # installs stylegan-bedroom256 G/D\n"
               "  ghfeat convert my_stylegan.pth --name mydata64 --out hub/  # Hub-ready folders",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="stylegan-*-256.pkl, ghfeat-encoder-*-256.pkl or a genforce .pth")
    p.add_argument("--name", default=None,
                   help="registry tag, e.g. ffhq256 (G/D are installed as stylegan-<tag>); default: from the file name")
    p.add_argument("--out", default=None,
                   help="write Hub-ready folders DIR/generator, DIR/discriminator (, DIR/encoder) instead of "
                        "installing into the cache")
    p.add_argument("--which", choices=("Gs", "G"), default="Gs",
                   help="generator to convert: Gs = smoothed (default, what GH-Feat decodes with) or G")
    return p


def _summary(result: dict) -> str:
    lines = [f"converted {result['source']} ({result['format']}, sha256 {result['sha256'][:16]}...)"]
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
        for key, label in (("path", "installed"), ("out", "wrote")):
            if key in n:
                lines.append(f"  {'':<13} {label} {n[key]}")
    return "\n".join(lines)


def convert_main(argv=None) -> int:
    """Entry point of ``ghfeat convert`` (returns the exit status; errors exit with a message)."""
    args = _parser().parse_args(argv)
    from .api import convert
    try:
        result = convert(args.path, name=args.name, out=args.out, which=args.which)
    except (ValueError, FileNotFoundError, pickle.UnpicklingError, ImportError) as exc:
        print(f"ghfeat convert: error: {exc}", file=sys.stderr)
        return 2
    print(_summary(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(convert_main())
