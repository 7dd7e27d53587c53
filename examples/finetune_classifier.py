"""Fine-tune the GH-Feat encoder + a linear head end to end on few labels, against a frozen probe
and the same network trained from scratch.

    python examples/finetune_classifier.py --data data/mnist                 # 100, 1000, 60000
    python examples/finetune_classifier.py --data data/mnist --labels 100 1000 --modes finetune scratch
    python examples/finetune_classifier.py --data DIR --random-weights --labels 20 --steps 5 --limit 50  # smoke

For every number of labels ``n`` a class-balanced subset of the training set is drawn (``n / 10``
per class, fixed by ``--seed``), and three classifiers with the same head are trained on it:

* ``frozen``: the pretrained encoder is fixed; only the head learns (the linear probe);
* ``finetune``: the pretrained encoder and the head learn together (encoder lr ``--lr`` x 0.1);
* ``scratch``: the same architecture, randomly initialised, learns with the head at ``--lr``.

The head is ``BatchNorm1d(D, affine=False) -> Linear(D, 10)`` on the concatenated GH-Feat codes of
all levels (``D`` = 448 for ``mnist32``): the batch norm standardises the features, as the linear
probe does. Adam, batch 64, cosine schedule; the number of steps is ``max(--steps, --epochs x n /
64)``. Reported: top-1 on the test set (``--limit`` first test digits; all 10,000 by default).
"""
from __future__ import annotations

import copy
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

import ghfeat
from ghfeat._io import atomic_open, atomic_output
from ghfeat._script import check_args, parser, run
from ghfeat.data import mnist_dataset

MODES = ("frozen", "finetune", "scratch")


