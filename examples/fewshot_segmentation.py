"""Few-shot segmentation with spatial GH-Feat (TPAMI spatial expansion) on MNIST.

    python examples/fewshot_segmentation.py --data data/mnist                  # N = 1, 5, 20
    python examples/fewshot_segmentation.py --data data/mnist --task halves --limit 200
    python examples/fewshot_segmentation.py --data DIR --random-weights --model tiny32 --limit 8 --shots 1

Labels are made from each digit (32x32, ink = gray > 0.5), three classes per pixel:
* ``--task ring`` (default): background / ink / the one-pixel ring around the ink (3x3 dilation minus
  the ink). Ring and far background have the same gray value, so a classifier needs context.
* ``--task halves``: background / upper half of the ink / lower half (split at the middle row of the
  ink's bounding box): needs to know where the digit is, not just whether a pixel is dark.

A per-pixel linear softmax classifier (standardised features, class-balanced cross-entropy, Adam,
full batch) is trained on ``N`` labelled training digits and evaluated on ``--limit`` held-out test
digits; reported is the mean IoU over the three classes (averaged over ``--repeats`` draws of the N
training digits). Features per pixel:
* ``pixels``: the raw 3x3 neighbourhood of the pixel (9 numbers) - the baseline;
* ``backbone``: the encoder backbone's own maps ``[R4, R5, R6]``, upsampled bilinearly;
* ``ghfeat``: spatial GH-Feat (:func:`ghfeat.extract_spatial`): the generator's feature map at each
  level when it synthesises from the encoder's codes, upsampled bilinearly, then standardised per
  image and channel. The maps are AdaIN outputs, ``norm(x) * (y_s + 1) + y_b``: every image scales
  and shifts every channel by its own style codes, so a pixel classifier fitted on one digit's maps
  does not transfer to another's; the per-image standardisation removes that affine;
* ``ghfeat-raw``: the same maps without it (``--kinds`` to add it).
"""
from __future__ import annotations

import json

import torch
import torch.nn.functional as F

import ghfeat
from ghfeat._io import atomic_open
from ghfeat._script import check_args, parser, run
from ghfeat.data import mnist_dataset

NUM_CLASSES = 3
KINDS = ("pixels", "backbone", "ghfeat", "ghfeat-raw")


def build_models(name: str, checkpoint, generator_checkpoint, random_weights: bool):
    if random_weights:
        print("!! --random-weights: randomly initialised encoder and generator; the IoUs measure random features")
        enc = ghfeat.create_encoder(name)
        return enc.eval(), ghfeat.create_generator(enc.generator_name).eval()
    enc = ghfeat.create_encoder(name, pretrained=checkpoint is None, checkpoint_path=checkpoint)
    gen = ghfeat.create_generator(enc.generator_name, pretrained=generator_checkpoint is None,
                                  checkpoint_path=generator_checkpoint)
    return enc.eval(), gen.eval()


def make_labels(images: torch.Tensor, task: str) -> torch.Tensor:
    """``images [N, C, R, R]`` in [-1, 1] -> int64 ``[N, R, R]`` in {0: background, 1, 2}."""
    ink = images.mean(1) > 0.0                                 # gray > 0.5 in [0, 1]
    labels = torch.zeros(ink.shape, dtype=torch.long)
    if task == "ring":
        dilated = F.max_pool2d(ink[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0
        labels[ink] = 1
        labels[dilated & ~ink] = 2
        return labels
    rows = torch.arange(ink.shape[1]).view(1, -1, 1).expand_as(ink)
    for i in range(ink.shape[0]):
        r = rows[i][ink[i]]
        mid = (r.min() + r.max()).float() / 2 if r.numel() else 0.0
        labels[i][ink[i] & (rows[i] <= mid)] = 1
        labels[i][ink[i] & (rows[i] > mid)] = 2
    return labels


def pixel_features(kind: str, x: torch.Tensor, enc, gen, levels) -> torch.Tensor:
    """Per-pixel features ``[N, D, R, R]`` of ``x [N, C, R, R]`` in [-1, 1]."""
    R = x.shape[-1]
    if kind == "pixels":
        gray = x.mean(1, keepdim=True)
        return F.unfold(gray, 3, padding=1).view(x.shape[0], 9, R, R)
    if kind == "backbone":
        with torch.inference_mode():
            maps = enc.forward_features(x)
        return torch.cat([F.interpolate(m, size=(R, R), mode="bilinear", align_corners=False) for m in maps], 1)
    maps = ghfeat.extract_spatial(x, levels=levels, model=enc, generator=gen, progress=False)
    f = torch.cat(list(maps.values()), 1)
    if kind == "ghfeat":        # remove each image's per-channel AdaIN scale and shift (its style)
        f = (f - f.mean((2, 3), keepdim=True)) / f.std((2, 3), keepdim=True).clamp_min(1e-6)
    return f


def train_classifier(feats: torch.Tensor, labels: torch.Tensor, steps: int, seed: int):
    """Softmax regression on pixels: ``feats [P, D]``, ``labels [P]`` -> (mean, std, linear layer)."""
    torch.manual_seed(seed)
    mean, std = feats.mean(0), feats.std(0)
    # a channel nearly constant over the few labelled pixels (N = 1) must not be blown up: floor the
    # scale at a tenth of the average channel's
    std = std.clamp_min(max(0.1 * float(std.mean()), 1e-6))
    z = (feats - mean) / std
    counts = torch.bincount(labels, minlength=NUM_CLASSES).float()
    weight = torch.where(counts > 0, counts.sum() / (NUM_CLASSES * counts.clamp_min(1)), torch.zeros(()))
    head = torch.nn.Linear(z.shape[1], NUM_CLASSES)
    torch.nn.init.zeros_(head.weight)             # a channel the labelled pixels never move stays at 0
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.Adam(head.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(head(z), labels, weight=weight).backward()
        opt.step()
    return mean, std, head


def mean_iou(confusion: torch.Tensor) -> float:
    inter = confusion.diag().float()
    union = confusion.sum(0).float() + confusion.sum(1).float() - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())


def evaluate(kind, model, test_x, test_y, enc, gen, levels, chunk: int = 50) -> float:
    mean, std, head = model
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    for i in range(0, test_x.shape[0], chunk):
        f = pixel_features(kind, test_x[i:i + chunk], enc, gen, levels)
        with torch.no_grad():
            pred = head((f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]) - mean) / std).argmax(1)
        confusion += torch.bincount(test_y[i:i + chunk].reshape(-1) * NUM_CLASSES + pred,
                                    minlength=NUM_CLASSES ** 2).view(NUM_CLASSES, NUM_CLASSES)
    return mean_iou(confusion)


