"""Style mixing (paper Fig. 3): a PNG grid with content images on top and style images on the left.

    python examples/style_mixing.py --out mix.png                       # bundled MNIST digits
    python examples/style_mixing.py --content a.png b.png --style c.png --levels 6 7 8
    python examples/style_mixing.py --random-weights --out mix.png      # pipeline check only

Cell (row j, column i) is content image i whose codes at ``--levels`` were replaced by style
image j's (high levels carry shape/pose, low levels colour). Default levels: the upper half.
"""
from __future__ import annotations

from pathlib import Path

import torch

import ghfeat
from ghfeat._script import check_args, parser, run

DIGITS = Path(ghfeat.__file__).parent / "assets" / "mnist_test_digits.png"


def bundled_digits() -> torch.Tensor:
    """The ten bundled MNIST test digits 0..9 as ``[10, 3, 32, 32]`` in [-1, 1]."""
    strip = ghfeat.load_images(DIGITS)                           # [1, 3, 32, 320]
    return strip[0].unflatten(2, (10, 32)).permute(2, 0, 1, 3).contiguous()


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--content", nargs="*", help="content images (default: bundled digits 0-4)")
    ap.add_argument("--style", nargs="*", help="style images (default: bundled digits 5-9)")
    ap.add_argument("--levels", type=int, nargs="*", help="levels taken from the style (default: upper half)")
    ap.add_argument("--encoder", default="mnist32")
    ap.add_argument("--generator", default=None, help="default: the encoder's paired generator")
    ap.add_argument("--encoder-checkpoint")
    ap.add_argument("--generator-checkpoint")
    ap.add_argument("--random-weights", action="store_true", help="random init (pipeline check only)")
    ap.add_argument("--resize", action="store_true")
    ap.add_argument("--out", default="style_mixing.png")
    ap.add_argument("--allow-mismatched-generator", action="store_true",
                    help="use --generator although the encoder was trained with another one")
    args = ap.parse_args(argv)
    check_args(args, outputs={"--out": False})

    pre = not args.random_weights
    if not pre:
        print("!! --random-weights: encoder and generator are randomly initialised; the grid is meaningless")
    enc = ghfeat.create_encoder(args.encoder, pretrained=pre and args.encoder_checkpoint is None,
                                checkpoint_path=args.encoder_checkpoint)
    gen = ghfeat.create_generator(args.generator or enc.generator_name,
                                  pretrained=pre and args.generator_checkpoint is None,
                                  checkpoint_path=args.generator_checkpoint)
    digits = bundled_digits() if not (args.content and args.style) else None
    content = args.content or digits[:5]
    style = args.style or digits[5:]
    L = enc.num_layers
    levels = args.levels or list(range(L // 2 + 1, L + 1))
    grid = ghfeat.style_mix(content, style, levels=levels, encoder=enc, generator=gen, out=args.out,
                            resize=args.resize, allow_mismatch=args.allow_mismatched_generator)
    print(f"wrote {args.out}: {grid.shape[0] - 1} style rows x {grid.shape[1] - 1} content columns, "
          f"levels {levels} from the style (1 = finest, {L} = most abstract)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main, "style_mixing.py"))