class GHFeatClassifier(nn.Module):
    """``encoder`` -> concatenated per-level codes ``[N, D]`` -> standardise -> ``Linear(D, classes)``.

    Input ``[N, C, R, R]`` in [-1, 1] (what the encoder takes); output logits ``[N, classes]``.
    """

    def __init__(self, encoder: nn.Module, num_classes: int = 10):
        super().__init__()
        self.encoder = encoder
        dim = sum(ghfeat.level_dims(encoder).values())
        self.norm = nn.BatchNorm1d(dim, affine=False)
        self.fc = nn.Linear(dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(list(self.encoder.forward_layers(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(self.features(x)))


def balanced_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of ``n`` examples, ``n // classes`` per class (the first of a seeded permutation);
    all examples when ``n >= len(labels)``."""
    if n >= len(labels):
        return torch.arange(len(labels))
    classes = int(labels.max()) + 1
    if n < classes:
        raise ValueError(f"--labels {n}: need at least one label per class ({classes})")
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    picked = [perm[labels[perm] == c][: n // classes] for c in range(classes)]
    return torch.cat(picked).sort().values


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, R, R]`` -> float ``[N, 1, R, R]`` in [-1, 1]."""
    return images[:, None].float().div(127.5).sub(1)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    correct = sum((model(to_input(images[i:i + batch_size])).argmax(1) == labels[i:i + batch_size]).sum().item()
                  for i in range(0, len(images), batch_size))
    return 100.0 * correct / len(images)


def train(model: GHFeatClassifier, mode: str, images: torch.Tensor, labels: torch.Tensor, *, steps: int,
          lr: float, batch_size: int, seed: int, progress: bool = True) -> GHFeatClassifier:
    """Train ``model`` in place on ``images`` (uint8 ``[n, R, R]``) for ``steps`` Adam steps."""
    g = torch.Generator().manual_seed(seed)
    if mode == "frozen":
        model.encoder.requires_grad_(False)
        with torch.no_grad():                    # features once; the head trains on them
            model.encoder.eval()
            feats = torch.cat([model.features(to_input(images[i:i + 500])) for i in range(0, len(images), 500)])
        params = [{"params": model.fc.parameters(), "lr": lr}]
    else:
        enc_lr = lr * 0.1 if mode == "finetune" else lr
        params = [{"params": model.encoder.parameters(), "lr": enc_lr}, {"params": model.fc.parameters(), "lr": lr}]
    opt = torch.optim.Adam(params)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    order = torch.empty(0, dtype=torch.long)
    for _ in tqdm(range(steps), desc=f"{mode} ({len(images)} labels)", disable=not progress, leave=False):
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(len(images), generator=g)])
        idx, order = order[:batch_size], order[batch_size:]
        model.train()
        if mode == "frozen":
            model.encoder.eval()
            logits = model.fc(model.norm(feats[idx]))
        else:
            logits = model(to_input(images[idx]))
        loss = F.cross_entropy(logits, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model


def plot_results(results: dict[str, dict[str, float]], path, lo: float = 40.0) -> None:
    """Bar chart of ``{labels: {mode: top1}}`` as a PNG (PIL only): one group per label count, one
    bar per mode, the y axis from ``lo`` to 100%."""
    from PIL import Image, ImageDraw
    colours = {"frozen": (66, 133, 244), "finetune": (52, 168, 83), "scratch": (234, 67, 53)}
    groups = list(results)
    modes = [m for m in MODES if any(m in r for r in results.values())]
    bw, gap, h, top, left = 28, 24, 220, 30, 40
    width = left + len(groups) * (len(modes) * bw + gap) + gap
    img = Image.new("RGB", (width, h + top + 40), "white")
    d = ImageDraw.Draw(img)
    y_of = lambda acc: top + h - (max(acc, lo) - lo) / (100 - lo) * h          # noqa: E731
    for tick in range(int(lo), 101, 10):
        d.line([(left - 4, y_of(tick)), (width - gap, y_of(tick))], fill=(225, 225, 225))
        d.text((4, y_of(tick) - 6), f"{tick}%", fill="black")
    for gi, n in enumerate(groups):
        x0 = left + gap + gi * (len(modes) * bw + gap)
        for mi, m in enumerate(modes):
            if m in results[n]:
                x = x0 + mi * bw
                d.rectangle([x, y_of(results[n][m]), x + bw - 4, top + h], fill=colours[m])
        d.text((x0, top + h + 6), f"{int(n):,} labels", fill="black")
    for mi, m in enumerate(modes):
        d.rectangle([left + mi * 90, 8, left + mi * 90 + 10, 18], fill=colours[m])
        d.text((left + mi * 90 + 14, 6), m, fill="black")
    with atomic_output(path, what="--plot") as tmp:          # the same suffix: PIL picks PNG from it
        img.save(tmp)


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--data", required=True, help="folder with the MNIST IDX files (get them with: ghfeat download-data mnist --out DIR)")
    ap.add_argument("--model", default="mnist32")
    ap.add_argument("--checkpoint", help="local encoder weights (.safetensors or a saved folder)")
    ap.add_argument("--random-weights", action="store_true",
                    help="random init for 'frozen' and 'finetune' too (pipeline check only)")
    ap.add_argument("--labels", type=int, nargs="+", default=[100, 1000, 60000])
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--steps", type=int, default=500, help="minimum optimizer steps per run")
    ap.add_argument("--epochs", type=float, default=2.0, help="passes over the labelled set (if more steps)")
    ap.add_argument("--lr", type=float, default=1e-3, help="head lr (encoder: x 0.1 when fine-tuning)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--limit", type=int, help="evaluate on the first N test digits only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--plot", help="also draw the results as a bar chart (PNG) here")
    args = ap.parse_args(argv)
    check_args(args, at_least={"--labels": 1, "--steps": 0, "--batch-size": 1, "--limit": 1, "--threads": 1},
               positive=("--lr",), outputs={"--json": False, "--plot": False})
    if not (math.isfinite(args.epochs) and args.epochs >= 0):
        raise ValueError(f"--epochs must be a finite number >= 0, got {args.epochs}")
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.random_weights:
        print("!! --random-weights: 'frozen' and 'finetune' start from random weights; they measure nothing")
        base = ghfeat.create_encoder(args.model)
    else:
        base = ghfeat.create_encoder(args.model, pretrained=args.checkpoint is None, checkpoint_path=args.checkpoint)
    size = base.input_spec["size"]
    train_ds, test_ds = mnist_dataset(args.data, "train", resolution=size), mnist_dataset(args.data, "test", resolution=size)
    n_test = len(test_ds) if args.limit is None else min(args.limit, len(test_ds))
    x_test, y_test = test_ds.images[:n_test], test_ds.labels[:n_test]

    results: dict[str, dict[str, float]] = {}
    for n in args.labels:
        idx = balanced_subset(train_ds.labels, n, args.seed)
        x, y = train_ds.images[idx], train_ds.labels[idx]
        steps = max(args.steps, math.ceil(args.epochs * len(idx) / args.batch_size))
        for mode in args.modes:
            torch.manual_seed(args.seed)
            enc = ghfeat.create_encoder(args.model) if mode == "scratch" else copy.deepcopy(base)
            model = GHFeatClassifier(enc, num_classes=int(train_ds.labels.max()) + 1)
            t0 = time.perf_counter()
            train(model, mode, x, y, steps=steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
            acc = evaluate(model, x_test, y_test)
            results.setdefault(str(len(idx)), {})[mode] = acc
            print(f"{len(idx):>6} labels  {mode:<9} top-1 {acc:6.2f}%   ({steps} steps, {time.perf_counter() - t0:.0f}s)")
    print(f"\ntop-1 on {n_test} test digits")
    print(f"{'labels':>8}" + "".join(f"{m:>10}" for m in args.modes))
    for n, row in results.items():
        print(f"{n:>8}" + "".join(f"{row[m]:>9.2f}%" for m in args.modes))
    if args.plot:
        plot_results(results, args.plot)
        print(f"wrote {args.plot}")
    if args.json:
        with atomic_open(args.json, "w", what="--json") as fh:
            json.dump({"model": args.model, "checkpoint": args.checkpoint, "random_weights": args.random_weights,
                       "n_test": n_test, "steps_min": args.steps, "epochs": args.epochs, "lr": args.lr,
                       "batch_size": args.batch_size, "seed": args.seed, "top1": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main, "finetune_classifier.py"))
