"""Continue GH-Feat training of the shipped encoder on a new image folder, through the trainer's API.

    # Fashion-MNIST: export 10,000 training and 500 test images to PNG folders, then fine-tune
    python examples/finetune_encoder.py --from-idx data/fashion-mnist --run-dir runs/ft_fashion
    # any folder of images (grayscale or RGB; converted to what the model takes)
    python examples/finetune_encoder.py --train-dir my_images/ --eval-dir my_held_out/ --run-dir runs/ft
    python examples/finetune_encoder.py ... --steps 2000 --resume       # continue an interrupted run

The encoder starts from its pretrained weights (``encoder_pretrained=True``; or ``--checkpoint``)
and learns to invert the fixed pretrained generator on the new images with the recipe's loss
(``--recipe``, default ``mnist32-cpu``: pixel MSE). The generator is not retrained, so what the
encoder can reach is bounded by what the generator can draw: an MNIST generator has never drawn a
shoe. Reported: reconstruction MSE (pixels in [-1, 1]) on the held-out images before and after,
and a grid ``<run-dir>/finetune.png`` with rows: inputs, reconstructions before, after.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

import ghfeat
from ghfeat._io import atomic_open
from ghfeat._script import check_args, parser, run
from ghfeat.train import TrainConfig, train


def export_idx(root: str, out: Path, split: str, n: int, size: int = 32) -> Path:
    """The first ``n`` images of an IDX data set's ``split`` as PNG files in ``out`` (kept if done),
    padded to ``size`` as ghfeat's MNIST loader pads (28x28 digits centred in 32x32)."""
    import os
    import shutil

    from ghfeat.data import mnist_dataset
    if out.is_dir() and len(list(out.glob("*.png"))) >= n:
        return out
    ds = mnist_dataset(root, split, resolution=size)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")     # all files, then one rename: a killed
    shutil.rmtree(tmp, ignore_errors=True)                     # export never looks complete
    tmp.mkdir(parents=True)
    try:
        for i in range(min(n, len(ds))):
            Image.fromarray(ds.images[i].numpy(), mode="L").save(tmp / f"{split}_{i:05d}.png")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def reconstruction_mse(images: torch.Tensor, encoder, generator) -> tuple[float, torch.Tensor]:
    """Mean squared error per pixel of ``G.synthesis(E(x))`` against ``images`` ``[N, C, R, R]`` in
    [-1, 1], and the reconstructions (clamped)."""
    rec = ghfeat.reconstruct(images, encoder=encoder, generator=generator)[:, :images.shape[1]].clamp(-1, 1)
    return float((rec - images).square().mean()), rec


def main(argv=None) -> int:
    ap = parser(__doc__)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-idx", help="IDX data set folder (e.g. data/fashion-mnist): exported to PNGs")
    src.add_argument("--train-dir", help="folder of training images")
    ap.add_argument("--eval-dir", help="folder of held-out images (with --train-dir)")
    ap.add_argument("--n-train", type=int, default=10_000, help="images exported from --from-idx for training")
    ap.add_argument("--n-eval", type=int, default=500, help="held-out images for the before/after MSE")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--model", default="mnist32", help="encoder registry name (its pair is the generator)")
    ap.add_argument("--checkpoint", help="start from these encoder weights instead of the pretrained ones")
    ap.add_argument("--generator-checkpoint", help="generator weights instead of the pretrained pair")
    ap.add_argument("--recipe", default="mnist32-cpu")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    ap.add_argument("--grid", type=int, default=10, help="held-out images shown in the grid")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    check_args(args, at_least={"--n-train": 1, "--n-eval": 1, "--steps": 1, "--batch-size": 1, "--grid": 1},
               positive=("--lr",), outputs={"--run-dir": True, "--json": False})
    if args.train_dir and not args.eval_dir:
        raise ValueError("--train-dir needs --eval-dir (held-out images for the before/after figure)")
    run_dir = Path(args.run_dir)

    enc0 = ghfeat.create_encoder(args.model, pretrained=args.checkpoint is None, checkpoint_path=args.checkpoint).eval()
    size = enc0.input_spec["size"]
    if args.from_idx:
        data_dir = run_dir.parent / f"{run_dir.name}_data"
        train_dir = export_idx(args.from_idx, data_dir / "train", "train", args.n_train, size)
        eval_dir = export_idx(args.from_idx, data_dir / "test", "test", args.n_eval, size)
    else:
        train_dir, eval_dir = Path(args.train_dir), Path(args.eval_dir)

    G = ghfeat.create_generator(enc0.generator_name, pretrained=args.generator_checkpoint is None,
                                checkpoint_path=args.generator_checkpoint).eval()
    x = ghfeat.load_images(eval_dir, size=size, resize=True, channels=enc0.in_channels)[: args.n_eval]
    before, rec0 = reconstruction_mse(x, enc0, G)
    print(f"held-out reconstruction MSE before: {before:.4f} ({len(x)} images from {eval_dir})")

    fields = dict(task="encoder", data=str(train_dir), encoder=args.model, generator=enc0.generator_name,
                  total_steps=args.steps, progress=True)
    fields.update({"encoder_checkpoint": args.checkpoint} if args.checkpoint else {"encoder_pretrained": True})
    fields.update({"generator_checkpoint": args.generator_checkpoint} if args.generator_checkpoint
                  else {"generator_pretrained": True})
    fields.update({k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr)) if v is not None})
    cfg = TrainConfig.from_recipe(args.recipe, **fields)
    train(cfg, run_dir, resume="auto" if args.resume else False)

    enc1 = ghfeat.load_model(run_dir / "encoder").eval()
    after, rec1 = reconstruction_mse(x, enc1, G)
    print(f"held-out reconstruction MSE after {args.steps} steps: {after:.4f} (before {before:.4f})")
    k = min(args.grid, len(x))
    grid = torch.cat([x[:k], rec0[:k], rec1[:k]])
    path = ghfeat.save_grid(grid, run_dir / "finetune.png", nrow=k)
    print(f"wrote {path} (rows: held-out inputs, reconstructions before, after)")
    if args.json:
        with atomic_open(args.json, "w", what="--json") as fh:
            json.dump({"model": args.model, "train_dir": str(train_dir), "eval_dir": str(eval_dir),
                       "n_eval": len(x), "steps": args.steps, "recipe": args.recipe,
                       "mse_before": before, "mse_after": after}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main, "finetune_encoder.py"))
