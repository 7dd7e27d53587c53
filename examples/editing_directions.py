"""Editing directions in GH-Feat's y space on real digits: closed-form (SeFa) and supervised.

    python examples/editing_directions.py --data data/mnist --out-dir edits/
    python examples/editing_directions.py --data data/mnist --attribute slant --levels 7 8
    python examples/editing_directions.py --data DIR --random-weights --n-fit 50 --n-eval 20   # pipeline

Supervised: an attribute is measured on ``--n-fit`` training digits from the pixels themselves,

* ``thickness``: ink area (pixels brighter than mid-gray) over the ink's skeleton length, which is
  estimated as ink area minus the area of the ink eroded by one pixel, halved - a stroke-width proxy;
* ``slant``: the shear of the ink, ``cov(x, y) / var(y)`` of ink pixel coordinates (positive = the
  top leans right);

the codes are labelled above / below the median, and :func:`ghfeat.editing.supervised_direction`
gives the logistic classifier's unit normal across the chosen levels. The script then edits
``--n-eval`` test digits with each strength and measures the attribute again on the edited images
(it should move monotonically with the strength) and how many edited digits the MNIST classifier
still reads as their original class. Closed form: the strongest SeFa direction of each level in
``--sefa-levels``, one grid each (no labels, no measurement: look at them).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

import ghfeat
from ghfeat import editing
from ghfeat._io import atomic_open
from ghfeat._script import check_args, parser, run
from ghfeat.eval import classifier
from ghfeat.data import mnist_dataset


measure = editing.measure_attribute     # thickness / slant / brightness of digit images (ghfeat.editing)


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--data", required=True, help="folder with the MNIST IDX files (get them with: ghfeat download-data mnist --out DIR)")
    ap.add_argument("--model", default="mnist32")
    ap.add_argument("--checkpoint", help="local encoder weights")
    ap.add_argument("--generator-checkpoint", help="local generator weights")
    ap.add_argument("--random-weights", action="store_true", help="random init (pipeline check only)")
    ap.add_argument("--attribute", choices=["thickness", "slant"], default="thickness")
    ap.add_argument("--levels", type=int, nargs="+", help="levels the supervised direction spans (default: all)")
    # v3's codes sit on the generator's manifold, where a unit step moves a digit about a quarter as
    # far as v1's did: at +-12 the edits show and the class holds (docs/examples.md)
    ap.add_argument("--strengths", type=float, nargs="+", default=[-24, -12, 0, 12, 24],
                    help="multiples of the unit direction")
    ap.add_argument("--sefa-levels", type=int, nargs="*", default=[3, 5, 7])
    ap.add_argument("--sefa-strengths", type=float, nargs="+", default=[-32, -16, 0, 16, 32],
                    help="multiples of each level's unit SeFa direction")
    ap.add_argument("--n-fit", type=int, default=5000, help="training digits the direction is fitted on")
    ap.add_argument("--n-eval", type=int, default=500, help="test digits edited and measured")
    ap.add_argument("--n-show", type=int, default=8, help="digits shown per grid")
    ap.add_argument("--out-dir", default="edits")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    check_args(args, at_least={"--n-fit": 2, "--n-eval": 1, "--n-show": 1}, outputs={"--out-dir": True, "--json": False})
    out = Path(args.out_dir)

    if args.random_weights:
        print("!! --random-weights: random encoder and generator; the edits mean nothing")
        enc = ghfeat.create_encoder(args.model).eval()
        gen = ghfeat.create_generator(enc.generator_name).eval()
    else:
        enc = ghfeat.create_encoder(args.model, pretrained=args.checkpoint is None,
                                    checkpoint_path=args.checkpoint).eval()
        gen = ghfeat.create_generator(enc.generator_name, pretrained=args.generator_checkpoint is None,
                                      checkpoint_path=args.generator_checkpoint).eval()
    size = enc.input_spec["size"]
    to_x = lambda ds, n: ds.images[:n, None].float().div(127.5).sub(1)     # noqa: E731
    x_fit = to_x(mnist_dataset(args.data, "train", resolution=size), args.n_fit)
    test = mnist_dataset(args.data, "test", resolution=size)
    x_eval, y_eval = to_x(test, args.n_eval), test.labels[:args.n_eval]

    # -- supervised direction ------------------------------------------------------------------
    values = measure(x_fit, args.attribute)
    feats = ghfeat.extract(x_fit, levels=args.levels, model=enc)
    upper = torch.zeros(len(values), dtype=torch.bool)
    upper[values.argsort()[len(values) // 2:]] = True                      # median split (ties by rank)
    direction = editing.supervised_direction(feats, upper)
    levels = sorted(direction)
    codes = ghfeat.encode(x_eval, enc, progress=False)
    clf = classifier.load_classifier()
    rows = []
    for s, c in zip(args.strengths, editing.edit_codes(codes, direction, args.strengths, style_dims=gen.style_dims)):
        img = ghfeat.decode(c, gen, progress=False).clamp(-1, 1)
        _, pred, _ = classifier.classify(clf, img)
        rows.append({"strength": s, args.attribute: float(measure(img, args.attribute).mean()),
                     "same_class": float((torch.from_numpy(pred) == y_eval).float().mean())})
    print(f"supervised '{args.attribute}' direction on levels {levels} (fitted on {len(x_fit)} training digits, "
          f"median split); {len(x_eval)} edited test digits:")
    print(f"{'strength':>9} {args.attribute:>10} {'same class':>11}")
    for r in rows:
        print(f"{r['strength']:>9.1f} {r[args.attribute]:>10.3f} {r['same_class']:>10.1%}")
    real_mean = float(measure(x_eval, args.attribute).mean())
    print(f"(real test digits: {args.attribute} {real_mean:.3f})")
    show = x_eval[:args.n_show]
    path = out / f"supervised_{args.attribute}.png"
    editing.edit(show, direction, args.strengths, encoder=enc, generator=gen, out=path)
    print(f"wrote {path} (rows: digits; columns: strengths {args.strengths})")

    # -- closed-form directions ----------------------------------------------------------------
    for k in args.sefa_levels:
        dirs, _ = editing.sefa_directions(gen, level=k)
        path = out / f"sefa_level{k}.png"
        editing.edit(show, dirs[0], args.sefa_strengths, levels=[k], encoder=enc, generator=gen, out=path)
        print(f"wrote {path} (strongest SeFa direction of level {k}; strengths {args.sefa_strengths})")
    if args.json:
        with atomic_open(args.json, "w", what="--json") as fh:
            json.dump({"model": args.model, "random_weights": args.random_weights, "attribute": args.attribute,
                       "levels": levels, "n_fit": len(x_fit), "n_eval": len(x_eval),
                       "real_mean": real_mean, "edits": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main, "editing_directions.py"))
