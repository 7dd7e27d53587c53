"""Image retrieval by GH-Feat: nearest neighbours at chosen levels, top-k precision per level.

    python examples/retrieval.py --data data/mnist                       # 10,000 test digits
    python examples/retrieval.py --data data/mnist --limit 2000 --k 10 --out retrieval.png
    python examples/retrieval.py --data DIR --random-weights --limit 200           # baseline

Every test digit is a query against all the other test digits (leave-one-out). Features of one
level (or a group of levels, concatenated) are standardised over the gallery and compared by
cosine similarity. Reported: precision@k, the share of the ``k`` nearest neighbours that have the
query's class, per single level, for the coarse / middle / fine groups, and for all levels; for
reference the same on raw pixels. ``--out`` writes a grid: for a few queries (left column), the
top neighbours by the finest levels, by the coarsest levels and by all levels.
"""
from __future__ import annotations

import json

import torch
import torch.nn.functional as F

import ghfeat
from ghfeat._io import atomic_open
from ghfeat._script import check_args, parser, run
from ghfeat.data import mnist_dataset


def build_encoder(name: str, checkpoint: str | None, random_weights: bool):
    if random_weights:
        print("!! --random-weights: randomly initialised encoder; precisions measure random features")
        return ghfeat.create_encoder(name).eval()
    return ghfeat.create_encoder(name, pretrained=checkpoint is None, checkpoint_path=checkpoint).eval()


def neighbours(feats: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Indices ``[N, k]`` of the ``k`` nearest other rows of ``feats [N, D]`` by cosine similarity
    of standardised features (a row is never its own neighbour)."""
    f = (feats - feats.mean(0)) / feats.std(0).clamp_min(1e-6)
    f = F.normalize(f, dim=1)
    out = []
    for start in range(0, len(f), chunk):
        sim = f[start:start + chunk] @ f.T
        sim[torch.arange(sim.shape[0]), torch.arange(start, start + sim.shape[0])] = -float("inf")
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out)


def precision_at_k(nn_idx: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of neighbours ``nn_idx [Q, k]`` (row ``q`` = query ``q``, an index into ``labels``)
    whose label is the query's (%)."""
    return (labels[nn_idx] == labels[:len(nn_idx), None]).float().mean().item() * 100


def level_groups(levels: list[int]) -> dict[str, list[int]]:
    """Single levels, thirds (fine / middle / coarse; level 1 = finest) and all levels."""
    n = len(levels)
    third = max(1, n // 3)
    groups = {f"level {k}": [k] for k in levels}
    groups.update({"fine": levels[:third], "middle": levels[third:n - third] or levels[third:third + 1],
                   "coarse": levels[n - third:], "all": levels})
    return groups


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--data", required=True, help="folder with the MNIST / Fashion-MNIST IDX files (get them with: ghfeat download-data mnist --out DIR)")
    ap.add_argument("--model", default="mnist32")
    ap.add_argument("--checkpoint", help="local encoder weights (.safetensors or a saved folder)")
    ap.add_argument("--random-weights", action="store_true", help="random init (baseline / pipeline check)")
    ap.add_argument("--limit", type=int, help="use only the first N test images")
    ap.add_argument("--k", type=int, default=10, help="neighbours per query (precision@k)")
    ap.add_argument("--batch-size", type=int, default=256, help="extraction batch size")
    ap.add_argument("--out", help="write a PNG grid of neighbours for a few queries here")
    ap.add_argument("--queries", type=int, default=6, help="queries shown in the grid")
    ap.add_argument("--show", type=int, default=8, help="neighbours shown per query")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    check_args(args, at_least={"--k": 1, "--limit": 2, "--batch-size": 1, "--queries": 1, "--show": 1},
               outputs={"--out": False, "--json": False})

    enc = build_encoder(args.model, args.checkpoint, args.random_weights)
    ds = mnist_dataset(args.data, "test", resolution=enc.input_spec["size"])
    n = len(ds) if args.limit is None else min(args.limit, len(ds))
    if n <= args.k:
        raise ValueError(f"--k {args.k} needs more than {args.k} test digits, but there are {n}"
                         + (" (--limit)" if args.limit is not None else ""))
    images, labels = ds.images[:n, None], ds.labels[:n]
    feats = ghfeat.extract(images, model=enc, batch_size=args.batch_size)
    levels = sorted(feats)

    groups = level_groups(levels)
    results = {"pixels": precision_at_k(neighbours(images.flatten(1).float(), args.k), labels)}
    idx_of = {}
    for name, group in groups.items():
        idx_of[name] = neighbours(torch.cat([feats[k] for k in group], 1), args.k)
        results[name] = precision_at_k(idx_of[name], labels)
    print(f"precision@{args.k} on {n} test digits (leave-one-out, {args.model}; chance about 10%):")
    for name, p in results.items():
        dims = "" if name == "pixels" else f"  levels {groups[name]}"
        print(f"  {name:<10} {p:6.2f}%{dims}")

    if args.out:
        q = torch.arange(min(args.queries, n)) * max(1, n // max(1, args.queries))
        rows = []
        for name in ("fine", "coarse", "all"):
            for i in q.tolist():
                rows.append(torch.cat([images[i:i + 1], images[idx_of[name][i, :args.show]]]))
        grid = torch.cat(rows).float().div(127.5).sub(1)
        ghfeat.save_grid(grid, args.out, nrow=args.show + 1)
        print(f"wrote {args.out}: rows = queries (left) and their neighbours by the fine levels "
              f"{groups['fine']}, then the coarse levels {groups['coarse']}, then all levels")
    if args.json:
        with atomic_open(args.json, "w", what="--json") as fh:
            json.dump({"model": args.model, "checkpoint": args.checkpoint, "random_weights": args.random_weights,
                       "n": n, "k": args.k, "groups": groups, "precision_at_k": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main, "retrieval.py"))
