"""Command line: ``ghfeat <command>`` (or ``python -m ghfeat <command>``).

    ghfeat demo [--out DIR]                 features + reconstruction/style-mixing grids on bundled digits
    ghfeat list [PATTERN]                   registered models and what they are for
    ghfeat extract IMAGES... --levels 5 9   features of image files -> .npz
    ghfeat edit IMAGES... --levels 7        move codes along a y-space direction (SeFa or a file) -> PNG grid
    ghfeat export NAME --format onnx        encoder / generator synthesis -> ONNX, TorchScript, ExportedProgram
    ghfeat convert FILE [--name N]          official TF pickle / genforce .pth -> safetensors
    ghfeat download NAME                    fetch + verify + convert an official file (pretrained=True's download)
    ghfeat publish NAME REPO_ID             push a converted model + model card to the Hub
    ghfeat train encoder|generator ...      train (works under torchrun too)
    ghfeat eval generator G --data mnist:R  sample quality (classifier FD, class entropy, confidence)
    ghfeat app [--model mnist32]            local web page: reconstruct, mix levels, edit (extra: ghfeat[app])
    ghfeat --version

A user error prints one line to stderr and exits with status 2 (1 for an unexpected error);
``--debug`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _bundled_digits():
    """The ten bundled MNIST test digits (one per class, 0..9) as ``[10, 3, 32, 32]`` in [-1, 1]."""
    import numpy as np
    import torch
    from PIL import Image

    strip = np.asarray(Image.open(Path(__file__).parent / "assets" / "mnist_test_digits.png").convert("L"))
    x = torch.from_numpy(strip.copy()).float().div(127.5).sub(1.0)      # [32, 320]
    return x.view(32, 10, 32).permute(1, 0, 2)[:, None].repeat(1, 3, 1, 1).contiguous()


def _default_models(random_weights: bool):
    """The embedded default (mnist32 encoder + generator); random weights only when asked."""
    import ghfeat

    if random_weights:
        print("!! --random-weights: the encoder and generator are RANDOMLY INITIALISED; features and "
              "images below are meaningless (this only exercises the pipeline).", flush=True)
        return ghfeat.create_encoder("mnist32"), ghfeat.create_generator("stylegan-mnist32")
    from .pretrained import WeightsError
    try:
        return (ghfeat.create_encoder("mnist32", pretrained=True),
                ghfeat.create_generator("stylegan-mnist32", pretrained=True))
    except WeightsError as exc:
        raise SystemExit(f"{exc}\n\nThe embedded mnist32 weights are not available in this install. "
                         "Run `ghfeat demo --random-weights` to exercise the pipeline on random weights.")


def cmd_demo(args) -> int:
    import torch

    import ghfeat
    from ._io import check_writable
    from .api import save_grid

    out = check_writable(args.out, folder=True, what="--out")
    torch.manual_seed(0)
    enc, gen = _default_models(args.random_weights)
    images = ghfeat.load_images(_bundled_digits(), channels=enc.in_channels)   # the encoder's channels
    out.mkdir(parents=True, exist_ok=True)
    feats = ghfeat.extract(images, levels=None, model=enc)
    print(f"GH-Feat of {len(images)} bundled MNIST digits with {enc.registry_name!r} "
          f"({enc.num_layers} levels; level 1 = finest, level {enc.num_layers} = most abstract):")
    for level, f in feats.items():
        print(f"  level {level:>2}: {tuple(f.shape)}  mean |y| = {f.abs().mean():.4f}")
    rec = ghfeat.reconstruct(images, encoder=enc, generator=gen)
    mse = (rec - images).pow(2).mean().item()
    save_grid(torch.cat([images, rec]), out / "reconstruction.png", nrow=len(images))
    ghfeat.style_mix(images[:5], images[5:], levels=list(range(enc.num_layers // 2 + 1, enc.num_layers + 1)),
                     encoder=enc, generator=gen, out=out / "style_mixing.png")
    save_grid(gen.sample(64, seed=0, truncation_psi=1.0, randomize_noise=False), out / "samples.png", nrow=8)
    print(f"reconstruction MSE (images in [-1, 1]): {mse:.4f}")
    print(f"wrote {out / 'reconstruction.png'} (top: inputs, bottom: reconstructions), "
          f"{out / 'style_mixing.png'} (coarse levels from the left column) and {out / 'samples.png'} "
          "(64 random samples of the generator)")
    return 0


def cmd_list(args) -> int:
    import ghfeat

    rows = ghfeat.list_models(args.pattern, kind=args.kind, pretrained=args.pretrained, with_info=True)
    if args.pretrained:
        from .pretrained import get_pretrained_cfg, is_cached, weights_availability
    for kind, name, desc in rows:
        if not args.pretrained:
            print(f"{kind:<14} {name:<22} {desc}")
            continue
        cfg = get_pretrained_cfg(kind, name)
        tag = ("[in the package]" if cfg.embedded_path else
               "[cached]" if is_cached(kind, name) else "[downloads on first use]")
        print(f"{kind:<14} {name:<22} {tag} {desc}")
        print(f"{'':<14} {'':<22} weights: {weights_availability(cfg)}")
    if not rows:
        print(f"no model matches {args.pattern!r}")
    return 0


def cmd_extract(args) -> int:
    import numpy as np

    import ghfeat
    from ._images import list_image_files
    from ._io import check_writable

    check_writable(args.out, folder=False, what="--out")
    out = Path(args.out if str(args.out).endswith(".npz") else f"{args.out}.npz")   # np.savez adds .npz
    check_writable(out, folder=False, what="--out")
    files = []
    for p in args.images:                     # folders expand to their image files
        if not p.exists():
            raise FileNotFoundError(f"image file {str(p)!r} does not exist")
        files.extend(list_image_files(p) if p.is_dir() else [p])
    if args.random_weights and args.checkpoint:
        raise ValueError("give --checkpoint or --random-weights, not both")
    if args.random_weights:
        print("!! --random-weights: the encoder is RANDOMLY INITIALISED; the features are meaningless.",
              file=sys.stderr, flush=True)
        model = ghfeat.create_encoder(args.model)
    elif args.checkpoint:
        model = ghfeat.create_encoder(args.model, checkpoint_path=args.checkpoint)
    else:
        model = ghfeat.create_encoder(args.model, pretrained=True)
    feats = ghfeat.extract([str(p) for p in files], levels=args.levels, model=model,
                           resize=args.resize, batch_size=args.batch_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **{f"level_{k}": v.float().cpu().numpy() for k, v in feats.items()},
             files=np.array([str(p) for p in files]))
    args.out = out
    print(f"wrote {args.out}: " + ", ".join(f"level {k} {tuple(v.shape)}" for k, v in feats.items()))
    return 0


def _load_direction(spec: str, generator, levels):
    """``sefa:J`` (the J-th closed-form direction of the first level; ``sefa:J:shift`` etc. picks the
    part) or a ``.npy`` / ``.pt`` file holding a ``[2C]`` vector."""
    import numpy as np
    import torch

    from .editing import sefa_directions

    if spec.startswith("sefa:"):
        parts = spec.split(":")
        try:
            j = int(parts[1])
        except (IndexError, ValueError):
            raise ValueError(f"--direction {spec!r}: expected sefa:J (J = 0 is the top direction), "
                             "optionally sefa:J:scale|shift|both") from None
        if not levels:
            raise ValueError("--direction sefa:J needs --levels (the directions are per level)")
        dirs, _ = sefa_directions(generator, levels[0], part=parts[2] if len(parts) > 2 else "both")
        if not 0 <= j < len(dirs):
            raise ValueError(f"--direction {spec!r}: level {levels[0]} has {len(dirs)} directions (0..{len(dirs) - 1})")
        return dirs[j]
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--direction {spec!r} is neither sefa:J nor an existing .npy/.pt file")
    v = np.load(path) if path.suffix == ".npy" else torch.load(path, weights_only=True)
    return torch.as_tensor(v).float().reshape(-1)


def cmd_edit(args) -> int:
    import ghfeat
    from ._io import check_writable
    from .editing import edit

    check_writable(args.out, folder=False, what="--out")
    if args.random_weights and (args.checkpoint or args.generator_checkpoint):
        raise ValueError("give --checkpoint/--generator-checkpoint or --random-weights, not both")
    if args.random_weights:
        print("!! --random-weights: the encoder and generator are RANDOMLY INITIALISED; the grid is "
              "meaningless (pipeline check only).", file=sys.stderr, flush=True)
        enc = ghfeat.create_encoder(args.model)
        gen = ghfeat.create_generator(enc.generator_name)
    else:
        enc = (ghfeat.create_encoder(args.model, checkpoint_path=args.checkpoint) if args.checkpoint
               else ghfeat.create_encoder(args.model, pretrained=True))
        gen = (ghfeat.create_generator(enc.generator_name, checkpoint_path=args.generator_checkpoint)
               if args.generator_checkpoint else ghfeat.create_generator(enc.generator_name, pretrained=True))
    direction = _load_direction(args.direction, gen, args.levels)
    grid = edit([str(p) for p in args.images], direction, args.strengths, args.levels, encoder=enc,
                generator=gen, out=args.out, resize=args.resize)
    print(f"wrote {args.out}: {grid.shape[0]} images (rows) x strengths {args.strengths} (columns) at "
          f"levels {args.levels}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = argparse.ArgumentParser(prog="ghfeat", description="GH-Feat: generative hierarchical features.")
    ap.add_argument("--version", action="version", version=f"ghfeat {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="features + reconstruction on bundled MNIST digits", parents=[common])
    p.add_argument("--out", default="ghfeat_demo", help="output folder for the PNG grids")
    p.add_argument("--random-weights", action="store_true", help="use random weights (pipeline check only)")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("list", help="list registered models", parents=[common])
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--kind", choices=["generator", "discriminator", "encoder"])
    p.add_argument("--pretrained", action="store_true",
                   help="only models with pretrained weights, and whether each is available here")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("extract", help="extract features of image files into an .npz", parents=[common])
    p.add_argument("images", nargs="+", type=Path, help="image files and/or folders of images")
    p.add_argument("--model", default="mnist32", help="encoder registry name or saved folder")
    p.add_argument("--checkpoint", default=None, help="weights of --model (.safetensors or a saved folder)")
    p.add_argument("--random-weights", action="store_true", help="random encoder weights (pipeline check only)")
    p.add_argument("--levels", type=int, nargs="*", default=None, help="paper levels (1 = finest); default all")
    p.add_argument("--resize", action="store_true", help="resize inputs to the model's input size")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default="features.npz")
    p.set_defaults(func=cmd_extract)
    p = sub.add_parser("edit", help="edit images along a y-space direction -> PNG grid", parents=[common])
    p.add_argument("images", nargs="+", type=Path, help="image files")
    p.add_argument("--direction", default="sefa:0",
                   help="sefa:J[:scale|shift|both] (closed-form, J = 0 strongest) or a .npy/.pt [2C] vector")
    p.add_argument("--levels", type=int, nargs="+", required=True, help="paper levels to edit (1 = finest)")
    p.add_argument("--strengths", type=float, nargs="+", default=[-3.0, -1.5, 0.0, 1.5, 3.0])
    p.add_argument("--model", default="mnist32", help="encoder registry name (its paired generator is used)")
    p.add_argument("--checkpoint", default=None, help="encoder weights (.safetensors or a saved folder)")
    p.add_argument("--generator-checkpoint", default=None, help="generator weights")
    p.add_argument("--random-weights", action="store_true", help="random weights (pipeline check only)")
    p.add_argument("--resize", action="store_true", help="resize inputs to the model's input size")
    p.add_argument("--out", default="edit.png")
    p.set_defaults(func=cmd_edit)
    sub.add_parser("export", help="export a model to ONNX / TorchScript / ExportedProgram (see `ghfeat export -h`)",
                   add_help=False)
    sub.add_parser("convert", help="convert official weights (see `ghfeat convert -h`)", add_help=False)
    sub.add_parser("train", help="train an encoder or a generator (see `ghfeat train -h`)", add_help=False)
    sub.add_parser("eval", help="sample quality of an MNIST generator (see `ghfeat eval -h`)", add_help=False)
    sub.add_parser("download", help="fetch + convert an official file (see `ghfeat download -h`)", add_help=False)
    sub.add_parser("publish", help="push a converted model to the Hub (see `ghfeat publish -h`)", add_help=False)
    sub.add_parser("app", help="local web page: reconstruct, mix levels, edit (see `ghfeat app -h`)", add_help=False)
    return ap


def _user_error(exc: BaseException) -> bool:
    from .pretrained import WeightsError
    return isinstance(exc, (ValueError, TypeError, OSError, ImportError, WeightsError))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = argv[0] if argv else "ghfeat"
    try:
        if command == "convert":
            from .convert.cli import convert_main
            return convert_main(argv[1:]) or 0
        if command == "train":
            from .train.cli import train_main
            return train_main(argv[1:]) or 0
        if command == "eval":
            from .metrics import eval_main
            return eval_main(argv[1:]) or 0
        if command == "download":
            from .download import download_main
            return download_main(argv[1:]) or 0
        if command == "export":
            from .export import export_main
            return export_main(argv[1:]) or 0
        if command == "app":
            from .app import app_main
            return app_main(argv[1:]) or 0
        if command == "publish":
            from .publish import publish_main
            return publish_main(argv[1:]) or 0
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"ghfeat {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:             # one line for the user; --debug for the traceback
        if debug:
            raise
        msg = str(exc).strip() or type(exc).__name__
        if _user_error(exc):
            print(f"ghfeat {command}: error: {msg}", file=sys.stderr)
            return 2
        print(f"ghfeat {command}: internal error: {type(exc).__name__}: {msg} (run with --debug for the "
              "traceback and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