def main(argv=None) -> dict:
    ap = parser(__doc__)
    ap.add_argument("--data", required=True, help="folder with the MNIST IDX files (train-/t10k-...-ubyte[.gz]) (get them with: ghfeat download-data mnist --out DIR)")
    ap.add_argument("--model", default="mnist32", help="encoder registry name (its paired generator is used)")
    ap.add_argument("--checkpoint", default=None, help="encoder weights")
    ap.add_argument("--generator-checkpoint", default=None, help="generator weights")
    ap.add_argument("--random-weights", action="store_true", help="random weights (pipeline check only)")
    ap.add_argument("--task", choices=["ring", "halves"], default="ring")
    ap.add_argument("--shots", type=int, nargs="+", default=[1, 5, 20], help="labelled training digits N")
    ap.add_argument("--limit", type=int, default=500, help="held-out test digits to evaluate on")
    ap.add_argument("--levels", type=int, nargs="*", default=None, help="GH-Feat levels (default all)")
    ap.add_argument("--repeats", type=int, default=3, help="draws of the N training digits")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps of the pixel classifier")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=["pixels", "backbone", "ghfeat"],
                    help="feature kinds to compare")
    ap.add_argument("--json", default=None, help="also write the results table here")
    args = ap.parse_args(argv)
    check_args(args, at_least={"--shots": 1, "--limit": 1, "--repeats": 1, "--steps": 0}, outputs={"--json": False})

    enc, gen = build_models(args.model, args.checkpoint, args.generator_checkpoint, args.random_weights)
    kw = dict(resolution=enc.input_size, channels=enc.in_channels, labels=False)
    train, test = mnist_dataset(args.data, "train", **kw), mnist_dataset(args.data, "test", **kw)
    if max(args.shots) > len(train):      # never report N digits when fewer were used
        raise ValueError(f"--shots {max(args.shots)} is more than the {len(train)} training digits in {args.data}")
    to_float = lambda u8: u8[:, None].float().div(127.5).sub(1).expand(-1, enc.in_channels, -1, -1)  # noqa: E731
    test_x = to_float(test.images[:args.limit])
    test_y = make_labels(test_x, args.task)
    g = torch.Generator().manual_seed(args.seed)
    results = {}
    for kind in args.kinds:
        for n in args.shots:
            scores = []
            for rep in range(args.repeats):
                idx = torch.randperm(len(train), generator=g)[:n]
                x = to_float(train.images[idx])
                f = pixel_features(kind, x, enc, gen, args.levels)
                model = train_classifier(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]),
                                         make_labels(x, args.task).reshape(-1), args.steps, args.seed + rep)
                scores.append(evaluate(kind, model, test_x, test_y, enc, gen, args.levels))
            results.setdefault(kind, {})[n] = sum(scores) / len(scores)
    print(f"\nmean IoU (background / {'ink / ring' if args.task == 'ring' else 'upper / lower ink'}), "
          f"{len(test_x)} held-out digits, {args.repeats} draws:")
    print(f"{'features':<10}" + "".join(f"{'N=' + str(n):>9}" for n in args.shots))
    for kind, row in results.items():
        print(f"{kind:<10}" + "".join(f"{row[n]:>9.3f}" for n in args.shots))
    if args.json:
        with atomic_open(args.json, "w", what="--json") as fh:
            json.dump({"task": args.task, "limit": len(test_x), "mean_iou": results}, fh, indent=2)
    return results


if __name__ == "__main__":
    raise SystemExit(run(main, "fewshot_segmentation.py"))
