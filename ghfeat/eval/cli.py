"""``ghfeat eval ...``: the evaluation suite on the command line.

    ghfeat eval generator stylegan-mnist32 --data mnist:DIR --floor   FD, class entropy, confidence, per-class %
    ghfeat eval generator stylegan-mnist32 --data mnist:DIR --mixing 1000   + its own w-space style mixing
    ghfeat eval encoder mnist32 --data mnist:DIR                      reconstruction MSE, class agreement, FD
    ghfeat eval probe mnist32 --data mnist:DIR [--per-level]          linear probe (converged L-BFGS)
    ghfeat eval knn mnist32 --data mnist:DIR                          1-NN on features and on raw pixels
    ghfeat eval mixing mnist32 --data mnist:DIR                       style mixing of real digits vs w space
    ghfeat eval card mnist32 --data mnist:DIR --out card.json         all of the above: one table + JSON
    ghfeat eval train-classifier --data mnist:DIR --out clf.safetensors

Networks are given as a registry name (pretrained weights), a saved folder or a trainer checkpoint
``ckpt-*.pt``. This module is the only part of :mod:`ghfeat.eval` that imports :mod:`ghfeat.train`
(to rebuild networks from run checkpoints).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

_CKPT_KEYS = {"generator": ("G_ema", "G"), "discriminator": ("D",), "encoder": ("E",)}


def _module_class(kind: str):
    if kind == "generator":
        from ..models.generator import StyleGANGenerator
        return StyleGANGenerator
    if kind == "discriminator":
        from ..models.discriminator import StyleGANDiscriminator
        return StyleGANDiscriminator
    from ..models.encoder import GHFeatEncoder
    return GHFeatEncoder


def _kind_of(module) -> str:
    for kind in ("generator", "discriminator", "encoder"):
        if isinstance(module, _module_class(kind)):
            return kind
    return type(module).__name__


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def load_network(spec: str, kind: str = "generator"):
    """A network in eval mode from a saved folder, a trainer checkpoint ``ckpt-*.pt`` (a generator
    run's ``G_ema``, its ``D``, an encoder run's ``E``) or a registry name (pretrained weights).
    A network of another kind (a generator given where an encoder is expected) is refused."""
    if kind not in _CKPT_KEYS:
        raise ValueError(f"kind must be one of {sorted(_CKPT_KEYS)}, got {kind!r}")
    path = Path(spec).expanduser()
    if path.is_dir() or path.suffix in (".pt", ".pth"):
        from ..train.package import _load
        module = _load(str(path), _CKPT_KEYS[kind])
    elif path.exists():
        raise ValueError(f"cannot load the {kind} from {path}: give a saved folder, a ckpt-*.pt or a model name")
    else:
        from .. import _registry
        names = {k: set(_registry.list_models(kind=k)) for k in _CKPT_KEYS}
        if spec not in names[kind]:
            other = [k for k in ("encoder", "generator", "discriminator") if spec in names[k]]
            if other:
                raise ValueError(f"{spec!r} is {_a(other[0])}, not {_a(kind)}; give {_a(kind)} here "
                                 f"(one of {sorted(names[kind])}, a saved folder or a ckpt-*.pt)")
        create = {"generator": _registry.create_generator, "discriminator": _registry.create_discriminator,
                  "encoder": _registry.create_encoder}[kind]
        module = create(spec, pretrained=True)
    if not isinstance(module, _module_class(kind)):
        raise ValueError(f"{spec} holds {_a(_kind_of(module))}, not {_a(kind)}; give {_a(kind)} here")
    return module.eval()


def load_generator(spec: str):
    """:func:`load_network` for a generator."""
    return load_network(spec, "generator")


def _pair(args):
    """The encoder of ``args.encoder`` and its generator (``--generator``, default its pair)."""
    E = load_network(args.encoder, "encoder")
    G = load_network(args.generator or E.generator_name, "generator")
    return E, G


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    return value


def _finite(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ghfeat eval", description="Evaluate a trained GH-Feat model on MNIST-like "
                                 "data: generator samples, reconstructions, linear probe, 1-NN, style mixing, "
                                 "or all of them (card).", formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n")[1])
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    data = argparse.ArgumentParser(add_help=False, parents=[common])
    data.add_argument("--data", required=True, help="mnist:<root> / fashion-mnist:<root> (IDX files), or an image "
                      "folder with train/<class>/ and test/<class>/ subfolders (folder:<dir>)")
    data.add_argument("--classifier", help="the judge: a shipped one by name (mnist, fashion-mnist) or a weights "
                      "file (default: fashion-mnist for fashion-mnist:<root>, else mnist)")
    data.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    pair = argparse.ArgumentParser(add_help=False, parents=[data])
    pair.add_argument("encoder", help="encoder: model name, saved folder or trainer checkpoint ckpt-*.pt")
    pair.add_argument("--generator", help="its generator (default: the encoder's pair, E.generator_name)")
    sub = ap.add_subparsers(dest="what", required=True)

    p = sub.add_parser("generator", parents=[data], help="sample quality: FD, class entropy, confidence, per-class %%")
    p.add_argument("generator", help="model name, saved folder, or trainer checkpoint ckpt-*.pt")
    p.add_argument("-n", type=_int, default=10_000, help="number of samples (10,000; at least 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation-psi", type=_finite, default=None, help="in [0, 1]; default: none (psi = 1)")
    p.add_argument("--floor", action="store_true", help="also real train images vs the test set")
    p.add_argument("--diagnose", action="store_true",
                   help="also: where samples differ from the data on average (artefact location)")
    p.add_argument("--mixing", type=_int, default=None, metavar="PAIRS",
                   help="also its own w-space style mixing on PAIRS pairs of samples (how hierarchical G is)")
    p.add_argument("--discriminator", help="also check whether this D (folder, checkpoint or model name) uses its "
                   "minibatch-stddev statistic")

    p = sub.add_parser("encoder", parents=[pair], help="reconstruction MSE, class agreement, FD on real digits")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("-n", type=_int, default=10_000, help="number of real digits (10,000; at least 2)")

    p = sub.add_parser("probe", parents=[pair], help="linear probe on frozen all-level features (L-BFGS, converged)")
    p.add_argument("--per-level", action="store_true", help="also one probe per level")
    p.add_argument("--l2", type=_finite, default=None, help="L2 weight (default: chosen on a held-out train slice)")
    p.add_argument("--limit", type=_int, default=None, help="first N train and N test digits only")
    p.add_argument("--baselines", action="store_true",
                   help="also raw pixels and the same encoder at random weights, by the same probe")

    p = sub.add_parser("knn", parents=[pair], help="1-NN on the standardized features and on raw pixels")
    p.add_argument("--limit", type=_int, default=None, help="first N train and N test digits only")
    p.add_argument("--baselines", action="store_true", help="also the same encoder at random weights")

    p = sub.add_parser("mixing", parents=[pair], help="style mixing of real test digits (y space) vs G's w space")
    p.add_argument("--pairs", type=_int, default=2000, help="pairs of digits of different classes (2,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-w-space", action="store_true", help="skip the generator's own w-space mixing")

    p = sub.add_parser("card", parents=[pair], help="all of the above for an encoder + its generator -> table + JSON")
    p.add_argument("--out", default="card.json", help="JSON file to write (card.json)")
    p.add_argument("-n", type=_int, default=10_000, help="generator samples (10,000)")
    p.add_argument("--pairs", type=_int, default=2000, help="style-mixing pairs (2,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-level", action="store_true", help="also one probe per level")

    p = sub.add_parser("train-classifier", parents=[common], help="train the MNIST classifier the figures use")
    p.add_argument("--data", required=True, help="mnist:<root>")
    p.add_argument("--out", default="mnist_classifier.safetensors",
                   help="weights file (default: mnist_classifier.safetensors here; never inside the package)")
    p.add_argument("--epochs", type=_int, default=3)
    return ap


def eval_main(argv: list[str] | None = None) -> int:
    """Run ``ghfeat eval``; errors are raised (``ghfeat.cli.main`` turns them into one line, exit 2)."""
    from .card import format_sections
    from .classifier import check_outside_package, load_classifier, save_classifier, train_classifier
    from .quality import check_count, check_truncation_psi

    args = build_parser().parse_args(argv)
    if args.what == "train-classifier":
        from .._io import check_writable
        check_writable(check_outside_package(args.out), folder=False, what="--out")
        model, acc = train_classifier(args.data, epochs=args.epochs)
        save_classifier(model, args.out)
        print(f"test top-1 {acc:.4f}; wrote {args.out} (use it with --classifier {args.out})")
        return 0
    # every value is checked before any model is loaded or any work is done
    if getattr(args, "n", None) is not None:
        check_count(args.n, "-n")
    if getattr(args, "pairs", None) is not None:
        check_count(args.pairs, "--pairs", 1)
    if getattr(args, "mixing", None) is not None:
        check_count(args.mixing, "--mixing", 1)
    if getattr(args, "limit", None) is not None:
        check_count(args.limit, "--limit", 10)
    if getattr(args, "truncation_psi", None) is not None:
        check_truncation_psi(args.truncation_psi)
    if getattr(args, "l2", None) is not None and not (args.l2 >= 0 and args.l2 != float("inf")):
        raise ValueError(f"--l2 must be a finite number >= 0, got {args.l2!r}")
    if args.what == "card":
        from .._io import check_writable
        check_writable(args.out, folder=False, what="--out")
    from .classifier import default_classifier
    judge = args.classifier or default_classifier(args.data)
    clf = load_classifier(judge)
    res = _run(args, clf)
    if args.what in ("generator", "encoder", "mixing", "card"):
        res["classifier"] = judge
    if args.what == "card":
        from .._io import atomic_write_bytes
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, (json.dumps(res, indent=2) + "\n").encode())
    if args.json:
        print(json.dumps(res))
    else:
        print("\n".join(format_sections(res)))
        for k in ("mean_image_gap", "discriminator_batch_check"):
            if k in res:
                print(f"{k}: {res[k]}")
        if "seconds" in res:
            print(f"seconds: {res['seconds']}")
    if args.what == "card":
        print(f"wrote {args.out}")
    return 0


def _run(args, clf) -> dict:
    from . import card as C
    from .mixing import style_mixing_quality, w_space_mixing
    from .quality import batch_statistic_check, generate, generator_quality, mean_image_gap, real_floor
    from .quality import reconstruction_quality

    if args.what == "generator":
        G = load_network(args.generator, "generator")
        D = load_network(args.discriminator, "discriminator") if args.discriminator else None
        res = {"generator": generator_quality(G, args.data, n=args.n, seed=args.seed,
                                              truncation_psi=args.truncation_psi, clf=clf, progress=True)}
        if args.floor:
            res["real_floor"] = real_floor(args.data, n=args.n, clf=clf)
        if args.mixing is not None:
            res["mixing"] = w_space_mixing(G, args.mixing, seed=args.seed, clf=clf)
        if args.diagnose:
            res["mean_image_gap"] = mean_image_gap(generate(G, min(args.n, 5000), seed=args.seed), args.data)
        if D is not None:
            res["discriminator_batch_check"] = batch_statistic_check(D, args.data)
        return res
    E, G = _pair(args) if args.what in ("encoder", "mixing", "card") else (load_network(args.encoder, "encoder"), None)
    if args.what == "encoder":
        return {"encoder": reconstruction_quality(E, G, args.data, n=args.n, split=args.split, clf=clf,
                                                  progress=True)}
    if args.what == "probe":
        res = {"probe": C.probe_figures(E, args.data, per_level=args.per_level, l2=args.l2, limit=args.limit,
                                        progress=True)}
        if args.baselines:
            res["probe_baselines"] = C.baseline_figures(E, args.data, limit=args.limit, progress=True)
        return res
    if args.what == "knn":
        res = {"knn": C.knn_figures(E, args.data, limit=args.limit, progress=True)}
        if args.baselines:
            res["knn_baselines"] = {"random_encoder": C.baseline_figures(E, args.data, limit=args.limit,
                                                                         progress=True, knn=True)["random_encoder"]}
        return res
    if args.what == "mixing":
        return {"mixing": style_mixing_quality(E, G, args.data, n_pairs=args.pairs, seed=args.seed, clf=clf,
                                               w_space=not args.no_w_space)}
    return {"encoder_model": args.encoder, "generator_model": args.generator or E.generator_name,
            **C.model_card(E, G, args.data, n=args.n, pairs=args.pairs, seed=args.seed, per_level=args.per_level,
                           clf=clf, progress=True)}
