"""Extract GH-Feat features of image files into an .npz (one array per level).

    python examples/extract_features.py digits/ --levels 5 8 --out feats.npz
    python examples/extract_features.py a.png b.png --model ffhq256 --resize
    python examples/extract_features.py digits/ --checkpoint runs/enc/model.safetensors
    python examples/extract_features.py digits/ --random-weights      # pipeline check only

The .npz holds ``level_<k>`` arrays ``[N, dim_k]`` (float32; level 1 = finest layer, level L = most
abstract; ``ghfeat.level_dims`` gives the dims), ``files`` (the input paths, in order) and
``levels``. With ``--flatten`` it holds one ``features`` array ``[N, sum(dims)]`` instead,
levels concatenated in the order given.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import ghfeat
from ghfeat._images import list_image_files
from ghfeat._io import atomic_open
from ghfeat._script import check_args, parser, run
from ghfeat.api import parse_levels


def build_encoder(name: str, checkpoint: str | None, random_weights: bool):
    if random_weights:
        print("!! --random-weights: the encoder is randomly initialised; the features are meaningless")
        return ghfeat.create_encoder(name)
    return ghfeat.create_encoder(name, pretrained=checkpoint is None, checkpoint_path=checkpoint)


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    ap.add_argument("--model", default="mnist32", help="encoder registry name (ghfeat list --kind encoder)")
    ap.add_argument("--checkpoint", help="local encoder weights (.safetensors or a saved folder)")
    ap.add_argument("--random-weights", action="store_true", help="random init (pipeline check only)")
    ap.add_argument("--levels", type=int, nargs="*", default=None, help="levels to keep (default: all)")
    ap.add_argument("--flatten", action="store_true", help="one [N, sum(dims)] array instead of one per level")
    ap.add_argument("--resize", action="store_true", help="resize (shorter side + centre crop) to the model size")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    ap.add_argument("--out", default="features.npz")
    args = ap.parse_args(argv)
    check_args(args, device="--device", at_least={"--batch-size": 1}, outputs={"--out": False})

    files: list[Path] = []
    for item in args.inputs:
        p = Path(item)
        files += list_image_files(p) if p.is_dir() else [p]
    enc = build_encoder(args.model, args.checkpoint, args.random_weights).to(args.device)
    levels = parse_levels(args.levels or None, enc.num_layers)
    feats = ghfeat.extract(files, levels=levels, model=enc, flatten=args.flatten, batch_size=args.batch_size,
                           resize=args.resize, dtype=torch.bfloat16 if args.bf16 else None)
    arrays = ({"features": feats.numpy()} if args.flatten
              else {f"level_{k}": v.numpy() for k, v in feats.items()})
    out = args.out if str(args.out).endswith(".npz") else f"{args.out}.npz"
    with atomic_open(out, "wb", what="--out") as fh:          # all or nothing
        np.savez(fh, files=np.array([str(f) for f in files]), levels=np.array(levels), **arrays)
    args.out = out
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"wrote {args.out}: {len(files)} images; {shapes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main, "extract_features.py"))
