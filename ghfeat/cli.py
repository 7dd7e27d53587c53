"""Command line: ``ghfeat <command>`` (or ``python -m ghfeat <command>``).

    ghfeat demo [--out DIR]                 features + reconstruction/style-mixing grids on bundled digits
    ghfeat list [PATTERN]                   registered models and what they are for
    ghfeat sample-digits [--out DIR]        write the ten bundled MNIST test digits as PNGs (to try the rest)
    ghfeat extract IMAGES... --levels 5 9   features of image files -> .npz
    ghfeat reconstruct IMAGES... --out DIR  G(E(x)) of image files -> one PNG each (+ --grid comparison)
    ghfeat mix --content A... --style B...  style mixing grid (paper Fig. 3) -> PNG
    ghfeat edit IMAGES... --levels 7        move codes along a y-space direction (SeFa or a file) -> PNG grid
    ghfeat download-data mnist --out DIR    fetch MNIST / Fashion-MNIST (checksummed, resumable)
    ghfeat export NAME --format onnx        encoder / generator synthesis -> ONNX, TorchScript, ExportedProgram
    ghfeat convert FILE [--name N]          official TF pickle / genforce .pth -> safetensors
    ghfeat download NAME                    fetch + verify + convert an official file (pretrained=True's download)
    ghfeat publish NAME REPO_ID             push a converted model + model card to the Hub
    ghfeat train encoder|generator ...      train (works under torchrun too)
    ghfeat eval card MODEL --data mnist:R   evaluation suite: generator, encoder, probe, 1-NN, mixing (ghfeat eval -h)
    ghfeat app [--model mnist32]            local web page: reconstruct, mix levels, edit (extra: ghfeat[app])
    ghfeat --version

A user error prints one line to stderr and exits with status 2 (1 for an unexpected error);
``--debug`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path


def _bundled_digits():
    """The ten bundled MNIST test digits (one per class, 0..9) as ``[10, 3, 32, 32]`` in [-1, 1]."""
    from .api import sample_digits
    return sample_digits().repeat(1, 3, 1, 1)


# API words in error messages -> the command line's flags (the API raises the message)
_FLAG_WORDS = (("pass resize=True with size=...", "pass --resize"), ("resize=True", "--resize"),
               ("checkpoint_path=...", "--checkpoint"), ("batch_size", "--batch-size"))


def _flagify(msg: str) -> str:
    for api, flag in _FLAG_WORDS:
        msg = msg.replace(api, flag)
    return msg


def _image_files(paths) -> list[Path]:
    """Image files named on the command line; folders expand to their image files (sorted)."""
    from ._images import list_image_files

    files = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"image file {str(p)!r} does not exist")
        files.extend(list_image_files(p) if p.is_dir() else [p])
    return files


def _encoder_and_generator(args, what: str = "the output"):
    """The models of --model / --checkpoint / --generator-checkpoint / --random-weights."""
    import ghfeat

    if args.random_weights and (args.checkpoint or getattr(args, "generator_checkpoint", None)):
        raise ValueError("give --checkpoint/--generator-checkpoint or --random-weights, not both")
    if args.random_weights:
        print(f"!! --random-weights: the encoder and generator are RANDOMLY INITIALISED; {what} is "
              "meaningless (pipeline check only).", file=sys.stderr, flush=True)
        enc = ghfeat.create_encoder(args.model)
        return enc, ghfeat.create_generator(enc.generator_name)
    enc = (ghfeat.create_encoder(args.model, checkpoint_path=args.checkpoint) if args.checkpoint
           else ghfeat.create_encoder(args.model, pretrained=True))
    gen = (ghfeat.create_generator(enc.generator_name, checkpoint_path=args.generator_checkpoint)
           if args.generator_checkpoint else ghfeat.create_generator(enc.generator_name, pretrained=True))
    return enc, gen


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
    from ._io import atomic_open, check_writable

    check_writable(args.out, folder=False, what="--out")
    out = Path(args.out if str(args.out).endswith(".npz") else f"{args.out}.npz")   # np.savez adds .npz
    check_writable(out, folder=False, what="--out")
    files = _image_files(args.images)         # folders expand to their image files
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
    with atomic_open(out, "wb", what="--out") as f:                   # all or nothing
        np.savez(f, **{f"level_{k}": v.float().cpu().numpy() for k, v in feats.items()},
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
    if path.suffix not in (".npy", ".pt", ".pth"):
        raise ValueError(f"--direction {spec!r}: expected a .npy or .pt file holding a [2C] vector, got a "
                         f"{path.suffix or 'suffix-less'} file")
    try:
        v = np.load(path, allow_pickle=False) if path.suffix == ".npy" else torch.load(path, weights_only=True)
    except Exception as exc:     # pickled objects (refused by weights_only / allow_pickle=False), a bad file
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"--direction {spec!r} cannot be read as a plain array ({type(exc).__name__}: "
                         f"{why[:200]}); save the direction itself: np.save(path, vector) or "
                         "torch.save(tensor, path)") from None
    if isinstance(v, dict):      # {level: [2C_k]} (ghfeat.editing.edit_codes checks it)
        return v
    if not isinstance(v, (np.ndarray, torch.Tensor)) or (isinstance(v, np.ndarray) and v.dtype.kind not in "fiu"):
        raise ValueError(f"--direction {spec!r} holds a {type(v).__name__}, not a [2C] float vector")
    v = torch.as_tensor(v).float()
    if v.ndim != 1:
        raise ValueError(f"--direction {spec!r} has shape {tuple(v.shape)}; expected one [2C] vector (1-D). "
                         "Pick one row (e.g. np.save(path, directions[0])); it is not flattened for you")
    return v


def cmd_edit(args) -> int:
    from ._io import check_writable
    from .editing import edit

    check_writable(args.out, folder=False, what="--out")
    files = _image_files(args.images)
    enc, gen = _encoder_and_generator(args, "the grid")
    direction = _load_direction(args.direction, gen, args.levels)
    grid = edit([str(p) for p in files], direction, args.strengths, args.levels, encoder=enc,
                generator=gen, out=args.out, resize=args.resize, originals=True)
    print(f"wrote {args.out}: {grid.shape[0]} images (rows); columns: input, unedited reconstruction, "
          f"then strengths {args.strengths} at levels {args.levels}")
    return 0


def cmd_sample_digits(args) -> int:
    from ._io import check_writable
    from .api import save_sample_digits

    check_writable(args.out, folder=True, what="--out")
    files = save_sample_digits(args.out)
    print(f"wrote {len(files)} MNIST test digits (32x32 grayscale, classes 0..9): {files[0]} .. {files[-1]}")
    return 0


def cmd_reconstruct(args) -> int:
    import torch

    import ghfeat
    from ._io import check_writable
    from .api import save_grid

    out = check_writable(args.out, folder=True, what="--out")
    if args.grid:
        check_writable(args.grid, folder=False, what="--grid")
    files = _image_files(args.images)
    names = [p.stem for p in files]
    if len(set(names)) < len(names):      # same stem in two folders: keep the files apart
        names = [f"{i:04d}_{n}" for i, n in enumerate(names)]
    enc, gen = _encoder_and_generator(args, "every reconstruction")
    x = ghfeat.load_images([str(p) for p in files], size=enc.input_spec["size"], resize=args.resize,
                           channels=enc.in_channels)
    rec = ghfeat.reconstruct(x, encoder=enc, generator=gen, batch_size=args.batch_size).clamp(-1, 1)
    out.mkdir(parents=True, exist_ok=True)
    for name, img in zip(names, rec):
        save_grid(img[None], out / f"{name}.png", nrow=1, padding=0)
    if args.grid:
        save_grid(torch.stack([x, rec], dim=1), args.grid, nrow=2)
    mse = (rec - x).pow(2).mean().item()
    print(f"wrote {len(files)} reconstructions to {out} ({enc.input_size}x{enc.input_size}, named after "
          f"the inputs); MSE to the inputs (in [-1, 1]): {mse:.4f}"
          + (f"; {args.grid}: input | reconstruction per row" if args.grid else ""))
    return 0


def cmd_mix(args) -> int:
    import ghfeat
    from ._io import check_writable

    check_writable(args.out, folder=False, what="--out")
    content, style = _image_files(args.content), _image_files(args.style)
    enc, gen = _encoder_and_generator(args, "the grid")
    L = enc.num_layers
    levels = args.levels if args.levels is not None else list(range(L // 2 + 1, L + 1))
    grid = ghfeat.style_mix([str(p) for p in content], [str(p) for p in style], levels, encoder=enc,
                            generator=gen, out=args.out, resize=args.resize, batch_size=args.batch_size)
    print(f"wrote {args.out}: {grid.shape[0] - 1} style images (left column, giving levels {levels}) x "
          f"{grid.shape[1] - 1} content images (top row)")
    return 0


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` shows each option's default (as ``ArgumentDefaultsHelpFormatter``, but not the
    uninformative ``None`` / ``False`` of optional values and on/off flags) and keeps the
    descriptions' line breaks. Used by every ``ghfeat`` subcommand."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default is None or default is False or default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"

    def add_argument(self, action):
        if action.help is None and self._get_help_string(action):   # no help text: still show the default
            action = copy.copy(action)
            action.help = ""
            action.help = self._get_help_string(action)
        super().add_argument(action)


def _model_flags(p, what: str = "encoder registry name (its paired generator decodes)") -> None:
    p.add_argument("--model", default="mnist32", help=what)
    p.add_argument("--checkpoint", default=None, help="encoder weights (.safetensors or a saved folder)")
    p.add_argument("--generator-checkpoint", default=None, help="generator weights (default: the paired "
                   "generator's pretrained weights)")
    p.add_argument("--random-weights", action="store_true", help="random weights (pipeline check only)")
    p.add_argument("--resize", action="store_true", help="resize inputs to the model's input size "
                   "(shorter side, then centre crop); without it other sizes are refused")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = argparse.ArgumentParser(prog="ghfeat", description="GH-Feat: generative hierarchical features.",
                                 formatter_class=HelpFormatter)
    ap.add_argument("--version", action="version", version=f"ghfeat {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = ap.add_subparsers(dest="command", required=True)

    def add(name, help, **kw):
        return sub.add_parser(name, help=help, description=help, parents=[common], formatter_class=HelpFormatter,
                              **kw)

    p = add("demo", "features + reconstruction on bundled MNIST digits")
    p.add_argument("--out", default="ghfeat_demo", help="output folder for the PNG grids")
    p.add_argument("--random-weights", action="store_true", help="use random weights (pipeline check only)")
    p.set_defaults(func=cmd_demo)
    p = add("list", "list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern on the model names")
    p.add_argument("--kind", choices=["generator", "discriminator", "encoder"], help="only this kind")
    p.add_argument("--pretrained", action="store_true",
                   help="only models with pretrained weights, and whether each is available here")
    p.set_defaults(func=cmd_list)
    p = add("sample-digits", "write the ten bundled MNIST test digits (classes 0..9) as 32x32 PNGs")
    p.add_argument("--out", default="digits", help="output folder (digit_0.png .. digit_9.png)")
    p.set_defaults(func=cmd_sample_digits)
    p = add("extract", "extract features of image files into an .npz")
    p.add_argument("images", nargs="+", type=Path, help="image files and/or folders of images")
    p.add_argument("--model", default="mnist32", help="encoder registry name or saved folder")
    p.add_argument("--checkpoint", default=None, help="weights of --model (.safetensors or a saved folder)")
    p.add_argument("--random-weights", action="store_true", help="random encoder weights (pipeline check only)")
    p.add_argument("--levels", type=int, nargs="*", default=None, help="paper levels (1 = finest); default: all")
    p.add_argument("--resize", action="store_true", help="resize inputs to the model's input size")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--out", default="features.npz", help="output .npz (level_K arrays + files)")
    p.set_defaults(func=cmd_extract)
    p = add("reconstruct", "reconstruct image files through GH-Feat, G(E(x)) -> one PNG per input")
    p.add_argument("images", nargs="+", type=Path, help="image files and/or folders of images")
    _model_flags(p)
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--out", default="reconstructions", help="output folder (one <input name>.png each)")
    p.add_argument("--grid", default=None, help="also write a PNG with input | reconstruction per row")
    p.set_defaults(func=cmd_reconstruct)
    p = add("mix", "style mixing (paper Fig. 3): content images take the style images' codes at --levels")
    p.add_argument("--content", nargs="+", type=Path, required=True, help="content image files / folders (top row)")
    p.add_argument("--style", nargs="+", type=Path, required=True, help="style image files / folders (left column)")
    p.add_argument("--levels", type=int, nargs="+", default=None,
                   help="paper levels taken from the style images (1 = finest); default: the coarse half, "
                        "levels L/2+1..L (for mnist32: 5 6 7 8)")
    _model_flags(p)
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--out", default="mix.png", help="output PNG grid")
    p.set_defaults(func=cmd_mix)
    p = add("edit", "edit images along a y-space direction -> PNG grid (input, reconstruction, edits)")
    p.add_argument("images", nargs="+", type=Path, help="image files and/or folders of images")
    p.add_argument("--direction", default="sefa:0",
                   help="sefa:J[:scale|shift|both] (closed-form, J = 0 strongest) or a .npy/.pt [2C] vector")
    p.add_argument("--levels", type=int, nargs="+", required=True, help="paper levels to edit (1 = finest)")
    p.add_argument("--strengths", type=float, nargs="+", default=[-3.0, -1.5, 0.0, 1.5, 3.0],
                   help="one column per strength")
    _model_flags(p)
    p.add_argument("--out", default="edit.png", help="output PNG grid")
    p.set_defaults(func=cmd_edit)
    sub.add_parser("download-data", help="download MNIST / Fashion-MNIST (see `ghfeat download-data -h`)",
                   add_help=False)
    sub.add_parser("export", help="export a model to ONNX / TorchScript / ExportedProgram (see `ghfeat export -h`)",
                   add_help=False)
    sub.add_parser("convert", help="convert official weights (see `ghfeat convert -h`)", add_help=False)
    sub.add_parser("train", help="train an encoder or a generator (see `ghfeat train -h`)", add_help=False)
    sub.add_parser("eval", help="evaluate a trained model on MNIST: generator, encoder, probe, 1-NN, mixing, card (see `ghfeat eval -h`)", add_help=False)
    sub.add_parser("download", help="fetch + convert an official file (see `ghfeat download -h`)", add_help=False)
    sub.add_parser("publish", help="push a converted model to the Hub (see `ghfeat publish -h`)", add_help=False)
    sub.add_parser("app", help="local web page: reconstruct, mix levels, edit (see `ghfeat app -h`)", add_help=False)
    return ap


_LOCAL_COMMANDS = ("demo", "list", "sample-digits", "extract", "reconstruct", "mix", "edit")


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
            from .eval.cli import eval_main
            return eval_main(argv[1:]) or 0
        if command == "download-data":
            from .data_download import download_data_main
            return download_data_main(argv[1:]) or 0
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
        if command in _LOCAL_COMMANDS:
            msg = _flagify(msg)
        from ._compat import torchvision_mismatch
        install = None if _user_error(exc) else torchvision_mismatch(exc)
        if install:                       # a broken install, not a ghfeat bug
            print(f"ghfeat {command}: error: {install}", file=sys.stderr)
            return 2
        if _user_error(exc):
            print(f"ghfeat {command}: error: {msg}", file=sys.stderr)
            return 2
        print(f"ghfeat {command}: internal error: {type(exc).__name__}: {msg} (run with --debug for the "
              "traceback and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
